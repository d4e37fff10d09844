"""Signed checkpoints of the audit chain's head: evidence of the trail's length kept elsewhere.

The hash chain shows a record altered, removed or reordered in the middle. Removing the newest
records and rewinding `audit_head` to match leaves a shorter chain that still verifies, so
each run ends with a checkpoint of the head (seq, hash, time), signed with Ed25519 (the
`cryptography` library), logged as `audit.checkpoint`, exposed as the metric
`retention_audit_checkpoint_seq`, and stored. Kept outside the state database (a log store,
`retention-worker audit checkpoints > file`, Prometheus), a checkpoint makes
`audit verify --checkpoint` fail for a trail shorter than, or different from, it.

Signed message (UTF-8):

    retention-worker checkpoint v1\n<canonical JSON of {"at": ..., "hash": ..., "seq": ...}>

`at` is ISO 8601 UTC with microseconds, like the chain's. The key id is the first 16 hex
digits of the SHA-256 of the raw 32-byte public key. The signing key (RETENTION_CHECKPOINT_KEY
or RETENTION_CHECKPOINT_KEY_FILE, a PEM private key, never the pepper) stays with the worker;
auditors get the public key (`audit keygen` writes both) and verify without being able to sign.
Without a key, checkpoints are unsigned: still evidence when kept elsewhere, but anyone with
write access could forge one.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import structlog
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import Connection
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from connectors.redact import describe
from worker.audit import canonical_json, iso_utc
from worker.errors import RetentionError
from worker.events import CheckpointMade, EventBus
from worker.state import StateStore
from worker.state.auditlog import held_head
from worker.state.models import audit_head, checkpoints
from worker.state.store import utc

log = structlog.get_logger("worker.checkpoints")

# Built once: a run's checkpoint would otherwise build and hash new statements each time.
_STORE = {
    "postgresql": pg_insert(checkpoints).on_conflict_do_nothing(),
    "sqlite": sqlite_insert(checkpoints).on_conflict_do_nothing(),
}
_READ_HEAD = sa.select(audit_head.c.seq, audit_head.c.hash)

PREFIX = b"retention-worker checkpoint v1\n"


class CheckpointError(RetentionError):
    """A checkpoint or a checkpoint key could not be read."""


@dataclass(frozen=True)
class Checkpoint:
    """The head of the chain at one instant: seq, hash and time (UTC), maybe signed."""

    seq: int
    hash: str
    at: dt.datetime
    key_id: str | None = None
    signature: str | None = None  # base64 of the 64-byte Ed25519 signature

    def message(self) -> bytes:
        """The bytes that are signed."""
        body = canonical_json({"at": iso_utc(self.at), "hash": self.hash, "seq": self.seq})
        return PREFIX + body.encode("utf-8")

    def to_json(self) -> str:
        """One line of JSON: the export format `audit verify --checkpoint FILE` reads."""
        return canonical_json(
            {
                "seq": self.seq,
                "hash": self.hash,
                "at": iso_utc(self.at),
                "key_id": self.key_id,
                "signature": self.signature,
            }
        )

    @property
    def short(self) -> str:
        return f"{self.seq}:{self.hash}"


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


class Signer:
    """Signs checkpoints with an Ed25519 private key."""

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.public = private.public_key()
        self.key_id = key_id(self.public)

    @classmethod
    def from_pem(cls, text: str) -> Signer:
        """A signer from a PEM (PKCS#8) private key; CheckpointError when it is not one."""
        try:
            key = serialization.load_pem_private_key(text.encode("ascii"), password=None)
        except (ValueError, TypeError, UnicodeEncodeError):
            raise CheckpointError(
                "RETENTION_CHECKPOINT_KEY is not a PEM private key; make one with "
                "`retention-worker audit keygen`"
            ) from None
        if not isinstance(key, Ed25519PrivateKey):
            raise CheckpointError("RETENTION_CHECKPOINT_KEY must be an Ed25519 private key")
        return cls(key)

    def sign(self, seq: int, hash_: str, at: dt.datetime) -> Checkpoint:
        unsigned = Checkpoint(seq, hash_, at.astimezone(dt.UTC))
        signature = base64.b64encode(self._private.sign(unsigned.message())).decode("ascii")
        return Checkpoint(seq, hash_, unsigned.at, self.key_id, signature)


def new_key_pair() -> tuple[str, str]:
    """A fresh Ed25519 key pair as (private PEM, public PEM)."""
    private = Ed25519PrivateKey.generate()
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )
    return private_pem, public_pem


def load_public_key(path: Path) -> Ed25519PublicKey:
    """An auditor's copy of the public key (PEM); CheckpointError when unreadable."""
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read the public key {path}: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise CheckpointError(f"{path} is not an Ed25519 public key")
    return key


def signature_ok(checkpoint: Checkpoint, public: Ed25519PublicKey) -> bool:
    """True when the checkpoint carries a valid signature by `public`."""
    if checkpoint.signature is None:
        return False
    try:
        public.verify(base64.b64decode(checkpoint.signature), checkpoint.message())
    except (InvalidSignature, ValueError):
        return False
    return True


_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


