"""The hash-chained audit trail and the state store, on SQLite."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import itertools
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine

from worker.audit import AuditTrail, canonical_json, record_hash
from worker.errors import AuditWriteError, StateError
from worker.events import (
    BatchApplied,
    BatchFailed,
    BatchIntent,
    ConnectorStatus,
    Event,
    Outcome,
    RuleEvaluated,
    RunFinished,
    RunStarted,
)
from worker.retry import RetryPolicy
from worker.state import ZERO_HASH, StateStore
from worker.state.models import metadata
from worker.state.runlog import RunClosed
from worker.verify import verify

START = dt.datetime(2025, 3, 1, 2, 0, tzinfo=dt.UTC)
PEPPER = b"test-pepper"


class Clock:
    """A clock that advances one millisecond per reading; thread-safe."""

    def __init__(self) -> None:
        self._ticks = itertools.count()
        self._lock = threading.Lock()

    def __call__(self) -> dt.datetime:
        with self._lock:
            return START + dt.timedelta(milliseconds=next(self._ticks))


def key_hash(key: object) -> str:
    return hmac.new(PEPPER, str(key).encode(), hashlib.sha256).hexdigest()


def run_events(run_id: str, batches: int = 2, *, dry_run: bool = False) -> list[Event]:
    """A realistic run: start, per batch intent + applied, one failed batch, finish."""
    common = {"run_id": run_id, "customer": "kdv-zonnestraal", "product": "flexkids"}
    rule = {"rule": "child-after-deregistration", "action": "anonymise", "table": "children"}
    events: list[Event] = [RunStarted(**common, at=START, dry_run=dry_run)]
    for n in range(batches):
        keys = tuple(key_hash(f"{run_id}-{n}-{i}") for i in range(3))
        events.append(BatchIntent(**common, **rule, batch=n, key_hashes=keys, cutoff=START.date()))
        events.append(
            BatchApplied(
                **common,
                **rule,
                batch=n,
                rows={"children": 3, "contacts": 2},
                categories=("name", "birth_date"),
                duration_seconds=0.01,
            )
        )
    events.append(
        BatchFailed(
            **common,
            **rule,
            batch=batches,
            duration_seconds=0.01,
            error="IntegrityError: duplicate key (email)=(jan@example.nl)",
        )
    )
    processed = {("child-after-deregistration", "anonymise"): {"children": 3 * batches}}
    events.append(
        RunFinished(
            **common,
            outcome=Outcome.SUCCEEDED,
            at=START + dt.timedelta(minutes=1),
            duration_seconds=60.0,
            processed=processed,
            dry_run=dry_run,
        )
    )
    return events


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "state.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[StateStore]:
    store = StateStore(f"sqlite:///{db_path}")
    store.migrate()
    yield store
    store.close()


def record(store: StateStore, events: list[Event]) -> None:
    trail = AuditTrail(store, Clock())
    for event in events:
        trail(event)


def sql(db_path: Path, statement: str, *params: object) -> list[tuple[object, ...]]:
    """Tamper with the state database behind the store's back."""
    with sqlite3.connect(db_path) as conn:
        return conn.execute(statement, params).fetchall()


def rows(db_path: Path) -> list[tuple[object, ...]]:
    return sql(db_path, "SELECT seq, kind, payload, prev_hash, hash FROM audit_events ORDER BY seq")


def test_a_recorded_run_verifies_and_finishes_its_run_row(store: StateStore) -> None:
    """Every audited event of a run becomes one chained record, and the run row is finished."""
    record(store, run_events("a" * 32))
    result = verify(store)
    assert result.ok, result.reason
    assert result.checked == 7
    assert result.first_bad_seq is None
    (run,) = store.recent_runs(5)
    assert (run.run_id, run.outcome, run.rows_changed, run.dry_run) == (
        "a" * 32,
        "succeeded",
        6,
        False,
    )
    assert run.started_at == START
    assert run.finished_at == START + dt.timedelta(minutes=1)


