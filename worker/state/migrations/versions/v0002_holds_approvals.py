"""Legal holds, approvals and their decisions, and each rule's history for the breaker.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "holds",
        sa.Column("hold_id", sa.String(32), nullable=False),
        sa.Column("customer", sa.String(200), nullable=False),
        sa.Column("product", sa.String(200), nullable=True),
        sa.Column("rule", sa.String(200), nullable=True),
        sa.Column("table_name", sa.String(200), nullable=True),
        sa.Column("key_hash", sa.String(64), nullable=True),
        sa.Column("matter", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("placed_by", sa.String(200), nullable=False),
        sa.Column("placed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("released_by", sa.String(200), nullable=True),
        sa.Column("release_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("hold_id", name="pk_holds"),
        sa.CheckConstraint(
            "rule IS NULL OR product IS NOT NULL", name="ck_holds_rule_needs_product"
        ),
        sa.CheckConstraint(
            "(key_hash IS NULL AND table_name IS NULL) OR "
            "(key_hash IS NOT NULL AND table_name IS NOT NULL AND product IS NOT NULL)",
            name="ck_holds_record_needs_table",
        ),
    )
    op.create_index("ix_holds_customer_product", "holds", ["customer", "product"])
    op.create_table(
        "approvals",
        sa.Column("approval_id", sa.String(32), nullable=False),
        sa.Column("customer", sa.String(200), nullable=False),
        sa.Column("product", sa.String(200), nullable=False),
        sa.Column("rule", sa.String(200), nullable=False),
        sa.Column("why", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cutoff", sa.Date(), nullable=False),
        sa.Column("eligible", sa.BigInteger(), nullable=False),
        sa.Column("bound", sa.BigInteger(), nullable=False),
        sa.Column("approvers_needed", sa.Integer(), nullable=False),
        sa.Column("figures", sa.Text(), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("used_by_run", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("approval_id", name="pk_approvals"),
        sa.CheckConstraint("why IN ('flagged', 'breaker')", name="ck_approvals_why"),
        sa.CheckConstraint(
            "status IN ('waiting', 'approved', 'rejected', 'used', 'superseded')",
            name="ck_approvals_status",
        ),
    )
    op.create_index(
        "ix_approvals_customer_product_rule", "approvals", ["customer", "product", "rule"]
    )
    op.create_table(
        "approval_decisions",
        sa.Column("decision_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("approval_id", sa.String(32), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("decided_by", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cutoff", sa.Date(), nullable=False),
        sa.Column("bound", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("decision_id", name="pk_approval_decisions"),
        sa.ForeignKeyConstraint(
            ["approval_id"],
            ["approvals.approval_id"],
            name="fk_approval_decisions_approval_id_approvals",
        ),
        sa.CheckConstraint(
            "decision IN ('approve', 'reject')", name="ck_approval_decisions_decision"
        ),
    )
    op.create_index("ix_approval_decisions_approval_id", "approval_decisions", ["approval_id"])
    op.create_table(
        "rule_history",
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("rule", sa.String(200), nullable=False),
        sa.Column("customer", sa.String(200), nullable=False),
        sa.Column("product", sa.String(200), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("eligible", sa.BigInteger(), nullable=False),
        sa.Column("changed", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "rule", name="pk_rule_history"),
    )
    op.create_index(
        "ix_rule_history_customer_product_rule",
        "rule_history",
        ["customer", "product", "rule", "finished_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_rule_history_customer_product_rule", table_name="rule_history")
    op.drop_table("rule_history")
    op.drop_index("ix_approval_decisions_approval_id", table_name="approval_decisions")
    op.drop_table("approval_decisions")
    op.drop_index("ix_approvals_customer_product_rule", table_name="approvals")
    op.drop_table("approvals")
    op.drop_index("ix_holds_customer_product", table_name="holds")
    op.drop_table("holds")
