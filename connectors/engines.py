"""Engines and reflected schemas shared by every connector of one process, per database.

A product database shared by hundreds of customers is reached through one engine — one
connection pool and one cache of compiled statements (SQLAlchemy's `query_cache_size`) —
and read through one reflected schema, instead of a new engine and a fresh reflection for
every customer × product run. An engine is keyed by `engine_key`: the database URL (with its
password: the key is a digest, never the URL), the session timeouts and the engine options,
so two connectors share an engine only when their sessions would be the same.

A reflected schema never hides drift: every `verify` first reads a fingerprint of the
mapped tables from the database's catalog (one query, `connectors.sqlstamp`), and reflects
again when it differs from the one taken with the cached reflection. The fingerprint is
read before reflecting, so a change that lands in between makes the next run reflect again.

An idle run may borrow that fingerprint (`survey(reuse_seconds=...)`): when another caller
read the fingerprint of the same tables at most that many seconds ago and the cached
reflection is of it, no query is made and the answer says `borrowed`. A connector refuses
to change rows on a borrowed answer (connectors/sqlschemaview.py `_own_schema`);
worker/drift.py says when a run reads it itself.

The same query fingerprints every foreign key of the database (`sqlstamp.Stamp.keys`: any
table's, mapped or not, its ON DELETE action included), and the foreign keys the ON DELETE
checks read (`connectors.sqlschema.all_foreign_keys`, those of tables in other schemas or
databases pointing into this one included: `connectors.sqloutside`) are cached with it
(`foreign_keys`): read again only when that fingerprint is not the one they were read under.
They are kept only when two reads under the same fingerprint, by two runs, found the same
keys, and the fingerprint read again after the second is still that one: a migration that
drops a key and adds it back (A→B→A) while one run reads leaves that run with keys without
it, but the next run's read differs, so they are never kept (until then every run reads its
own, as without the cache).

Entries end when no configured pair uses them any more (`retain`, after a configuration
reload), when a pair's URL changes (`assign`), when more than `limit` databases are open
(the least recently used is disposed: one database per customer must not keep thousands of
pools open) and on `dispose` (the daemon's stop). Thread-safe: the daemon runs pairs in
parallel.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from connectors import sqlstamp
from connectors.base import ForeignKeyRef, Timeouts
from connectors.session import reading
from connectors.sqlinherit import note_inherited

ForeignKeys = Mapping[str, list[ForeignKeyRef]]
"""Every foreign key of a database by referred table (`connectors.sqlschema.all_foreign_keys`);
never changed once read (readers copy)."""

DEFAULT_LIMIT = 64
"""Databases whose engines one process keeps open at most (least recently used go first)."""


def engine_key(url: sa.URL, timeouts: Timeouts, options: Mapping[str, Any]) -> str:
    """The cache key of an engine: a SHA-256 hex digest of the URL (password included: two
    users of one server are two pools), the timeouts and the engine options."""
    text = repr(
        (
            url.render_as_string(hide_password=False),
            timeouts,
            sorted((k, repr(v)) for k, v in options.items()),
        )
    )
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Reflected:
    """The reflection of a set of tables, as of the catalog fingerprint `stamp`.

    `existing`: those of the tables that existed (as `Inspector.get_table_names` says);
    `metadata`: their reflected `sqlalchemy.Table`s. Never changed once made: a connector
    that needs a table outside it reflects that one into a MetaData of its own. (Its `info`
    keeps statements built on these tables: `connectors.sqlread.grouped_cache`.)
    """

    stamp: str
    existing: frozenset[str]
    metadata: sa.MetaData


@dataclass(frozen=True)
class Surveyed:
    """What one `Engines.survey` found: the reflection of the tables asked for, and the
    fingerprint of the database's foreign keys read in the same query (None for a dialect
    `connectors.sqlstamp` does not know: nothing is then cached)."""

    reflected: Reflected
    keys: str | None
    borrowed: bool = False
    """True when no catalog query was made: the fingerprint is one another caller read at
    most `reuse_seconds` ago (`Engines.survey`)."""


@dataclass
class _Entry:
    engine: Engine
    schemas: dict[frozenset[str], Reflected] = field(default_factory=dict)
    # The latest fingerprint read of each table set, with the monotonic time (seconds) its
    # query started: what `survey(reuse_seconds=...)` may answer from.
    recent: dict[frozenset[str], tuple[float, sqlstamp.Stamp]] = field(default_factory=dict)
    keys: tuple[str, ForeignKeys] | None = None  # (fingerprint read under, the keys)
    # Keys one read found and no second read has confirmed yet (see the module docstring).
    candidate: tuple[str, ForeignKeys] | None = None


class Engines:
    """The per-process cache of engines and reflected schemas (see the module docstring).

    `limit`: the most engines kept at once (at least 1). `clock`: monotonic seconds, for the
    age of a fingerprint `survey` may reuse (injected by tests).
    """

    def __init__(
        self, limit: int = DEFAULT_LIMIT, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if limit < 1:
            raise ValueError("an engine cache holds at least one engine")
        self.limit = limit
        self.clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._owners: dict[Hashable, str] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def engine(self, key: str, create: Callable[[], Engine]) -> Engine:
        """The engine of `key`, made by `create()` the first time (no connection is opened
        here). Disposes the least recently used engine beyond `limit`."""
        evicted: list[Engine] = []
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = _Entry(create())
                while len(self._entries) > self.limit:
                    _, old = self._entries.popitem(last=False)
                    evicted.append(old.engine)
            self._entries.move_to_end(key)
            engine = entry.engine
        for old_engine in evicted:
            old_engine.dispose()
        return engine

    def survey(
        self, key: str, engine: Engine, names: Iterable[str], *, reuse_seconds: float = 0.0
    ) -> Surveyed:
        """The tables `names` of `engine`'s database, reflected: the cached reflection when the
        catalog's fingerprint of those tables is unchanged, else a new one (kept for the next
        caller); and the fingerprint of the database's foreign keys, for `foreign_keys`. One
        catalog query when nothing changed. Raises SQLAlchemy errors (the caller wraps
        them).

        With `reuse_seconds` > 0, no query at all when a caller read the fingerprint of the
        same tables at most that long ago (from the start of its query) and the cached
        reflection is of that fingerprint: the answer is then `borrowed`. Only for a caller
        that changes nothing on it (worker/drift.py `SchemaCheck`: an idle run)."""
        wanted = frozenset(names)
        if reuse_seconds > 0:
            borrowed = self._recent(key, engine, wanted, reuse_seconds)
            if borrowed is not None:
                return borrowed
        started = self.clock()
        with reading(engine) as conn:  # one statement: autocommit on PostgreSQL
            stamp = sqlstamp.stamp(conn, sorted(wanted))
        keys = stamp.keys if stamp is not None else None
        with self._lock:
            entry = self._entries.get(key)
            known = entry.schemas.get(wanted) if entry is not None else None
        if known is not None and stamp is not None and known.stamp == stamp.tables:
            self._remember(key, engine, wanted, started, stamp)
            return Surveyed(known, keys)
        existing = frozenset(set(sa.inspect(engine).get_table_names()) & wanted)
        metadata = sa.MetaData()
        if existing:  # one bulk reflection instead of several queries per table
            metadata.reflect(bind=engine, only=sorted(existing))
            note_inherited(engine, metadata.tables.values())
        fresh = Reflected(stamp.tables if stamp is not None else "", existing, metadata)
        with self._lock:
            entry = self._entries.get(key)
            if stamp is not None and entry is not None and entry.engine is engine:
                entry.schemas[wanted] = fresh
        if stamp is not None:
            self._remember(key, engine, wanted, started, stamp)
        return Surveyed(fresh, keys)

    def _recent(
        self, key: str, engine: Engine, wanted: frozenset[str], reuse_seconds: float
    ) -> Surveyed | None:
        """A borrowed `Surveyed` of `wanted` when a fingerprint of them read at most
        `reuse_seconds` ago is the one the cached reflection was taken under, else None."""
        now = self.clock()
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry.engine is not engine:
                return None
            recent, known = entry.recent.get(wanted), entry.schemas.get(wanted)
        if recent is None or known is None or known.stamp != recent[1].tables:
            return None
        if not 0 <= now - recent[0] <= reuse_seconds:
            return None
        return Surveyed(known, recent[1].keys, borrowed=True)

    def _remember(
        self,
        key: str,
        engine: Engine,
        wanted: frozenset[str],
        started: float,
        stamp: sqlstamp.Stamp,
    ) -> None:
        """Keep `stamp` as the latest fingerprint of `wanted`, unless a read that started
        later is kept already (two pairs of one database at once)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry.engine is not engine:
                return
            kept = entry.recent.get(wanted)
            if kept is None or kept[0] <= started:
                entry.recent[wanted] = (started, stamp)

    def foreign_keys(
        self, key: str, engine: Engine, keys: str, read: Callable[[], ForeignKeys]
    ) -> ForeignKeys:
        """Every foreign key of `engine`'s database: the cached ones when they were read under
        the fingerprint `keys` (from this run's `survey`), else `read()`. What `read()` found
        is kept for later callers only when an earlier read under `keys` found the same and
        the fingerprint read again after it is still `keys` (module docstring); else it is
        remembered for the next read to confirm. Raises what `read` and the fingerprint's
        query raise (SQLAlchemy errors)."""
        with self._lock:
            entry = self._entries.get(key)
            cached = entry.keys if entry is not None else None
            # Taken before this read starts: a candidate stored by a read that overlaps
            # this one (two pairs of one database at once) cannot confirm it; only one
            # whose fingerprint was read again, unchanged, before this read began.
            candidate = entry.candidate if entry is not None else None
        if cached is not None and cached[0] == keys:
            return cached[1]
        found = read()
        with reading(engine) as conn:
            after = sqlstamp.stamp(conn, [])
        if after is None or after.keys != keys:
            return found  # changed while read: this run's alone
        confirmed = candidate is not None and candidate == (keys, found)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry.engine is engine:
                if confirmed:
                    entry.keys, entry.candidate = (keys, found), None
                else:
                    entry.candidate = (keys, found)
        return found

    def assign(self, owner: Hashable, key: str) -> None:
        """Record that `owner` (a customer × product) now uses `key`; the engine it used before,
        if no other owner uses it, is disposed (the pair's database URL changed)."""
        with self._lock:
            old = self._owners.get(owner)
            self._owners[owner] = key
            if old is None or old == key or old in self._owners.values():
                return
            entry = self._entries.pop(old, None)
        if entry is not None:
            entry.engine.dispose()

    def retain(self, owners: Mapping[Hashable, str]) -> int:
        """Keep only the engines `owners` (customer × product → key, from the configuration in
        force) use; dispose the others. Returns how many were disposed."""
        keep: Collection[str] = set(owners.values())
        with self._lock:
            self._owners = dict(owners)
            gone = [self._entries.pop(k) for k in list(self._entries) if k not in keep]
        for entry in gone:
            entry.engine.dispose()
        return len(gone)

    def dispose(self) -> None:
        """Dispose every engine (closing their pooled connections) and forget everything."""
        with self._lock:
            gone = list(self._entries.values())
            self._entries.clear()
            self._owners.clear()
        for entry in gone:
            entry.engine.dispose()


_PROCESS = Engines()


def process_engines() -> Engines:
    """The cache every connector of this process built by `worker.app.ConnectorFactory` uses."""
    return _PROCESS
