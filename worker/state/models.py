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
    Date,
    DateTime,
    Float,
    ForeignKey,
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
    # host|pid of the process running it (worker/owner.py); NULL before 0005.
    Column("owner", String(200), nullable=True),
    CheckConstraint(
        "outcome IS NULL OR outcome IN "
        "('succeeded', 'partial', 'failed', 'interrupted', 'crashed')",
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

# Legal holds (issue: a person decides the unusual). A hold covers a customer, a customer ×
# product, a rule of a pair, or one record (table + keyed hash of its key: the key itself is
# never stored). Released holds keep their row: the ledger is history.
holds = Table(
    "holds",
    metadata,
    Column("hold_id", String(32), primary_key=True),
    Column("customer", String(200), nullable=False),
    Column("product", String(200), nullable=True),
    Column("rule", String(200), nullable=True),
    Column("table_name", String(200), nullable=True),
    Column("key_hash", String(64), nullable=True),
    Column("matter", String(200), nullable=False),
    Column("reason", Text, nullable=False),
    Column("placed_by", String(200), nullable=False),
    Column("placed_at", DateTime(timezone=True), nullable=False),
    Column("released_at", DateTime(timezone=True), nullable=True),
    Column("released_by", String(200), nullable=True),
    Column("release_reason", Text, nullable=True),
    CheckConstraint("rule IS NULL OR product IS NOT NULL", name="rule_needs_product"),
    CheckConstraint(
        "(key_hash IS NULL AND table_name IS NULL) OR "
        "(key_hash IS NOT NULL AND table_name IS NOT NULL AND product IS NOT NULL)",
        name="record_needs_table",
    ),
    Index("ix_holds_customer_product", "customer", "product"),
)

# Requests for a person's approval: a rule flagged approval-only, or one that tripped the
# blast-radius breaker. One request is `waiting` per customer × product × rule at a time.
approvals = Table(
    "approvals",
    metadata,
    Column("approval_id", String(32), primary_key=True),
    Column("customer", String(200), nullable=False),
    Column("product", String(200), nullable=False),
    Column("rule", String(200), nullable=False),
    Column("why", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("requested_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("cutoff", Date, nullable=False),
    Column("eligible", BigInteger, nullable=False),
    Column("bound", BigInteger, nullable=False),
    Column("approvers_needed", Integer, nullable=False),
    Column("figures", Text, nullable=False),
    Column("decided_at", DateTime(timezone=True), nullable=True),
    Column("used_by_run", String(64), nullable=True),
    CheckConstraint("why IN ('flagged', 'breaker')", name="why"),
    CheckConstraint(
        "status IN ('waiting', 'approved', 'rejected', 'used', 'superseded')", name="status"
    ),
    Index("ix_approvals_customer_product_rule", "customer", "product", "rule"),
)

approval_decisions = Table(
    "approval_decisions",
    metadata,
    Column("decision_id", Integer, primary_key=True, autoincrement=True),
    Column(
        "approval_id",
        String(32),
        ForeignKey("approvals.approval_id"),
        nullable=False,
    ),
    Column("decision", String(16), nullable=False),
    Column("decided_by", String(200), nullable=False),
    Column("reason", Text, nullable=False),
    Column("decided_at", DateTime(timezone=True), nullable=False),
    # What the approver saw: an approval covers this cutoff and at most `bound` rows.
    Column("cutoff", Date, nullable=False),
    Column("bound", BigInteger, nullable=False),
    CheckConstraint("decision IN ('approve', 'reject')", name="decision"),
    Index("ix_approval_decisions_approval_id", "approval_id"),
)

# Rows each rule changed in each successful real run: the breaker's trailing average.
rule_history = Table(
    "rule_history",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("rule", String(200), primary_key=True),
    Column("customer", String(200), nullable=False),
    Column("product", String(200), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=False),
    Column("eligible", BigInteger, nullable=False),
    Column("changed", BigInteger, nullable=False),
    Index("ix_rule_history_customer_product_rule", "customer", "product", "rule", "finished_at"),
)

# Signed checkpoints of the chain's head, one per run's end: anchors kept outside the state
# database (logs, exports, metrics) show a trail truncated at its tail.
checkpoints = Table(
    "checkpoints",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", String(64), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("key_id", String(64), nullable=True),
    Column("signature", String(200), nullable=True),
)

# The effective configuration each fingerprint names (worker/fingerprint.py), for auditors.
policies = Table(
    "policies",
    metadata,
    Column("fingerprint", String(80), primary_key=True),
    Column("document", Text, nullable=False),
    Column("first_seen", DateTime(timezone=True), nullable=False),
)

# What the metrics showed at the last evaluation of each rule, so a restarted daemon exposes
# the backlog, lag and holds before its first run.
rule_status = Table(
    "rule_status",
    metadata,
    Column("customer", String(200), primary_key=True),
    Column("product", String(200), primary_key=True),
    Column("rule", String(200), primary_key=True),
    Column("action", String(40), nullable=False),
    Column("eligible", BigInteger, nullable=False),
    Column("lag_seconds", Float, nullable=False),
    Column("held", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

pair_status = Table(
    "pair_status",
    metadata,
    Column("customer", String(200), primary_key=True),
    Column("product", String(200), primary_key=True),
    Column("connector_up", Boolean(create_constraint=False), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# Batches whose intent is in the trail but whose outcome (applied, failed or settled) is not
# yet: kept in the same transaction as those audit records, so a restart finds what a crash
# left without reading the whole trail. `intent_seq` is the intent's audit record.
open_batches = Table(
    "open_batches",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("rule", String(200), primary_key=True),
    Column("batch", Integer, primary_key=True, autoincrement=False),
    Column("customer", String(200), nullable=False),
    Column("product", String(200), nullable=False),
    Column("intent_seq", BigInteger, nullable=False),
    Index("ix_open_batches_customer_product", "customer", "product"),
)

# Who works a customer × product in one tick of its schedule (worker/leases.py): the holder
# (`host|pid`, worker/owner.py) and its token, until `expires_at` unless renewed; `done_at`
# once the run finished, so no other process runs the pair again in that tick.
leases = Table(
    "leases",
    metadata,
    Column("customer", String(200), primary_key=True),
    Column("product", String(200), primary_key=True),
    Column("tick", DateTime(timezone=True), primary_key=True),
    Column("holder", String(200), nullable=False),
    Column("token", String(64), nullable=False),
    Column("taken_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("done_at", DateTime(timezone=True), nullable=True),
    # How often an expired lease of this tick was taken over from a holder that was gone.
    Column("takeovers", Integer, nullable=False),
)
# At most one lease of a pair not done, whatever its tick (migration 0008): the database itself
# keeps two takers of different ticks of a pair apart, also when they take at the same instant.
Index(
    "ux_leases_one_open",
    leases.c.customer,
    leases.c.product,
    unique=True,
    postgresql_where=leases.c.done_at.is_(None),
    sqlite_where=leases.c.done_at.is_(None),
)

ZERO_HASH = "0" * 64
"""The `prev_hash` of the first audit record, and the head's hash while the trail is empty."""
