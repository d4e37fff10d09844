"""What the container image runs, tested outside it (no Docker engine here).

The Dockerfile's ENTRYPOINT and CMD, its ENV, its WORKDIR layout and its HEALTHCHECK script
are read from the Dockerfile and run with this virtualenv's `retention-worker`: migrate, then
the daemon, whose /healthz the healthcheck must find healthy, and unhealthy once it stops.
The build context that .dockerignore lets through holds what the Dockerfile copies, and no
virtualenv, tools, tests, configuration or demo data.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.acceptance.conftest import Setup
from tests.acceptance.harness import Worker, poll
from tests.support import REPO

DOCKERFILE = REPO / "Dockerfile"
HEALTHCHECK = REPO / "deploy" / "docker" / "healthcheck.py"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile's final stage, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text("utf-8"))
    lines = [
        line.strip()
        for line in text.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    stages: list[list[tuple[str, str]]] = []
    for line in lines:
        word, _, rest = line.partition(" ")
        if word.upper() == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((word.upper(), rest.strip()))
    return stages[-1]


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for word, rest in instructions():
        if word == "ENV":
            for name, value in re.findall(r"(\w+)=(\S+)", rest):
                env[name] = value
    return env


def exec_form(word: str) -> list[str]:
    (rest,) = [rest for w, rest in instructions() if w == word]
    return list(json.loads(rest))


def test_the_image_runs_the_daemon_as_a_fixed_non_root_user() -> None:
    assert exec_form("ENTRYPOINT") == ["retention-worker"]
    assert exec_form("CMD") == ["run"]
    (user,) = [rest for w, rest in instructions() if w == "USER"]
    uid, _, gid = user.partition(":")
    assert int(uid) >= 10000 and int(gid) >= 10000
    env = image_env()
    assert env["RETENTION_CONFIG_DIR"] == "/etc/retention-worker/config"
    assert env["RETENTION_HTTP_PORT"] == "9464"
    healthcheck = next(rest for w, rest in instructions() if w == "HEALTHCHECK")
    assert "/opt/retention-worker/healthcheck.py" in healthcheck
    copies = [rest for w, rest in instructions() if w == "COPY"]
    assert "deploy/docker/healthcheck.py /opt/retention-worker/healthcheck.py" in copies
    # No compiler or package manager in the final stage.
    runs = " ".join(rest for w, rest in instructions() if w == "RUN")
    assert not re.search(r"apt-get install|gcc|build-essential", runs)


def healthcheck(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(HEALTHCHECK)],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_the_images_command_and_healthcheck_work_outside_it(
    setup: Callable[..., Setup], tmp_path: Path
) -> None:
    """`retention-worker migrate` then `run` with the image's ENV in a WORKDIR of their own:
    the HEALTHCHECK script passes while the daemon runs and fails once it has stopped."""
    made = setup()
    entry = shutil.which("retention-worker", path=str(Path(sys.executable).parent))
    assert entry is not None, "the retention-worker console script is not installed"
    workdir = tmp_path / "var-lib-retention-worker"
    workdir.mkdir()
    env = {k: v for k, v in made.env.items() if k != "RETENTION_STATE_URL"}
    # The image's settings; the configuration is "mounted" at its own path here, and the
    # port is a free one. The state database is the default SQLite file in the WORKDIR.
    env |= image_env() | {
        "PATH": f"{Path(entry).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "RETENTION_CONFIG_DIR": str(made.config_dir),
        "RETENTION_HTTP_PORT": str(made.port),
    }
    migrated = subprocess.run(
        [entry, "migrate"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert migrated.returncode == 0, migrated.stderr
    assert (workdir / ".retention" / "state.db").is_file()

    assert healthcheck(env).returncode == 1  # nothing listens yet
    worker = Worker([*exec_form("ENTRYPOINT"), *exec_form("CMD")], env, made.port, cwd=workdir)
    made.started.append(worker)
    poll(lambda: healthcheck(env).returncode == 0, 30, f"the healthcheck to pass\n{worker.tail()}")
    assert worker.get("/readyz")[0] == 200
    assert worker.stop() == 0, worker.tail()
    failed = healthcheck(env)
    assert failed.returncode == 1
    assert f"127.0.0.1:{made.port}/healthz unreachable" in failed.stderr


def build_context() -> set[str]:
    """Files of the repository that .dockerignore lets into the build context.

    Docker's rules: patterns match paths from the context root; a later pattern wins over
    an earlier one; `!` re-includes; a pattern matching a folder covers everything in it.
    """
    patterns = []
    for line in (REPO / ".dockerignore").read_text("utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            patterns.append((line.startswith("!"), line.lstrip("!").rstrip("/")))
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    extra = [".venv/bin/python", ".tools/bin/helm", ".git/HEAD", ".demo/demo.env"]

    def matches(pattern: str, path: str) -> bool:
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        pat = pattern.replace("**/", "*/") if pattern.startswith("**/") else pattern
        return any(
            fnmatch.fnmatchcase(p, pattern) or fnmatch.fnmatchcase(p, pat) for p in prefixes
        ) or (
            pattern.startswith("**/")
            and any(fnmatch.fnmatchcase(part, pattern[3:]) for part in parts)
        )

    included = set()
    for path in [*listed, *extra]:
        keep = True
        for negated, pattern in patterns:
            if matches(pattern, path):
                keep = negated
        if keep:
            included.add(path)
    return included


def test_dockerignore_lets_in_what_the_dockerfile_copies_and_nothing_private() -> None:
    context = build_context()
    for word, rest in instructions():
        if word != "COPY" or rest.startswith("--from"):
            continue
        for source in rest.split()[:-1]:
            assert any(p == source or p.startswith(source.rstrip("/") + "/") for p in context), (
                source
            )
    assert "worker/cli.py" in context
    for private in (".venv/", ".tools/", ".git/", ".demo/", "tests/", "config/", "helm/"):
        assert not [p for p in context if p.startswith(private)], private