def test_the_chain_can_be_recomputed_from_the_documented_formula(
    store: StateStore, db_path: Path
) -> None:
    """hash = sha256(prev_hash || canonical JSON of the record), the first prev_hash 64 zeros."""
    record(store, run_events("b" * 32, batches=1))
    stored = sql(
        db_path,
        "SELECT seq, run_id, kind, customer, product, rule, action, payload, "
        "prev_hash, hash FROM audit_events ORDER BY seq",
    )
    prev = "0" * 64
    assert stored[0][8] == ZERO_HASH == prev
    for n, (
        seq,
        run_id,
        kind,
        customer,
        product,
        rule,
        action,
        payload,
        prev_hash,
        hash_,
    ) in enumerate(stored):
        assert prev_hash == prev
        body = {
            "seq": seq,
            "at": (START + dt.timedelta(milliseconds=n)).isoformat(timespec="microseconds"),
            "run_id": run_id,
            "kind": kind,
            "customer": customer,
            "product": product,
            "rule": rule,
            "action": action,
            "payload": json.loads(str(payload)),
        }
        text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert hash_ == hashlib.sha256(prev.encode() + text.encode()).hexdigest()
        assert payload == canonical_json(json.loads(str(payload)))
        prev = str(hash_)


def test_payloads_hold_key_hashes_and_counts_but_no_personal_values(
    store: StateStore, db_path: Path
) -> None:
    """Intent stores the keyed hashes; a failed batch keeps only the error class name."""
    events = run_events("c" * 32, batches=1)
    record(store, events)
    payloads = {str(kind): json.loads(str(p)) for _, kind, p, _, _ in rows(db_path)}
    intent = events[1]
    assert isinstance(intent, BatchIntent)
    assert payloads["batch.intent"] == {
        "table": "children",
        "batch": 0,
        "cutoff": "2025-03-01",
        "keys": 3,
        "key_hashes": list(intent.key_hashes),
        "rows": dict(intent.rows),
    }
    assert payloads["batch.applied"]["rows"] == {"children": 3, "contacts": 2}
    assert payloads["batch.applied"]["categories"] == ["birth_date", "name"]
    assert payloads["batch.failed"]["error"] == "IntegrityError"
    assert payloads["run.finished"]["error"] is None
    assert payloads["run.finished"]["processed"] == [
        {"rule": "child-after-deregistration", "action": "anonymise", "rows": {"children": 3}}
    ]
    dump = json.dumps(rows(db_path))
    assert "jan@example.nl" not in dump
    assert "c" * 32 + "-0-0" not in dump  # a raw record key


def test_an_intent_with_raw_keys_is_refused_and_nothing_is_written(store: StateStore) -> None:
    """Key hashes that are not hex digests (raw keys by mistake) stop the batch, unwritten."""
    trail = AuditTrail(store, Clock())
    trail(run_events("d" * 32)[0])
    raw = BatchIntent(
        run_id="d" * 32,
        customer="kdv-zonnestraal",
        product="flexkids",
        rule="r",
        action="delete",
        table="children",
        batch=0,
        key_hashes=("jan@example.nl",),
        cutoff=START.date(),
    )
    with pytest.raises(AuditWriteError, match="not lowercase hex") as info:
        trail(raw)
    assert "jan@example.nl" not in str(info.value)
    assert store.audit_count() == 1


def test_dry_runs_are_recorded_as_dry_and_change_nothing(store: StateStore, db_path: Path) -> None:
    """A dry run's start and end carry dry_run true, and its run row reports 0 rows changed."""
    events = run_events("e" * 32, batches=1, dry_run=True)
    record(store, [events[0], events[-1]])
    payloads = [json.loads(str(p)) for _, _, p, _, _ in rows(db_path)]
    assert payloads[0] == {"dry_run": True, "policy": ""}
    assert payloads[1]["dry_run"] is True
    assert payloads[1]["rows_changed"] == 0
    (run,) = store.recent_runs(1)
    assert run.dry_run is True
    assert run.rows_changed == 0


