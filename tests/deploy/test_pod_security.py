"""The rendered chart meets the restricted Pod Security Standard, field by field.

Checked on every pod the chart can render (the Deployment, the migrate Job, each CronJob),
with default values, with every optional resource on, and in cronjobs mode. The fields are
those of the Kubernetes Pod Security Standards (restricted, which includes baseline), v1.32:
https://kubernetes.io/docs/concepts/security/pod-security-standards/
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.tools import FULL_VALUES, of_kind, pod_specs, render

CASES = {
    "default": [],
    "full": ["-f", str(FULL_VALUES)],
    "cronjobs": ["-f", str(FULL_VALUES), "--set", "mode=cronjobs"],
}
# Restricted: only these volume types.
ALLOWED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
# Baseline: the sysctls considered safe.
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}
SELINUX_TYPES = {
    None,
    "",
    "container_t",
    "container_init_t",
    "container_kvm_t",
    "container_engine_t",
}


def restricted_violations(spec: dict[str, Any]) -> list[str]:
    """Every way `spec` (a PodSpec) falls short of the restricted standard; [] when it meets it."""
    problems: list[str] = []
    pod_sc = spec.get("securityContext") or {}
    containers = [
        *spec.get("initContainers", []),
        *spec.get("containers", []),
        *spec.get("ephemeralContainers", []),
    ]
    # --- baseline ---
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            problems.append(f"{field} is set")
    if (pod_sc.get("windowsOptions") or {}).get("hostProcess"):
        problems.append("pod windowsOptions.hostProcess")
    for volume in spec.get("volumes", []):
        kinds = set(volume) - {"name"}
        if "hostPath" in kinds:
            problems.append(f"volume {volume['name']} is a hostPath")
        if not kinds <= ALLOWED_VOLUMES:
            problems.append(f"volume {volume['name']} has type {sorted(kinds)}")
    for sysctl in pod_sc.get("sysctls", []):
        if sysctl["name"] not in SAFE_SYSCTLS:
            problems.append(f"unsafe sysctl {sysctl['name']}")
    for where, sc in [("pod", pod_sc)] + [
        (c["name"], c.get("securityContext") or {}) for c in containers
    ]:
        selinux = sc.get("seLinuxOptions") or {}
        if selinux.get("type") not in SELINUX_TYPES or selinux.get("user") or selinux.get("role"):
            problems.append(f"{where}: seLinuxOptions {selinux}")
        apparmor = (sc.get("appArmorProfile") or {}).get("type")
        if apparmor not in (None, "RuntimeDefault", "Localhost"):
            problems.append(f"{where}: appArmorProfile {apparmor}")
        seccomp = (sc.get("seccompProfile") or {}).get("type")
        if seccomp not in (None, "RuntimeDefault", "Localhost"):
            problems.append(f"{where}: seccompProfile {seccomp}")
    # --- restricted: pod level ---
    if pod_sc.get("runAsUser") == 0:
        problems.append("pod runAsUser is 0")
    for container in containers:
        name = container["name"]
        sc = container.get("securityContext") or {}
        if sc.get("privileged"):
            problems.append(f"{name}: privileged")
        if (sc.get("windowsOptions") or {}).get("hostProcess"):
            problems.append(f"{name}: windowsOptions.hostProcess")
        if sc.get("procMount", "Default") != "Default":
            problems.append(f"{name}: procMount {sc['procMount']}")
        for port in container.get("ports", []):
            if port.get("hostPort"):
                problems.append(f"{name}: hostPort {port['hostPort']}")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation is not false")
        non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
        if non_root is not True:
            problems.append(f"{name}: runAsNonRoot is not true")
        if sc.get("runAsUser") == 0:
            problems.append(f"{name}: runAsUser is 0")
        seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name}: seccompProfile is {seccomp}, not RuntimeDefault or Localhost")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            problems.append(f"{name}: capabilities do not drop ALL")
        added = set(caps.get("add") or []) - {"NET_BIND_SERVICE"}
        if added:
            problems.append(f"{name}: adds capabilities {sorted(added)}")
    return problems


@pytest.fixture(scope="module", params=sorted(CASES))
def rendered(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> list[dict[str, Any]]:
    return render(tmp_path_factory.mktemp(request.param), *CASES[request.param])


def test_every_pod_meets_the_restricted_standard(rendered: list[dict[str, Any]]) -> None:
    specs = pod_specs(rendered)
    assert specs, "the chart rendered no pod"
    found = {name: restricted_violations(spec) for name, spec in specs}
    assert found == {name: [] for name, _ in specs}


def test_the_check_finds_each_kind_of_violation(tmp_path: Path) -> None:
    """The checker is not blind: each field, spoiled on the rendered Deployment, is reported."""
    (deployment,) = of_kind(render(tmp_path), "Deployment")
    spec = deployment["spec"]["template"]["spec"]
    spoilers = {
        "hostNetwork": lambda s: s.update(hostNetwork=True),
        "hostPath": lambda s: s["volumes"].append({"name": "h", "hostPath": {"path": "/"}}),
        "runAsNonRoot": lambda s: [
            s["securityContext"].pop("runAsNonRoot"),
            s["containers"][0]["securityContext"].pop("runAsNonRoot"),
        ],
        "allowPrivilegeEscalation": lambda s: s["containers"][0]["securityContext"].pop(
            "allowPrivilegeEscalation"
        ),
        "drop ALL": lambda s: s["containers"][0]["securityContext"]["capabilities"].update(drop=[]),
        "adds": lambda s: s["containers"][0]["securityContext"]["capabilities"].update(
            add=["SYS_ADMIN"]
        ),
        "seccompProfile": lambda s: [
            s["securityContext"].pop("seccompProfile"),
            s["containers"][0]["securityContext"].pop("seccompProfile"),
        ],
        "privileged": lambda s: s["containers"][0]["securityContext"].update(privileged=True),
        "hostPort": lambda s: s["containers"][0]["ports"][0].update(hostPort=9464),
        "runAsUser is 0": lambda s: s["securityContext"].update(runAsUser=0),
    }
    assert restricted_violations(spec) == []
    for expected, spoil in spoilers.items():
        spoiled = copy.deepcopy(spec)
        spoil(spoiled)
        problems = restricted_violations(spoiled)
        assert any(expected in p for p in problems), (expected, problems)


def test_root_filesystem_is_read_only_with_empty_dirs_where_the_worker_writes(
    rendered: list[dict[str, Any]],
) -> None:
    for name, spec in pod_specs(rendered):
        volumes = {v["name"]: v for v in spec["volumes"]}
        for container in spec["containers"]:
            assert container["securityContext"]["readOnlyRootFilesystem"] is True, name
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            for path in ("/tmp", "/var/lib/retention-worker"):  # noqa: S108  (mount paths)
                assert "emptyDir" in volumes[mounts[path]], (name, path)
            if name.endswith("-migrate"):
                continue  # the hook needs no configuration (see the hook's test)
            config = volumes[mounts["/etc/retention-worker/config"]]
            assert "configMap" in config, name
        assert spec["automountServiceAccountToken"] is False, name


def test_the_deployment_runs_one_daemon_with_probes_and_a_longer_grace(tmp_path: Path) -> None:
    docs = render(tmp_path, "-f", str(FULL_VALUES), "--set", "settings.stopGraceSeconds=45")
    (deployment,) = of_kind(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    spec = deployment["spec"]["template"]["spec"]
    (worker,) = spec["containers"]
    env = {e["name"]: e["value"] for e in worker["env"]}
    assert env["RETENTION_STOP_GRACE_SECONDS"] == "45"
    assert spec["terminationGracePeriodSeconds"] > 45
    assert worker["args"] == ["run"]
    assert worker["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert worker["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert worker["resources"]["requests"] and worker["resources"]["limits"]


def test_secrets_are_only_referenced_and_read_from_files(tmp_path: Path) -> None:
    docs = render(tmp_path, "-f", str(FULL_VALUES))
    assert of_kind(docs, "Secret") == []
    for name, spec in pod_specs(docs):
        (container,) = spec["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        for variable in ("RETENTION_STATE_URL", "RETENTION_PEPPER", "RETENTION_CHECKPOINT_KEY"):
            assert variable not in env, (name, variable)
            assert env[f"{variable}_FILE"].startswith("/etc/retention-worker/secrets/"), name
        secret = next(v for v in spec["volumes"] if v["name"] == "secrets")["secret"]
        assert secret["secretName"] == "retention-worker", name


def test_a_configuration_change_rolls_the_pods(tmp_path: Path) -> None:
    def checksum(*args: str) -> str:
        (deployment,) = of_kind(render(tmp_path, *args), "Deployment")
        return str(deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"])

    before = checksum()
    assert checksum() == before
    assert checksum("--set-string", "config.files.customers/x\\.yaml=customer: x") != before


def test_cronjobs_mode_runs_each_product_once_on_its_schedule(tmp_path: Path) -> None:
    docs = render(tmp_path, "-f", str(FULL_VALUES), "--set", "mode=cronjobs")
    assert of_kind(docs, "Deployment") == []
    assert of_kind(docs, "ServiceMonitor") == []
    jobs = {
        job["metadata"]["name"]: (
            job["spec"]["schedule"],
            job["spec"]["concurrencyPolicy"],
            job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"],
        )
        for job in of_kind(docs, "CronJob")
    }
    assert jobs == {
        "rw-retention-worker-flexkids": (
            "30 1 * * *",
            "Forbid",
            ["run", "--once", "--scheduled", "--product", "flexkids"],
        ),
        "rw-retention-worker-konnect": (
            "0 2 * * *",
            "Forbid",
            ["run", "--once", "--scheduled", "--product", "konnect"],
        ),
    }


def test_the_migrate_job_is_a_hook_that_needs_nothing_the_release_creates(tmp_path: Path) -> None:
    """A pre-install hook runs before the chart's own resources exist: the migrate Job may
    mount the user's Secret, but no ConfigMap of the release."""
    docs = render(tmp_path, "-f", str(FULL_VALUES))
    (job,) = of_kind(docs, "Job")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    spec = job["spec"]["template"]["spec"]
    assert spec["containers"][0]["args"] == ["migrate"]
    released = {
        doc["metadata"]["name"]
        for doc in docs
        if "helm.sh/hook" not in doc["metadata"].get("annotations", {})
    }
    used = {
        source.get("name") or source.get("secretName")
        for volume in spec["volumes"]
        for key, source in volume.items()
        if key in ("configMap", "secret")
    }
    assert used == {"retention-worker"}  # the existing Secret only
    assert not used & released
    env = {e["name"]: e["value"] for e in spec["containers"][0]["env"]}
    assert env["RETENTION_STATE_URL_FILE"] == "/etc/retention-worker/secrets/state-url"
