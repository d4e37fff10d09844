"""Hostile configuration input: exit 2, a located message, no traceback, bounded time and
memory, and not one statement sent to a database.

Every case of tests/hostile/ (over 300, every kind of bad input) runs the real command,
`retention-worker validate` without --offline, in-process through click's CliRunner, with
the product URLs pointing at real SQLite files that hold the demo schemas: were a broken
file to get past the checks, validate would open those databases and query them. A
SQLAlchemy listener on the Engine class counts every statement and every connection made
meanwhile; both must stay zero. The control case (the unbroken configuration) shows that
the same harness does count statements.

Bounds, per file: 10 s of wall time and 64 MB of Python allocations (tracemalloc peak),
in-process; and for the heaviest cases, a separate process whose own peak resident size is
read from getrusage and whose address space is capped, so a regression cannot eat the
machine (anchors nested nine deep once grew `validate --offline` past 8 GB).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from demo.schemas import create_schema
from tests.hostile import FLEX, KDV, Case, hostile_cases
from tests.support import RUN_DIR, copy_config, product_env
from worker.cli import main

CASES = hostile_cases()
MAX_SECONDS = 10.0
MAX_PYTHON_BYTES = 64 * 1024 * 1024
MAX_RSS_KIB = 400 * 1024  # a whole `python -m worker validate` process, imports included


class Counter:
    """Counts statements and connections on every Engine while installed."""

    def __init__(self) -> None:
        self.statements = 0
        self.connections = 0

    def statement(self, *_args: Any) -> None:
        self.statements += 1

    def connection(self, *_args: Any) -> None:
        self.connections += 1


@pytest.fixture(scope="module")
def product_urls(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Real SQLite product databases with the demo schemas, as the environment names them."""
    folder = tmp_path_factory.mktemp("products")
    env = product_env(*(f"sqlite:///{folder / name}.db" for name in ("flexkids", "kdv", "vlinder")))
    create_schema(env["FLEXKIDS_DATABASE_URL"], "flexkids")
    create_schema(env["KONNECT_ZONNESTRAAL_DATABASE_URL"], "konnect")
    create_schema(env["KONNECT_DE_VLINDER_DATABASE_URL"], "konnect")
    return env


@pytest.fixture
def counter() -> Iterator[Counter]:
    found = Counter()
    sa.event.listen(sa.engine.Engine, "before_cursor_execute", found.statement)
    sa.event.listen(sa.engine.Engine, "engine_connect", found.connection)
    try:
        yield found
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", found.statement)
        sa.event.remove(sa.engine.Engine, "engine_connect", found.connection)


def validate(config_dir: Path, env: dict[str, str]) -> tuple[Any, float, int]:
    """Run `validate` (live, not --offline); return the result, seconds and peak bytes."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        result = CliRunner().invoke(
            main, ["validate", "--config", str(config_dir)], env=env, catch_exceptions=True
        )
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return result, elapsed, peak


def located(output: str, where: str) -> list[str]:
    """The problem lines naming `where` followed by a place inside it and a message."""
    if where.startswith("RETENTION_"):
        return [line for line in output.splitlines() if line.startswith(f"error: {where} ")]
    pattern = re.compile(rf"^\s*{re.escape(where)}: (?P<place>[^:]+?): \S")
    return [line for line in output.splitlines() if pattern.match(line)]


def test_the_corpus_covers_every_kind_with_over_200_files() -> None:
    """At least 200 cases, every kind of bad input of issue 6 among them."""
    kinds = {c.kind for c in CASES}
    assert len(CASES) >= 200
    assert kinds == {
        "impossible date",
        "non-UTF-8 bytes",
        "alias expansion",
        "deep nesting",
        "file over the size limit",
        "number too large",
        "zero period or minimum",
        "not a plain SQL identifier",
        "bad RETENTION_* value",
        ".yml file",
        "duplicate key",
        "tenant value",
        "tenant two customers share",
        "YAML that is no configuration",
        "not a regular file",
    }


def test_the_unbroken_configuration_passes_and_the_counter_counts(
    tmp_path: Path, product_urls: dict[str, str], counter: Counter
) -> None:
    """Control: the same harness on the unbroken configuration exits 0 after real queries."""
    result, _, _ = validate(copy_config(tmp_path), product_urls)
    assert result.exit_code == 0, result.output
    assert "3 database(s) match their mapping" in result.output
    assert counter.connections > 0
    assert counter.statements > 0


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input_exits_2_located_bounded_and_before_any_database(
    case: Case, tmp_path: Path, product_urls: dict[str, str], counter: Counter
) -> None:
    """Exit 2; the file (or variable) and a place in it named; no traceback; in bounds;
    not one connection and not one statement."""
    config_dir = copy_config(tmp_path)
    case.apply(config_dir)
    env = {k: v.replace("{tmp}", str(tmp_path)) for k, v in case.env.items()}
    result, elapsed, peak = validate(config_dir, {**product_urls, **env})

    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert "Traceback" not in result.output
    assert result.exit_code == 2, result.output
    lines = located(result.output, case.where)
    assert lines, result.output
    assert any(case.expect in line for line in lines), result.output
    assert (counter.connections, counter.statements) == (0, 0)
    assert elapsed < MAX_SECONDS
    assert peak < MAX_PYTHON_BYTES, f"{peak / 1e6:.1f} MB"


HEAVY = [
    "laughs-used-flexkids",
    "laughs-used-kdv-zonnestraal",
    "laughs-9x9-flexkids",
    "merge-bomb",
    "long-text-aliases",
    "nesting-brackets-100k-kdv-zonnestraal",
    "size-keys-flexkids",
]
RUN_WITH_RUSAGE = """
import resource, sys
from worker.cli import main