def test_events_that_are_not_evidence_are_ignored(store: StateStore) -> None:
    """Rule evaluations and connector status do not enter the trail."""
    trail = AuditTrail(store, Clock())
    trail(ConnectorStatus(customer="c", product="p", up=False))
    trail(
        RuleEvaluated(
            run_id="f" * 32,
            customer="c",
            product="p",
            rule="r",
            action="delete",
            table="t",
            eligible=5,
            lag_seconds=1.0,
            cutoff=START.date(),
            period="P1M",
            source="config",
        )
    )
    assert store.audit_count() == 0
    assert verify(store).ok


def test_an_altered_payload_is_found(store: StateStore, db_path: Path) -> None:
    """Changing a count in one record makes verify name that record."""
    record(store, run_events("1" * 32))
    sql(
        db_path,
        "UPDATE audit_events SET payload = replace(payload, '\"children\":3', "
        "'\"children\":1') WHERE seq = 3",
    )
    result = verify(store)
    assert (result.ok, result.first_bad_seq, result.checked) == (False, 3, 2)
    assert result.reason == "event 3: content does not match its hash"


def test_a_removed_middle_row_is_found(store: StateStore, db_path: Path) -> None:
    """Deleting one record leaves a gap that verify names."""
    record(store, run_events("2" * 32))
    sql(db_path, "DELETE FROM audit_events WHERE seq = 4")
    result = verify(store)
    assert (result.ok, result.first_bad_seq) == (False, 4)
    assert result.reason == "event 5: follows event 3; event 4 is missing"


def test_a_removed_and_renumbered_row_is_found(store: StateStore, db_path: Path) -> None:
    """Closing the gap by renumbering still breaks the chain at the renumbered record."""
    record(store, run_events("3" * 32))
    sql(db_path, "DELETE FROM audit_events WHERE seq = 4")
    sql(db_path, "UPDATE audit_events SET seq = seq - 1 WHERE seq > 4")
    sql(db_path, "UPDATE audit_head SET seq = seq - 1")
    result = verify(store)
    assert (result.ok, result.first_bad_seq) == (False, 4)
    assert result.reason.startswith("event 4: does not follow event 3")


def test_swapped_rows_are_found(store: StateStore, db_path: Path) -> None:
    """Exchanging two records' contents breaks the chain at the first of them."""
    record(store, run_events("4" * 32))
    columns = "at, run_id, kind, customer, product, rule, action, payload, prev_hash, hash"
    three, four = (
        sql(db_path, f"SELECT {columns} FROM audit_events WHERE seq = ?", n)[0] for n in (3, 4)
    )
    assign = ", ".join(f"{c} = ?" for c in columns.split(", "))
    sql(db_path, f"UPDATE audit_events SET {assign} WHERE seq = 3", *four)
    sql(db_path, f"UPDATE audit_events SET {assign} WHERE seq = 4", *three)
    result = verify(store)
    assert (result.ok, result.first_bad_seq, result.checked) == (False, 3, 2)
    assert "event 3: does not follow event 2" in result.reason


def test_a_resealed_record_is_found_at_the_next_record(store: StateStore, db_path: Path) -> None:
    """Altering a record and recomputing its hash breaks the link from the record after it."""
    record(store, run_events("5" * 32))
    with store.audit_snapshot() as (_, records):
        third = next(r for r in records if r.seq == 3)
    payload = {**json.loads(third.payload), "total": 1}
    fields = {
        k: getattr(third, k)
        for k in ("seq", "at", "run_id", "kind", "customer", "product", "rule", "action")
    }
    forged = record_hash(third.prev_hash, **fields, payload=payload)
    sql(
        db_path,
        "UPDATE audit_events SET payload = ?, hash = ? WHERE seq = 3",
        canonical_json(payload),
        forged,
    )
    result = verify(store)
    assert (result.ok, result.first_bad_seq, result.checked) == (False, 4, 3)
    assert result.reason.startswith("event 4: does not follow event 3")


def test_removed_last_rows_are_found_through_the_head(store: StateStore, db_path: Path) -> None:
    """Deleting the newest records is caught because the head still names the last seq."""
    record(store, run_events("6" * 32))
    sql(db_path, "DELETE FROM audit_events WHERE seq >= 6")
    result = verify(store)
    assert (result.ok, result.first_bad_seq, result.checked) == (False, 6, 5)
    assert result.reason == "the head says seq 7, the trail ends at 5: events 6 to 7 are missing"


