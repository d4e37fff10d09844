"""A real Prometheus server (Debian's `prometheus` package) for the end-to-end test.

`PrometheusServer` writes a configuration that scrapes the given targets every second and
evaluates the given rules files every second, starts the server on a free loopback port with
its data in a temp folder, and stops it by its PID. Every wait is bounded.
"""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from tests.acceptance.harness import free_port, poll
from tests.deploy.tools import tool

SCRAPE_SECONDS = 1


class PrometheusServer:
    """Prometheus on 127.0.0.1 scraping `targets` (host:port) as job retention-worker."""

    def __init__(self, folder: Path, targets: list[str], rule_files: list[Path]) -> None:
        binary = tool("prometheus", "apt-get install prometheus, or `make deploy-tools` as root")
        self.port = free_port()
        config = {
            "global": {
                "scrape_interval": f"{SCRAPE_SECONDS}s",
                "scrape_timeout": f"{SCRAPE_SECONDS}s",
                "evaluation_interval": f"{SCRAPE_SECONDS}s",
            },
            "rule_files": [str(p) for p in rule_files],
            "scrape_configs": [
                {"job_name": "retention-worker", "static_configs": [{"targets": targets}]}
            ],
        }
        path = folder / "prometheus.yml"
        path.write_text(yaml.safe_dump(config), "utf-8")
        self.log = folder / "prometheus.log"
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(
                [
                    binary,
                    f"--config.file={path}",
                    f"--storage.tsdb.path={folder / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--log.level=warn",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        poll(lambda: self._ready(), 30, f"Prometheus ready on :{self.port}\n{self.tail()}")

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"prometheus exited with {self.proc.returncode}\n{self.tail()}")
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:  # noqa: S310
                return int(resp.status) == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def tail(self) -> str:
        try:
            return "prometheus log:\n" + "\n".join(self.log.read_text().splitlines()[-20:])
        except OSError:
            return ""

    def api(self, path: str, **params: str) -> Any:
        """The `data` of a successful API answer (fails the test on an error answer)."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=5) as resp:  # noqa: S310
            body = json.loads(resp.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[tuple[dict[str, str], float]]:
        """An instant query: (labels, value) of each series in the result vector."""
        data = self.api("/api/v1/query", query=expr)
        assert data["resultType"] == "vector", data
        return [(r["metric"], float(r["value"][1])) for r in data["result"]]

    def first_sample_time(self, selector: str, within: str = "5m") -> float | None:
        """Unix time of the earliest raw sample of `selector` within the last `within`."""
        data = self.api("/api/v1/query", query=f"{selector}[{within}]")
        assert data["resultType"] == "matrix", data
        times = [float(t) for series in data["result"] for t, _ in series["values"]]
        return min(times) if times else None

    def alerts(self) -> list[dict[str, Any]]:
        return list(self.api("/api/v1/alerts")["alerts"])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
