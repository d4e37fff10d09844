"""The worker's own database: runs and the hash-chained audit trail, as SQLAlchemy Core tables.

These tables describe the schema the code expects. The schema itself is created and changed
only by the Alembic migrations under `migrations/versions/`; a test checks that both agree.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

# One customer × product run. `outcome` stays NULL until the run has finished.
runs = Table(
    "runs",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("customer", String(200), nullable=False),
    Column("product", String(200), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Column("outcome", String(16), nullable=True),
    Column("dry_run", Boolean(create_constraint=False), nullable=False),
    Column("error", Text, nullable=True),
    Column("rows_changed", BigInteger, nullable=False),
    CheckConstraint(
        "outcome IS NULL OR outcome IN ('succeeded', 'failed', 'interrupted')",
        name="outcome",
    ),
    Index("ix_runs_customer_product_started_at", "customer", "product", "started_at"),
)

# The audit trail: append-only, one row per event, each row's hash covering the previous hash.
audit_events = Table(
    "audit_events",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("run_id", String(64), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("customer", String(200), nullable=False),
    Column("product", String(200), nullable=False),
    Column("rule", String(200), nullable=True),
    Column("action", String(40), nullable=True),
    Column("payload", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_audit_events_run_id", "run_id"),
    Index("ix_audit_events_customer_product_at", "customer", "product", "at"),
)

# Exactly one row (id = 1): the last appended seq and hash. Appenders lock it, so the chain
# cannot fork; `verify` compares it with the trail's end, so removing the last rows shows.
audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
    CheckConstraint("id = 1", name="single_row"),
)

ZERO_HASH = "0" * 64
"""The `prev_hash` of the first audit record, and the head's hash while the trail is empty."""
