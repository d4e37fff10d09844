"""The container's HEALTHCHECK: exit 0 when the worker's /healthz answers 200, else 1.

Uses only the standard library (the image has no curl). The port is RETENTION_HTTP_PORT
(default 9464); the worker is asked on 127.0.0.1 whatever address it binds to. The request
times out after 3 seconds. Run by `python /opt/retention-worker/healthcheck.py` in the image.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

TIMEOUT_SECONDS = 3.0


def main() -> int:
    """0 when GET /healthz answers 200; 1 (with the reason on stderr) otherwise."""
    port = os.environ.get("RETENTION_HTTP_PORT") or "9464"
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as resp:
            status = int(resp.status)
    except urllib.error.HTTPError as exc:
        status = int(exc.code)
    except (urllib.error.URLError, OSError) as exc:
        print(f"healthcheck: {url} unreachable: {exc}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"healthcheck: {url} answered {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
