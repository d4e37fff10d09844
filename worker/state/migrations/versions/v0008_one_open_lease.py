"""At most one lease of a customer × product not done, whatever its tick (worker/leases.py):
a run that outlasts its tick keeps the pair from the next tick's run by another process, and
two takers of different ticks at the same instant cannot both win (a partial unique index,
checked by the database, also under READ COMMITTED).

Before the index, a pair's leases not done other than its newest tick's are deleted: under
the older code they were expired leftovers of crashed runs, or a run beside the newer tick's
(it finds its lease gone at its next renewal and stops before its next batch).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None

OPEN = "done_at IS NULL"


def upgrade() -> None:
    op.execute(
        "DELETE FROM leases WHERE done_at IS NULL AND EXISTS (SELECT 1 FROM leases AS newer"
        " WHERE newer.customer = leases.customer AND newer.product = leases.product"
        " AND newer.done_at IS NULL AND newer.tick > leases.tick)"
    )
    op.create_index(
        "ux_leases_one_open",
        "leases",
        ["customer", "product"],
        unique=True,
        postgresql_where=sa.text(OPEN),
        sqlite_where=sa.text(OPEN),
    )


def downgrade() -> None:
    op.drop_index("ux_leases_one_open", table_name="leases")
