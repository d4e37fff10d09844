"""Alembic environment of the worker's state database.

At runtime `StateStore.migrate()` builds the Alembic configuration in code and hands over an
open connection (`config.attributes["connection"]`) inside its own transaction. For developers,
`alembic -c worker/state/alembic.ini revision --autogenerate -m "..."` also works: the URL then
comes from RETENTION_STATE_URL.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import Connection, create_engine

from worker.state.models import metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds tables instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _online() -> None:
    connection = context.config.attributes.get("connection")
    if isinstance(connection, Connection):
        _run(connection)
        return
    url = os.environ.get("RETENTION_STATE_URL")
    if not url:
        raise SystemExit("set RETENTION_STATE_URL to the state database to run Alembic directly")
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            _run(conn)
            conn.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run `retention-worker migrate`")
_online()