def test_a_removed_head_row_is_found(store: StateStore, db_path: Path) -> None:
    """Without its head the trail's end cannot be trusted, and verify says so."""
    record(store, run_events("7" * 32))
    sql(db_path, "DELETE FROM audit_head")
    result = verify(store)
    assert (result.ok, result.first_bad_seq) == (False, 8)
    assert "head row is missing" in result.reason
    with pytest.raises(AuditWriteError, match="head row is missing"):
        record(store, run_events("8" * 32)[:1])


def test_verify_streams_long_trails_in_small_batches(store: StateStore) -> None:
    """A trail longer than many batches verifies in full."""
    record(store, [e for n in range(30) for e in run_events(f"{n:032x}", batches=3)])
    result = verify(store, batch_size=7)
    assert (result.ok, result.checked) == (True, 30 * 9)


def test_an_empty_trail_verifies(store: StateStore) -> None:
    """A fresh database has an intact, empty chain."""
    assert verify(store) == verify(store)
    assert verify(store).ok
    assert verify(store).checked == 0


def test_concurrent_appenders_never_fork_the_chain(store: StateStore) -> None:
    """Four threads appending at once produce one unbroken chain with every record in it."""
    trail = AuditTrail(store, Clock())
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def work(n: int) -> None:
        try:
            barrier.wait()
            for event in run_events(f"{n:032x}", batches=10):
                trail(event)
        except BaseException as exc:  # noqa: BLE001  (collected and asserted below)
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    result = verify(store)
    assert (result.ok, result.checked) == (True, 4 * 23), result.reason


def test_a_vanished_state_database_raises_audit_write_error(
    store: StateStore, db_path: Path
) -> None:
    """When the state file is gone the write fails loudly, with the driver error as cause."""
    trail = AuditTrail(store, Clock())
    trail(run_events("9" * 32)[0])
    store.close()
    for path in db_path.parent.iterdir():
        path.unlink()
    with pytest.raises(AuditWriteError, match=r"could not write batch\.intent") as info:
        trail(run_events("9" * 32)[1])
    assert isinstance(info.value.__cause__, StateError)
    assert info.value.__cause__.__cause__ is not None


def test_an_unopenable_state_database_raises_audit_write_error(tmp_path: Path) -> None:
    """A state URL pointing at a folder cannot be written: the run's start is refused."""
    folder = tmp_path / "not-a-file"
    folder.mkdir()
    trail = AuditTrail(StateStore(f"sqlite:///{folder}"), Clock())
    with pytest.raises(AuditWriteError, match=r"could not write run\.started"):
        trail(run_events("a" * 32)[0])


def test_migrate_twice_is_a_no_op(store: StateStore, db_path: Path) -> None:
    """A second migrate keeps the data and the revision, and check() passes."""
    record(store, run_events("b" * 32))
    before = rows(db_path), sql(db_path, "SELECT version_num FROM alembic_version")
    store.migrate()
    store.check()
    assert (rows(db_path), sql(db_path, "SELECT version_num FROM alembic_version")) == before
    assert verify(store).ok


def test_check_before_migrate_says_what_to_run(tmp_path: Path) -> None:
    """An unmigrated database is refused with the command that fixes it."""
    store = StateStore(f"sqlite:///{tmp_path / 'new' / 'state.db'}")
    with pytest.raises(StateError, match="has no schema yet; run `retention-worker migrate`"):
        store.check()
    assert (tmp_path / "new").is_dir()


def test_check_refuses_a_schema_from_a_newer_worker(store: StateStore, db_path: Path) -> None:
    """An unknown revision (a newer worker migrated it) is refused by check and migrate."""
    sql(db_path, "UPDATE alembic_version SET version_num = 'ffff'")
    with pytest.raises(StateError, match=r"does not know .* upgrade the worker"):
        store.check()
    with pytest.raises(StateError, match="Can't locate revision") as info:
        store.migrate()
    assert info.value.__cause__ is not None


