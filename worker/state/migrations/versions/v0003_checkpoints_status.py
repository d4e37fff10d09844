"""Crashed runs, signed checkpoints, policy documents, and the status metrics are rebuilt from.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

OLD = "outcome IS NULL OR outcome IN ('succeeded', 'failed', 'interrupted')"
NEW = "outcome IS NULL OR outcome IN ('succeeded', 'failed', 'interrupted', 'crashed')"


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_constraint("ck_runs_outcome", type_="check")
        batch.create_check_constraint(op.f("ck_runs_outcome"), NEW)
    op.create_table(
        "checkpoints",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=True),
        sa.Column("signature", sa.String(200), nullable=True),
        sa.PrimaryKeyConstraint("seq", name="pk_checkpoints"),
    )
    op.create_table(
        "policies",
        sa.Column("fingerprint", sa.String(80), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("fingerprint", name="pk_policies"),
    )
    op.create_table(
        "rule_status",
        sa.Column("customer", sa.String(200), nullable=False),
        sa.Column("product", sa.String(200), nullable=False),
        sa.Column("rule", sa.String(200), nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("eligible", sa.BigInteger(), nullable=False),
        sa.Column("lag_seconds", sa.Float(), nullable=False),
        sa.Column("held", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("customer", "product", "rule", name="pk_rule_status"),
    )
    op.create_table(
        "pair_status",
        sa.Column("customer", sa.String(200), nullable=False),
        sa.Column("product", sa.String(200), nullable=False),
        sa.Column("connector_up", sa.Boolean(create_constraint=False), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("customer", "product", name="pk_pair_status"),
    )


def downgrade() -> None:
    op.drop_table("pair_status")
    op.drop_table("rule_status")
    op.drop_table("policies")
    op.drop_table("checkpoints")
    with op.batch_alter_table("runs") as batch:
        batch.drop_constraint("ck_runs_outcome", type_="check")
        batch.create_check_constraint(op.f("ck_runs_outcome"), OLD)
