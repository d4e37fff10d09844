"""A tick's customers of one shared database asked together whether anything is due.

`run --once` (and a CronJob) runs every customer × product of its configuration one after
another (worker/app.py `run_pairs`), and on a shared product database most customers have
nothing due. Counting each customer's backlog on its own costs a statement, its round trip,
parsing and planning per customer. So the first run of a tick that counts asks, in one
statement, which rules have rows due for itself and the next customers of the same
database, mapping and rules (connectors/sqltogether.py: PostgreSQL). A later run whose
every rule was found with nothing due takes that answer instead of counting, when:

- the answer is at most `max_age_seconds` old (`RETENTION_SCHEMA_REUSE_SECONDS`, the age
  a run may also borrow a schema check at; 0: never asked together);
- its targets are exactly those asked about (the same rules, tenant and cutoffs: the same
  tick's instant) and its connector reads the same reflection of the schema (a drift
  reflected since gives another key);
- it is the same `run_pairs` call (one tick of one process).

An answer is taken at most once. A run with anything due counts it itself, as before: a
joint answer never gives a count to the gate, only "nothing due". What it can miss: rows
that became due (a basis changed to an older date, a row restored) between the joint
statement and the run, which at most `max_age_seconds` separate; the next tick finds them,
as it would rows changed a moment after a run's own count. The number asked along adapts
(`FIRST`): a tick where most customers have rows due soon stops asking.

Looking for the next customers costs little wherever nobody is asked: each pair's
database key is read once per call (a database per customer: nobody shares one), only
customers of the asking one's shape are asked with it (a customer date can make two
shapes of one mapping), and a shape whose joint check answered nothing (SQLite, MariaDB,
a value of a type not carried) or failed (a statement timeout) is not asked again in the
call: its customers count themselves, as before.

The daemon runs each pair as a job of its own, so its runs are not asked together.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

from connectors.base import Connector, ConnectorError, Target
from connectors.sqltogether import JointCheck
from worker.config import Customer, ProductMapping
from worker.errors import RetentionError
from worker.policy import EffectiveRule

LOOKAHEAD = 199
"""Customers after the asking one that one joint check may cover (two statements' worth)."""

FIRST = 7
"""Customers asked along with the first asker; each mostly idle answer doubles it, up to
LOOKAHEAD. A customer with rows due gains nothing from being asked (it counts itself), and
asking costs the database an EXISTS per rule: so a check that finds most of its customers
due stops the asking for the next PAUSE customers (doubling each time, up to PAUSE_MAX),
and then asks FIRST along again."""

PAUSE, PAUSE_MAX = 16, 1024

Targets = Callable[[Customer, ProductMapping, Sequence[EffectiveRule]], dict[str, Target]]
"""The targets of a customer's rules by rule id, as `count_backlogs` computes them
(worker/rulework.py `rule_targets`); raises what computing a cutoff raises."""


@dataclass(frozen=True)
class _Answer:
    at: float  # monotonic seconds
    key: Hashable
    targets: tuple[Target, ...]
    idle: bool


class Together:
    """The joint answers of one `run_pairs` call (see the module docstring). Not
    thread-safe: one call runs its pairs one after another.

    `connect` gives a pair's connector (not opened: only its database key is read),
    `rules_of` a customer's effective rules, `targets_of` their targets at the tick."""

    def __init__(
        self,
        pairs: Sequence[tuple[Customer, ProductMapping]],
        max_age_seconds: float,
        *,
        connect: Callable[[Customer, ProductMapping], Connector],
        rules_of: Callable[[Customer, ProductMapping], Sequence[EffectiveRule]],
        targets_of: Targets,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pairs = list(pairs)
        self._at = {(c.customer, m.product): i for i, (c, m) in enumerate(self._pairs)}
        self.max_age_seconds = max_age_seconds
        self._connect, self._rules_of, self._targets_of = connect, rules_of, targets_of
        self._monotonic = monotonic
        self._answers: dict[tuple[str, str], _Answer] = {}
        # Joint keys whose joint check answered None (another database, a type that cannot
        # be carried) or failed: their customers count themselves for the rest of the call.
        self._alone: set[Hashable] = set()
        self._groups: dict[tuple[int, str], list[int]] | None = None  # see `_group`
        self.asked = 0  # joint checks made (for tests and the bench)
        self.taken = 0  # runs that took "nothing due" instead of counting
        self._size, self._pause, self._backoff = FIRST, 0, PAUSE

    def nothing_due(
        self,
        connector: Connector,
        customer: Customer,
        mapping: ProductMapping,
        rules: Sequence[EffectiveRule],
        targets: dict[str, Target],
    ) -> bool:
        """True when a joint check found none of `targets` (this run's, by rule id, of
        `rules`) due; False when something is due or nothing is known: the run counts
        itself. Asks along with this customer the next ones of the same database and
        shape when nothing is known of it yet. A joint check that fails says nothing: the
        run counts (and reports a failure) on its own."""
        if self.max_age_seconds <= 0 or not isinstance(connector, JointCheck):
            return False
        aims = tuple(targets.values())
        key = connector.joint_key(aims)
        if key is None:
            return False
        pair = (customer.customer, mapping.product)
        found = self._answers.pop(pair, None)
        if found is not None and self._fresh(found) and (found.key, found.targets) == (key, aims):
            self.taken += found.idle
            return found.idle
        if key in self._alone:
            return False
        if self._pause > 0:  # the last check found most customers due: not asking now
            self._pause -= 1
            return False
        others = self._others(connector, customer, mapping, rules, connector.joint_key, key)
        if not others:
            return False
        try:
            answers = connector.due_together([aims, *(t for _, t in others)])
        except ConnectorError:
            answers = None
        if answers is None:  # it would answer the next customers so again: not asked again
            self._alone.add(key)
            return False
        self.asked += 1
        now = self._monotonic()
        for (other, their), answer in zip(others, answers[1:], strict=True):
            if answer is not None:
                self._answers[other] = _Answer(now, key, their, not any(answer))
        mine = answers[0]
        idle = mine is not None and not any(mine)
        self.taken += idle
        self._adapt([a for a in answers if a is not None])
        return idle

    def _adapt(self, answered: Sequence[Sequence[bool]]) -> None:
        """Ask more customers along next time when most were idle; pause otherwise."""
        if 2 * sum(not any(a) for a in answered) >= len(answered):
            self._size, self._backoff = min(LOOKAHEAD, 2 * self._size), PAUSE
        else:
            self._size, self._pause = FIRST, self._backoff
            self._backoff = min(PAUSE_MAX, 2 * self._backoff)

    def _fresh(self, answer: _Answer) -> bool:
        return self._monotonic() - answer.at <= self.max_age_seconds

    def _others(
        self,
        connector: Connector,
        customer: Customer,
        mapping: ProductMapping,
        rules: Sequence[EffectiveRule],
        key_of: Callable[[Sequence[Target]], Hashable | None],
        key: Hashable,
    ) -> list[tuple[tuple[str, str], tuple[Target, ...]]]:
        """The customers after this one in the call's order (as many as the current size:
        see FIRST) of the same mapping and database, with the same rules (by id, in order)
        and joint key (`key_of` their targets), without a fresh answer: their pair and
        targets."""
        start = self._at.get((customer.customer, mapping.product))
        database = _database_key(connector)
        if start is None or database is None:
            return []
        ids = [r.id for r in rules]
        wanted = set(ids)
        found: list[tuple[tuple[str, str], tuple[Target, ...]]] = []
        group = self._group(mapping, database)
        for index in group[bisect.bisect_right(group, start) :]:
            if len(found) >= self._size:
                break
            other, their_mapping = self._pairs[index]
            pair = (other.customer, their_mapping.product)
            known = self._answers.get(pair)
            if known is not None and self._fresh(known):
                continue
            try:
                theirs = [r for r in self._rules_of(other, their_mapping) if r.id in wanted]
                if [r.id for r in theirs] != ids:
                    continue
                aims = tuple(self._targets_of(other, their_mapping, theirs).values())
                if key_of(aims) != key:
                    continue  # another shape: asked with its own kind
            except (RetentionError, ConnectorError, ValueError, OverflowError):
                continue  # its own run will say what is wrong
            found.append((pair, aims))
        return found

    def _group(self, mapping: ProductMapping, database: str) -> list[int]:
        """The indices of the call's pairs of `mapping` (this very object) on `database`, in
        order. Every pair's database key is read once per call, on first use, so looking
        ahead costs no connector per pair of customers (a database per customer: nobody
        to ask with, whoever looks)."""
        if self._groups is None:
            self._groups = {}
            for index, (customer, their_mapping) in enumerate(self._pairs):
                try:
                    found = _database_key(self._connect(customer, their_mapping))
                except (RetentionError, ConnectorError, ValueError, OverflowError):
                    continue  # its own run will say what is wrong
                if found is not None:
                    self._groups.setdefault((id(their_mapping), found), []).append(index)
        return self._groups.get((id(mapping), database), [])


def _database_key(connector: Connector) -> str | None:
    """The connector's database key (equal for customers of one shared database), or None
    for a connector without one."""
    key = getattr(connector, "database_key", None)
    return str(key()) if callable(key) else None
