"""Batches with an intent but no outcome yet, for reconciliation after a crash.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "open_batches",
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("rule", sa.String(200), nullable=False),
        sa.Column("batch", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("customer", sa.String(200), nullable=False),
        sa.Column("product", sa.String(200), nullable=False),
        sa.Column("intent_seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "rule", "batch", name="pk_open_batches"),
    )
    op.create_index("ix_open_batches_customer_product", "open_batches", ["customer", "product"])


def downgrade() -> None:
    op.drop_index("ix_open_batches_customer_product", table_name="open_batches")
    op.drop_table("open_batches")