def parse(text: str, where: str) -> list[Checkpoint]:
    """Checkpoints from `SEQ:HASH` or from JSON lines (`audit checkpoints` output)."""
    text = text.strip()
    if not text.startswith("{"):
        seq, sep, hash_ = text.partition(":")
        if not sep or not seq.isdigit() or not _HEX64.fullmatch(hash_):
            raise CheckpointError(
                f"{where}: write a checkpoint as SEQ:HASH (64 hex digits) or give a file of "
                "`retention-worker audit checkpoints` lines"
            )
        return [Checkpoint(int(seq), hash_.lower(), dt.datetime.min.replace(tzinfo=dt.UTC))]
    found: list[Checkpoint] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            data: dict[str, Any] = json.loads(line)
            found.append(
                Checkpoint(
                    seq=int(data["seq"]),
                    hash=str(data["hash"]),
                    at=dt.datetime.fromisoformat(data["at"]),
                    key_id=data.get("key_id"),
                    signature=data.get("signature"),
                )
            )
        except (ValueError, KeyError, TypeError):
            raise CheckpointError(f"{where}, line {number}: not a checkpoint line") from None
    return found


@dataclass
class Queued:
    """A checkpoint queued with a run's end (`Checkpointer.make_later`): `checkpoint` once
    its transaction committed; `error` (class and code, no row data) when it failed."""

    checkpoint: Checkpoint | None = None
    error: str | None = None


class Checkpointer:
    """Makes, stores and lists checkpoints of one state database's trail."""

    def __init__(self, store: StateStore, signer: Signer | None) -> None:
        self._store = store
        self.signer = signer

    def make(self, at: dt.datetime) -> Checkpoint:
        """A checkpoint of the head as it is now (signed when there is a key), stored in one
        transaction. Raises StateError when the state database fails."""
        return self._store.write("storing a checkpoint", lambda conn: self.make_in(conn, at))

    def make_in(self, conn: Connection, at: dt.datetime) -> Checkpoint:
        """A checkpoint of the head as `conn`'s transaction sees it, stored in it.

        After an audit append in the same transaction the head is the one it left, locked
        (`held_head`: no query); else it is read (committed data, READ COMMITTED).
        """
        held = held_head(conn)
        if held is not None:
            seq, hash_ = held.seq, held.hash
        else:
            row = conn.execute(_READ_HEAD).one()
            seq, hash_ = int(row.seq), str(row.hash)
        if self.signer is not None:
            checkpoint = self.signer.sign(seq, hash_, at)
        else:
            checkpoint = Checkpoint(seq, hash_, at.astimezone(dt.UTC))
        # Several processes (replicas, CronJobs) may checkpoint the same head at once: the
        # first one stored wins, the others' insert does nothing (same seq, same hash).
        # INSERT … ON CONFLICT DO NOTHING exists on both state backends (PostgreSQL docs,
        # "INSERT"; SQLite docs, "UPSERT").
        values = {
            "seq": seq,
            "hash": hash_,
            "at": checkpoint.at,
            "key_id": checkpoint.key_id,
            "signature": checkpoint.signature,
        }
        conn.execute(_STORE[conn.dialect.name], values)
        return checkpoint

    def make_later(self, at: dt.datetime) -> Queued:
        """Queue a checkpoint after what this context's `gathering()` holds (a run's end):
        it is made in the transaction that commits them, so it covers them (`make_in`).

        Queued droppable (worker/state/gather.py): when it fails, the run's records are
        written again without it. The returned `Queued` holds the checkpoint once that
        transaction committed, or why it was dropped. Call it after the run's last other
        write, right before the flush.
        """
        queued = Queued()
        tried: list[Checkpoint] = []

        def work(conn: Connection, _retried: bool) -> None:
            tried.clear()
            try:
                tried.append(self.make_in(conn, at))
            except Exception as exc:
                queued.error = describe(exc)
                raise

        def committed() -> None:
            queued.checkpoint = tried[-1] if tried else None
            queued.error = None

        self._store.write_later(
            "the checkpoint of the audit head", work, droppable=True, committed=committed
        )
        return queued

    def list(self, since: int = 0) -> list[Checkpoint]:
        """Stored checkpoints after `since`, oldest first."""
        query = sa.select(checkpoints).where(checkpoints.c.seq > since).order_by(checkpoints.c.seq)

        def read(conn: Connection) -> list[Checkpoint]:
            return [
                Checkpoint(int(r.seq), r.hash, utc(r.at), r.key_id, r.signature)
                for r in conn.execute(query)
            ]

        return self._store.read("listing checkpoints", read)


def publish_checkpoint(
    checkpointer: Checkpointer | None, bus: EventBus, at: dt.datetime, queued: Queued | None
) -> None:
    """Publish the checkpoint of the chain's head after a run's end was recorded: the one
    `queued` with the run's end (`Checkpointer.make_later`), or one made now at `at` (UTC;
    a dry run's). A failure is logged as `audit.checkpoint_failed`, never the run's (its
    changes are all in the trail already)."""
    if checkpointer is None:
        return
    try:
        made = checkpointer.make(at) if queued is None else queued.checkpoint
    except RetentionError as exc:
        log.exception("audit.checkpoint_failed", error=str(exc))
        return
    if made is None:
        why = queued.error if queued is not None else None
        # Left out with the run's other droppable work (see state.write_skipped).
        why = why or "left out of the transaction of the run's end, which was refused"
        log.error("audit.checkpoint_failed", error=why)
        return
    bus.publish(
        CheckpointMade(
            seq=made.seq,
            hash=made.hash,
            at=made.at,
            key_id=made.key_id,
            signature=made.signature,
        )
    )
