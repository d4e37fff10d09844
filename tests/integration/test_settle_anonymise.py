"""An anonymise batch that committed but lost its `batch.applied` record is settled against
the masks that batch wrote, even when the rule's masks changed before the next start: the
trail counts the rows as applied, on every backend.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests import kidsapp
from tests.support import NOW, PEPPER
from worker.app import build_runner, run_pairs, subscribe_state
from worker.configload import Config, load_config
from worker.events import BatchApplied, BatchIntent, BatchSettled, Event, EventBus
from worker.state import StateStore
from worker.verify import verify

OLD = dt.date(2023, 1, 1)
ONLY_A: dict[str, dict[str, Any]] = {"kdv-a": {}}  # tenant 1; tenant 2's rows are another's


class Killed(BaseException):
    """The process dies: nothing after this point of the run happens."""


def config(folder: Path, text: str) -> Config:
    rule = kidsapp.rule(action="anonymise", **{"with": {"name": {"fixed": text}}})
    loaded = load_config(
        kidsapp.write_config(
            folder, product=kidsapp.mapping(rules=[rule], batch_size=5), customers=ONLY_A
        )
    )
    loaded.raise_for_problems()
    return loaded


def run(cfg: Config, url: str, state: StateStore, first: Any = None) -> list[Event]:
    bus = EventBus()
    if first is not None:
        bus.subscribe(first)  # before the audit trail: it can stop a record being written
    subscribe_state(bus, state, lambda: NOW)
    seen: list[Event] = []
    bus.subscribe(seen.append)
    runner = build_runner(
        cfg, {kidsapp.URL_ENV: url}, bus, pepper=PEPPER, clock=lambda: NOW, store=state
    )
    with contextlib.suppress(Killed):
        run_pairs(runner, list(cfg.pairs()), NOW, dry_run=False)
    return seen


def names(url: str) -> list[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            query = sa.select(kidsapp.CHILD.c.name).order_by(kidsapp.CHILD.c.id)
            return [str(n) for n in conn.execute(query).scalars()]
    finally:
        engine.dispose()


@pytest.mark.parametrize("keep_rule", [True, False], ids=["masks-changed", "rule-renamed"])
def test_a_lost_applied_record_is_settled_by_the_masks_the_batch_wrote(
    tmp_path: Path, any_db_url: str, keep_rule: bool
) -> None:
    kidsapp.create(any_db_url, [(i, 1 if i <= 10 else 2, OLD) for i in range(1, 21)])
    state = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    state.migrate()
    try:

        def die_after_commit(event: Event) -> None:
            if isinstance(event, BatchApplied) and event.batch == 1:
                raise Killed()

        run(config(tmp_path / "before", "verwijderd"), any_db_url, state, die_after_commit)
        assert names(any_db_url)[:5] == ["verwijderd"] * 5  # batch 1 committed
        assert not verify(state).ok  # its intent has no outcome

        if keep_rule:
            after = config(tmp_path / "after", "geanonimiseerd")
        else:
            renamed = kidsapp.rule(
                id="kidsapp.child.left.v2",
                action="anonymise",
                **{"with": {"name": {"fixed": "geanonimiseerd"}}},
            )
            folder = kidsapp.write_config(
                tmp_path / "after",
                product=kidsapp.mapping(rules=[renamed], batch_size=5),
                customers=ONLY_A,
            )
            after = load_config(folder)
            after.raise_for_problems()
        seen = run(after, any_db_url, state)
        (settled,) = [e for e in seen if isinstance(e, BatchSettled)]
        assert (settled.batch, settled.applied, settled.not_applied) == (1, 5, ())
        assert dict(settled.rows) == {"child": 5}
        intents = [e for e in seen if isinstance(e, BatchIntent)]
        assert intents and all(
            dict(i.masks) == {"name": {"mask": "fixed", "text": "geanonimiseerd"}} for i in intents
        )
        result = verify(state)
        assert result.ok, result.reason
        # The new mask is then written on all of kdv-a's rows (the 5 settled ones carried the
        # old text, so they are changed again, and counted again); kdv-b is untouched.
        applied = sum(e.rows.get("child", 0) for e in seen if isinstance(e, BatchApplied))
        assert applied == 10
        assert names(any_db_url)[:10] == ["geanonimiseerd"] * 10
        assert names(any_db_url)[10:] == [f"Kind {i}" for i in range(11, 21)]
    finally:
        state.close()
