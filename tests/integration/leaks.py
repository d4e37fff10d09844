"""What the leak tests share: a small per-customer product, and searching the outputs and
the state database for values that must not be there."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

URL_ENV = "KIDS_A_URL"
CUSTOMERS = {"a": f"products:\n  kids:\n    database: {{url_env: {URL_ENV}}}\n"}
ACTIONS = {
    "delete": "action: delete",
    "anonymise": 'action: anonymise\nwith: {name: {fixed: "x"}}',
}


RULE = "kids.child.left"


def product(action: str) -> str:
    """The kids mapping: one database per customer, a table `child`, and one rule that does
    `action` (an entry of ACTIONS) to children who left more than 12 months ago."""
    return f"""\
        product: kids
        tenancy: {{per_customer: true}}
        subjects:
          child:
            kind: child
            table: child
            key: [id]
            columns: {{name: name}}
            dates: {{left: left_on}}
        rules:
          - id: {RULE}
            subject: child
            after: {{date: left, period: 12m}}
            {action.replace(chr(10), chr(10) + " " * 12)}
        """


def state_text(url: str) -> str:
    """Every row of every table of the state database, as text."""
    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            rows = [
                f"{table}: " + " | ".join(str(v) for v in row)
                for table in sa.inspect(conn).get_table_names()
                for row in conn.execute(sa.text(f'SELECT * FROM "{table}"'))
            ]
    finally:
        engine.dispose()
    assert rows, "the state database is empty: the search would mean nothing"
    return "\n".join(rows)


def state_bytes(folder: Path) -> str:
    """The state database's files as bytes (freed pages and the WAL too), decoded loosely."""
    return "".join(
        p.read_bytes().decode("utf-8", "replace") for p in sorted(folder.glob("state.db*"))
    )


def leaks(text: str, values: tuple[str, ...]) -> list[str]:
    """The `values` found in `text`."""
    return [value for value in values if value in text]