def test_models_and_migrations_agree(store: StateStore, db_path: Path) -> None:
    """The tables the code describes are exactly the tables the migrations create."""
    engine = create_engine(f"sqlite:///{db_path}")
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    assert diff == []


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://worker:s3cret-pw@127.0.0.1:1/state",
        "not a url with s3cret-pw",
    ],
)
def test_errors_never_show_the_password(url: str) -> None:
    """Connection and parse failures name the database with its password masked."""
    with pytest.raises(StateError) as info:
        StateStore(url).ping()
    assert "s3cret-pw" not in str(info.value)


def test_finishing_an_unknown_run_is_an_error(store: StateStore) -> None:
    """A run that never started cannot be finished silently."""
    with pytest.raises(StateError, match="was never started"):
        store.finish_run("0" * 32, "failed", START, 0, "ConnectorError")


def test_a_runs_end_is_recorded_once(store: StateStore) -> None:
    """The same end again (a retry whose first attempt committed) changes nothing; another
    end of a run that already ended is refused, and the first one stays."""
    run_id = "1" * 32
    store.start_run(run_id, "kdv", "flexkids", START, False)
    store.finish_run(run_id, "crashed", START, 3, "RunCrashed")
    store.finish_run(run_id, "crashed", START, 3, "RunCrashed")
    with pytest.raises(RunClosed, match=r"already ended \(crashed\)"):
        store.finish_run(run_id, "interrupted", START + dt.timedelta(seconds=5), 7, None)
    [run] = [r for r in store.recent_runs() if r.run_id == run_id]
    assert (run.outcome, run.rows_changed) == ("crashed", 3)


def test_naive_times_are_refused(store: StateStore) -> None:
    """Times must carry a zone; the trail refuses a naive clock rather than guess."""
    naive: Callable[[], dt.datetime] = lambda: dt.datetime(2025, 3, 1)  # noqa: E731
    with pytest.raises(AuditWriteError, match="naive"):
        AuditTrail(store, naive)(run_events("c" * 32)[0])


def test_record_hash_depends_on_every_field() -> None:
    """Changing any covered field, or the previous hash, changes the hash."""
    base = {
        "seq": 1,
        "at": START,
        "run_id": "r",
        "kind": "run.started",
        "customer": "c",
        "product": "p",
        "rule": None,
        "action": None,
        "payload": {"dry_run": False},
    }
    reference = record_hash(ZERO_HASH, **base)  # type: ignore[arg-type]
    changes = {
        "seq": 2,
        "at": START + dt.timedelta(microseconds=1),
        "run_id": "s",
        "kind": "x",
        "customer": "d",
        "product": "q",
        "rule": "r",
        "action": "delete",
        "payload": {"dry_run": True},
    }
    for field, value in changes.items():
        assert record_hash(ZERO_HASH, **{**base, field: value}) != reference, field  # type: ignore[arg-type]
    assert record_hash("1" * 64, **base) != reference  # type: ignore[arg-type]


def test_an_append_whose_reply_was_lost_is_not_written_twice(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first attempt commits, then its reply is lost (a transient error): the retry finds
    the record in the trail and returns it; the trail holds each event once and verifies."""
    store._retry = RetryPolicy(sleep=lambda _s: None)
    original = store._write
    lost = {"left": 2}  # the reply of the 2nd and 3rd writes is lost

    @contextlib.contextmanager
    def write_then_lose_reply(doing: str) -> Iterator[Any]:
        with original(doing) as conn:
            yield conn
        if lost["left"] and "audit" in doing:
            lost["left"] -= 1
            raise StateError("connection lost after COMMIT", transient=True)

    monkeypatch.setattr(store, "_write", write_then_lose_reply)
    events = run_events("c" * 32)
    record(store, events)
    assert lost["left"] == 0
    kinds = [row[1] for row in rows_of(store)]
    assert kinds == [e.name for e in events]
    assert verify(store).ok


def rows_of(store: StateStore) -> list[tuple[object, ...]]:
    with store.audit_snapshot() as (_head, records):
        return [(r.seq, r.kind) for r in records]
