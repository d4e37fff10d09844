"""The deploy checks' tools for tests: helm, promtool and prometheus, and the chart rendered.

Tools come from the folder `make deploy-tools` fills (REPO/.tools, or the folder named by
RETENTION_TEST_TOOLS), then from PATH. A missing tool skips the test on a laptop and fails
it when CI is set (`tests.dbs.unavailable`), so CI never passes by skipping.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from tests.dbs import unavailable
from tests.support import FIXTURE_CONFIG, REPO

CHART = REPO / "helm" / "retention-worker"
FULL_VALUES = REPO / "deploy" / "helm" / "full.values.yaml"
KUBE_VERSION = "1.32.0"


def tools_dir() -> Path:
    return Path(os.environ.get("RETENTION_TEST_TOOLS") or REPO / ".tools")


def tool(name: str, hint: str) -> str:
    """Path of the executable `name`: TOOLS/bin first, then PATH; else skip (fail in CI)."""
    local = tools_dir() / "bin" / name
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    found = shutil.which(name)
    if found is None:
        unavailable(f"{name} is not installed ({hint})")
    return found


def helm() -> str:
    return tool("helm", "run `make deploy-tools`")


def render(tmp: Path, *args: str, config_dir: Path | None = FIXTURE_CONFIG) -> list[dict[str, Any]]:
    """`helm template` of the chart with ARGS (and config_dir's files as config.files)."""
    extra: list[str] = []
    if config_dir is not None:
        from deploy.scripts.config_values import config_files

        values = tmp / "config.values.yaml"
        values.write_text(yaml.safe_dump({"config": {"files": config_files(config_dir)}}), "utf-8")
        extra = ["-f", str(values)]
    env = {
        **os.environ,
        "HELM_CACHE_HOME": str(tmp / "helm-cache"),
        "HELM_CONFIG_HOME": str(tmp / "helm-config"),
        "HELM_DATA_HOME": str(tmp / "helm-data"),
    }
    done = subprocess.run(
        [helm(), "template", "rw", str(CHART), "--kube-version", KUBE_VERSION, *extra, *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def of_kind(docs: Iterable[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc.get("kind") == kind]


def pod_specs(docs: Iterable[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(kind/name, pod spec) of every Deployment, Job and CronJob."""
    found = []
    for doc in docs:
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        if doc["kind"] in ("Deployment", "Job"):
            found.append((name, doc["spec"]["template"]["spec"]))
        elif doc["kind"] == "CronJob":
            found.append((name, doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]))
    return found
