"""Settling a batch whose holder's transaction is still in flight (worker/settlebatch.py):
its intent names the keys, its COMMIT is not done yet. The settlement finds the rows there,
waits for that transaction and counts what it left, on every backend: an anonymise batch
(rows masked once it commits count as applied) and a batch of a table without a key (rows
named by their values, identical ones included). Rolled back, its rows count as not applied.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from connectors.base import Applied, Change, Target
from connectors.sql import SqlConnector
from tests.inflight import Beside, Holder
from tests.integration import school
from tests.integration.school import INSIDE, LONG_AGO, PAST
from tests.support import NOW, PEPPER
from worker.configload import Config
from worker.events import BatchSettled, EventBus
from worker.keys import KeyHasher, row_key
from worker.policy import effective_rules, rule_cutoff
from worker.settlebatch import BatchSettlement, OpenBatch
from worker.targets import target_for

MAPPING = """\
subjects:
  pupil:
    kind: child
    table: pupil
    key: [org, id]
    columns: {name: name}
    dates: {left_on: left_on}
  log:
    kind: child
    table: access_log
    key: []
    columns: {message: ip}
    dates: {at: at}
rules:
  - id: kids.pupil.left
    subject: pupil
    after: {date: left_on, period: 12m}
    action: anonymise
    with: {name: {fixed: verwijderd}}
  - id: kids.log.expired
    subject: log
    after: {date: at, period: 12m}
    action: delete
"""
PUPILS = [school.pupil(1, i, left_on=PAST) for i in (1, 2, 3)] + [
    school.pupil(1, 4, left_on=INSIDE)
]
LOG = [(7, PAST, "login"), (7, PAST, "login"), (8, LONG_AGO, "logout"), (9, INSIDE, "kept")]
SEED = {
    "pupil": school.both(*PUPILS),
    "access_log": [
        {"org": org, "pupil_id": p, "at": at, "message": m} for org in (1, 2) for p, at, m in LOG
    ],
}
Change_ = Callable[[SqlConnector, Target, Callable[[Applied], None]], Applied]


def settle_beside(
    tmp_path: Path, url: str, rule_id: str, change: Change_, *, roll_back: bool
) -> tuple[BatchSettled, KeyHasher]:
    """kdv-a's batch of `rule_id` (`change`) is held in flight, its intent as the worker
    writes it; another connector settles it meanwhile and must wait for it. The settlement."""
    school.reseed(url, SEED)
    config: Config = school.config(tmp_path, MAPPING)
    [(customer, mapping)] = [(c, m) for c, m in config.pairs() if c.customer == "kdv-a"]
    [rule] = [r for r in effective_rules(config.catalogue, customer, mapping) if r.id == rule_id]
    cutoff = rule_cutoff(rule, NOW, customer.timezone)
    target = target_for(rule, mapping, customer.products[mapping.product], cutoff)
    holding, settling = SqlConnector(url, pepper=PEPPER), SqlConnector(url, pepper=PEPPER)
    holding.open()
    settling.open()
    try:
        holder = Holder(lambda prepare: change(holding, target, prepare))
        applied = holder.start()
        hasher = KeyHasher(PEPPER, customer.customer, mapping.product, target.table.name)
        named = [hasher(k if target.table.key else row_key(k)) for k in applied.changed_keys]
        batch = OpenBatch(
            "holder-run",
            customer.customer,
            mapping.product,
            rule.id,
            rule.action.value,
            target.table.name,
            1,
            tuple(named),
            dict(applied),
            target.masks,
        )
        bus = EventBus()
        seen: list[object] = []
        bus.subscribe(seen.append)
        settlement = BatchSettlement(bus, config.catalogue, PEPPER, lambda: NOW)
        asked = Beside(lambda: settlement.settle(settling, customer, mapping, batch, "settler"))
        asked.of(holder, url, roll_back=roll_back)
    finally:
        holding.close()
        settling.close()
    [settled] = [e for e in seen if isinstance(e, BatchSettled)]
    return settled, hasher


@pytest.mark.parametrize("roll_back", [False, True], ids=["committed", "rolled-back"])
def test_an_anonymise_batch_in_flight_is_settled_as_its_commit_left_it(
    tmp_path: Path, school_url: str, roll_back: bool
) -> None:
    """Three pupils masked by a batch in flight: committed, all three count as applied (the
    rows read before its COMMIT were not masked yet); rolled back, none does."""
    keys = [(1, 1), (1, 2), (1, 3)]
    settled, hasher = settle_beside(
        tmp_path,
        school_url,
        "kids.pupil.left",
        lambda c, t, prepare: c.apply(t, Change.ANONYMISE, keys, prepare=prepare),
        roll_back=roll_back,
    )
    if roll_back:
        not_applied = tuple(sorted(hasher(k) for k in keys))
        assert (settled.applied, settled.not_applied, dict(settled.rows)) == (0, not_applied, {})
    else:
        assert (settled.applied, settled.not_applied, dict(settled.rows)) == (3, (), {"pupil": 3})


@pytest.mark.parametrize("roll_back", [False, True], ids=["committed", "rolled-back"])
def test_a_keyless_batch_in_flight_is_settled_as_its_commit_left_it(
    tmp_path: Path, school_url: str, roll_back: bool
) -> None:
    """Three log rows (two identical) deleted by a batch in flight: committed, all three
    count as applied; rolled back, all three (the identical ones twice) as not applied."""
    settled, hasher = settle_beside(
        tmp_path,
        school_url,
        "kids.log.expired",
        lambda c, t, prepare: c.delete_expired(t, 10, prepare=prepare),
        roll_back=roll_back,
    )
    rows = dict(settled.rows)
    if roll_back:
        named = sorted(hasher(row_key((1, p, at, m))) for p, at, m in LOG if at != INSIDE)
        assert (settled.applied, sorted(settled.not_applied), rows) == (0, named, {})
        assert len(set(named)) == 2
    else:
        assert (settled.applied, settled.not_applied, rows) == (3, (), {"access_log": 3})
