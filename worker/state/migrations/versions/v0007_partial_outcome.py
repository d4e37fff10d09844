"""Runs may end `partial`: every rule ran, but the database refused some rows (blocked).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None

OLD = "outcome IS NULL OR outcome IN ('succeeded', 'failed', 'interrupted', 'crashed')"
NEW = "outcome IS NULL OR outcome IN ('succeeded', 'partial', 'failed', 'interrupted', 'crashed')"


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_constraint(op.f("ck_runs_outcome"), type_="check")
        batch.create_check_constraint(op.f("ck_runs_outcome"), NEW)


def downgrade() -> None:
    # A partial run finished every rule; older code knows it as succeeded.
    op.execute("UPDATE runs SET outcome = 'succeeded' WHERE outcome = 'partial'")
    with op.batch_alter_table("runs") as batch:
        batch.drop_constraint(op.f("ck_runs_outcome"), type_="check")
        batch.create_check_constraint(op.f("ck_runs_outcome"), OLD)