def peak_kib():
    # VmHWM: this process's own peak. Not ru_maxrss, which on Linux a child inherits from
    # its parent across fork and exec (a pytest worker of 500 MiB gave every case 528 MiB).
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


try:
    main(sys.argv[1:], prog_name="retention-worker")
finally:
    print(f"maxrss={peak_kib()}", file=sys.stderr)
"""


def _cap_address_space() -> None:
    import resource

    cap = 3 * 1024**3  # a regression fails here, instead of growing past 8 GB
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))


@pytest.mark.parametrize("name", HEAVY)
def test_the_heaviest_cases_stay_small_in_a_process_of_their_own(name: str, tmp_path: Path) -> None:
    """A real process: exit 2 within 30 s and a peak resident size under 400 MB."""
    [case] = [c for c in CASES if c.id == name]
    config_dir = copy_config(tmp_path)
    case.apply(config_dir)
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            RUN_WITH_RUSAGE,
            "validate",
            "--offline",
            "--config",
            str(config_dir),
        ],
        cwd=RUN_DIR,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        preexec_fn=_cap_address_space,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert located(done.stderr, case.where), done.stderr
    rss = int(re.findall(r"maxrss=(\d+)", done.stderr)[-1])
    assert rss < MAX_RSS_KIB, f"{rss / 1024:.0f} MiB"


YAML_VALUES = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=True),
        st.text(max_size=30),
        st.sampled_from(["2026-13-30", "01042", "10:42", "x; DROP TABLE y", "0d", "~", "yes"]),
    ),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
SPOTS = [
    (KDV, "tenant: 1042", "tenant: {}"),
    (KDV, "end_of_service: 2026-06-30", "end_of_service: {}"),
    (KDV, "child_months: 36", "child_months: {}"),
    (KDV, "timezone: Europe/Amsterdam", "timezone: {}"),
    (FLEX, "table: app_user", "table: {}"),
    (FLEX, "period: 1m\n", "period: {}\n"),
    (FLEX, "full_name: name", "full_name: {}"),
]


@given(
    spot=st.sampled_from(SPOTS),
    value=YAML_VALUES,
    raw=st.binary(max_size=200),
    mode=st.sampled_from(["value", "bytes"]),
)
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_any_value_anywhere_never_crashes_and_never_queries_when_refused(
    tmp_path_factory: pytest.TempPathFactory,
    product_urls: dict[str, str],
    spot: tuple[str, str, str],
    value: Any,
    raw: bytes,
    mode: str,
) -> None:
    """Random values at sensitive places, or random bytes as a file: 0 or 2, never a crash;
    a refused configuration sends not one statement."""
    config_dir = copy_config(tmp_path_factory.mktemp("fuzz"))
    file, old, template = spot
    path = config_dir / file
    if mode == "value":
        text = path.read_text(encoding="utf-8")
        path.write_text(
            text.replace(old, template.replace("{}", json.dumps(value, default=str))),
            encoding="utf-8",
        )
    else:
        path.write_bytes(raw)
    found = Counter()
    sa.event.listen(sa.engine.Engine, "before_cursor_execute", found.statement)
    try:
        result, elapsed, _ = validate(config_dir, product_urls)
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", found.statement)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert result.exit_code in (0, 2), result.output
    if result.exit_code == 2 and "problem(s) in" in result.output:
        assert found.statements == 0
        assert located(result.output, f"config/{file}"), result.output
    assert elapsed < MAX_SECONDS
