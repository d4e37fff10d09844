"""`mode: cronjobs` and replicas, now that leases let several processes share the pairs
(worker/leases.py): the rendered manifests are valid for Kubernetes 1.32
(kubernetes-validate --strict), each product's CronJob runs `run --once --scheduled
--product P` with the same pod security as the Deployment, and the values schema lets the
daemon have more than one replica.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.tools import FULL_VALUES, KUBE_VERSION, of_kind, render, tool
from worker.cli import main


def _validate(tmp: Path, docs: list[dict[str, Any]]) -> None:
    manifests = tmp / "rendered.yaml"
    manifests.write_text(yaml.safe_dump_all(docs), "utf-8")
    validator = tool("kubernetes-validate", "run `make deploy-tools`")
    done = subprocess.run(
        [validator, "-k", KUBE_VERSION, "--strict", "--quiet", str(manifests)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_cronjobs_mode_renders_valid_cronjobs_and_no_deployment(tmp_path: Path) -> None:
    docs = render(tmp_path, "--set", "mode=cronjobs")
    _validate(tmp_path, docs)
    assert of_kind(docs, "Deployment") == []
    jobs = of_kind(docs, "CronJob")
    assert sorted(j["metadata"]["name"] for j in jobs) == [
        "rw-retention-worker-flexkids",
        "rw-retention-worker-konnect",
    ]
    daemon = of_kind(render(tmp_path), "Deployment")[0]["spec"]["template"]["spec"]
    for job in jobs:
        pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        [container] = pod["containers"]
        product = job["metadata"]["name"].rsplit("-", 1)[1]
        assert container["args"] == ["run", "--once", "--scheduled", "--product", product]
        assert container["securityContext"] == daemon["containers"][0]["securityContext"]
        assert pod["securityContext"] == daemon["securityContext"]
        assert pod["automountServiceAccountToken"] is False


def test_the_daemon_may_have_replicas(tmp_path: Path) -> None:
    docs = render(tmp_path, "-f", str(FULL_VALUES), "--set", "replicaCount=3")
    _validate(tmp_path, [d for d in docs if d["kind"] not in ("ServiceMonitor", "PrometheusRule")])
    [deployment] = of_kind(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 3


def test_the_cli_has_what_the_cronjob_runs() -> None:
    """`run --once --scheduled --product P` exists, with help text for each option."""
    run = main.commands["run"]
    helps = {p.name: getattr(p, "help", "") for p in run.params}
    assert helps["scheduled"] and "tick" in helps["scheduled"]
    assert helps["product"] and helps["once"]
