"""Approvals: a rule's changes that wait for a person.

A request is made by a run when a rule is flagged `approval: required` (why: flagged) or trips
the blast-radius breaker (why: breaker). It changes nothing for that rule and waits; the other
rules and customers go on. One request per customer × product × rule is open at a time: a
later run updates the waiting request's figures (cutoff, eligible rows, what tripped) and keeps
its `requested_at` ("since").

`retention-worker approve ID --by NAME --reason TEXT` records a decision. With four-eyes
(`approvers_needed` 2), the request is approved only by a second, different approver; the same
name twice is refused. `reject` closes the request. An approval covers what was counted: the
cutoff and a bound on rows (`bound`: the eligible rows plus a tenth, at least 10 more). The
next run does the rule at that cutoff when it finds no more than the bound (and marks the
approval used); finding more, it supersedes the approval and asks again.

Statuses: waiting → approved → used; waiting → rejected; approved → superseded (a run finds
more than the approval covers); waiting → superseded (a run no longer needs it: the breaker
stopped tripping, or nothing is eligible).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from worker.errors import RetentionError
from worker.state import StateStore
from worker.state.models import approval_decisions, approvals
from worker.state.store import utc

OPEN = ("waiting", "approved")


class ApprovalError(RetentionError):
    """The approval cannot be decided as asked."""


def person(name: str) -> str:
    """An approver's name as four-eyes compares it: case and runs of spaces do not count, so
    `alice`, `Alice` and `ALICE ` are one person."""
    return " ".join(name.split()).casefold()


def bound_for(eligible: int) -> int:
    """The most rows an approval of `eligible` rows covers: a tenth more, at least 10."""
    return eligible + max(10, math.ceil(eligible / 10))


@dataclass(frozen=True)
class Decision:
    decision: str  # approve | reject
    by: str
    reason: str
    at: dt.datetime
    cutoff: dt.date
    bound: int


@dataclass(frozen=True)
class Approval:
    """One request and the decisions taken on it so far."""

    approval_id: str
    customer: str
    product: str
    rule: str
    why: str  # flagged | breaker
    status: str  # waiting | approved | rejected | used | superseded
    requested_at: dt.datetime
    updated_at: dt.datetime
    cutoff: dt.date
    eligible: int
    bound: int
    approvers_needed: int
    figures: dict[str, Any]
    decisions: tuple[Decision, ...] = ()

    @property
    def approvers(self) -> tuple[str, ...]:
        return tuple(d.by for d in self.decisions if d.decision == "approve")

    @property
    def approved_cutoff(self) -> dt.date:
        """The earliest cutoff any approver saw (with four-eyes the request's figures may
        have moved between two approvals: an approval never covers what an approver did not
        see); the request's own before any decision."""
        approved = [d for d in self.decisions if d.decision == "approve"]
        return min(d.cutoff for d in approved) if approved else self.cutoff

    @property
    def approved_bound(self) -> int:
        approved = [d for d in self.decisions if d.decision == "approve"]
        return min(d.bound for d in approved) if approved else self.bound


def _approval(row: Any, decisions: tuple[Decision, ...]) -> Approval:
    return Approval(
        approval_id=row.approval_id,
        customer=row.customer,
        product=row.product,
        rule=row.rule,
        why=row.why,
        status=row.status,
        requested_at=utc(row.requested_at),
        updated_at=utc(row.updated_at),
        cutoff=row.cutoff,
        eligible=int(row.eligible),
        bound=int(row.bound),
        approvers_needed=int(row.approvers_needed),
        figures=json.loads(row.figures),
        decisions=decisions,
    )


def _load(conn: Connection, where: Any) -> list[Approval]:
    query = sa.select(approvals).where(where).order_by(approvals.c.requested_at)
    return _with_decisions(conn, conn.execute(query).all())


def _with_decisions(conn: Connection, rows: Sequence[Any]) -> list[Approval]:
    """The requests of `rows` (of `approvals`) with their decisions (a second statement only
    when there are requests)."""
    if not rows:
        return []
    ids = [r.approval_id for r in rows]
    found: dict[str, list[Decision]] = {i: [] for i in ids}
    for d in conn.execute(
        sa.select(approval_decisions)
        .where(approval_decisions.c.approval_id.in_(ids))
        .order_by(approval_decisions.c.decision_id)
    ):
        found[d.approval_id].append(
            Decision(d.decision, d.decided_by, d.reason, utc(d.decided_at), d.cutoff, int(d.bound))
        )
    return [_approval(r, tuple(found[r.approval_id])) for r in rows]


# Built once: every run of a pair reads it (bound parameters `customer` and `product`).
OPEN_FOR_PAIR = (
    sa.select(approvals)
    .where(
        approvals.c.customer == sa.bindparam("customer"),
        approvals.c.product == sa.bindparam("product"),
        approvals.c.status.in_(OPEN),
    )
    .order_by(approvals.c.requested_at)
)


class ApprovalLedger:
    """Reads and writes the `approvals` and `approval_decisions` tables."""

    def __init__(self, store: StateStore) -> None:
        self._store = store

    def open_for(self, customer: str, product: str, rule: str) -> Approval | None:
        """The waiting or approved request of a rule, if any."""
        where = sa.and_(
            approvals.c.customer == customer,
            approvals.c.product == product,
            approvals.c.rule == rule,
            approvals.c.status.in_(OPEN),
        )
        found = self._store.read("reading approvals", lambda conn: _load(conn, where))
        return found[-1] if found else None

    def open_for_pair(self, customer: str, product: str) -> dict[str, Approval]:
        """The waiting or approved request of each rule of a pair that has one, by rule id:
        what `open_for` gives for each rule, in one read (read now, never kept)."""
        pair = {"customer": customer, "product": product}

        def read(conn: Connection) -> list[Approval]:
            return _with_decisions(conn, conn.execute(OPEN_FOR_PAIR, pair).all())

        found = self._store.read("reading approvals", read)
        return {a.rule: a for a in found}  # ordered by request time: the latest wins

    def request(
        self,
        *,
        customer: str,
        product: str,
        rule: str,
        why: str,
        cutoff: dt.date,
        eligible: int,
        figures: dict[str, Any],
        approvers_needed: int,
        at: dt.datetime,
    ) -> tuple[Approval, bool]:
        """Open a request, or update the waiting one's figures; returns it and whether new.

        An approved request that a run found too small (more rows than its bound) must be
        superseded first (`supersede`).
        """
        text = json.dumps(figures, sort_keys=True, default=str)
        values = {
            "why": why,
            "updated_at": at.astimezone(dt.UTC),
            "cutoff": cutoff,
            "eligible": eligible,
            "bound": bound_for(eligible),
            "approvers_needed": approvers_needed,
            "figures": text,
        }

        def write(conn: Connection) -> tuple[Approval, bool]:
            where = sa.and_(
                approvals.c.customer == customer,
                approvals.c.product == product,
                approvals.c.rule == rule,
                approvals.c.status == "waiting",
            )
            waiting = _load(conn, where)
            if waiting:
                ident, new = waiting[-1].approval_id, False
                conn.execute(
                    approvals.update().where(approvals.c.approval_id == ident).values(**values)
                )
            else:
                ident, new = f"A-{secrets.token_hex(4)}", True
                conn.execute(
                    approvals.insert().values(
                        approval_id=ident,
                        customer=customer,
                        product=product,
                        rule=rule,
                        status="waiting",
                        requested_at=at.astimezone(dt.UTC),
                        **values,
                    )
                )
            found = _load(conn, approvals.c.approval_id == ident)
            return found[0], new

        return self._store.write(f"requesting approval for {rule}", write)

    def decide(
        self, approval_id: str, decision: str, *, by: str, reason: str, at: dt.datetime
    ) -> Approval:
        """Approve or reject a waiting request; ApprovalError says why it cannot be done."""
        if decision not in ("approve", "reject"):
            raise ValueError(f"decision must be approve or reject, not {decision!r}")
        if not by.strip() or not reason.strip():
            raise ApprovalError("--by and --reason are required and cannot be empty")
        by, reason = by.strip(), reason.strip()

        def write(conn: Connection) -> Approval:
            found = _load(conn, approvals.c.approval_id == approval_id)
            if not found:
                raise ApprovalError(
                    f"no approval {approval_id!r}; `retention-worker approvals list` shows them"
                )
            approval = found[0]
            if approval.status != "waiting":
                raise ApprovalError(
                    f"approval {approval_id} is {approval.status}, not waiting; only a waiting "
                    "request can be decided"
                )
            if decision == "approve" and person(by) in {person(a) for a in approval.approvers}:
                raise ApprovalError(
                    f"{by} has already approved {approval_id}; four-eyes needs a second, "
                    "different approver"
                )
            conn.execute(
                approval_decisions.insert().values(
                    approval_id=approval_id,
                    decision=decision,
                    decided_by=by,
                    reason=reason,
                    decided_at=at.astimezone(dt.UTC),
                    cutoff=approval.cutoff,
                    bound=approval.bound,
                )
            )
            approvers = len(approval.approvers) + (decision == "approve")
            status = (
                "rejected"
                if decision == "reject"
                else "approved"
                if approvers >= approval.approvers_needed
                else "waiting"
            )
            if status != "waiting":
                conn.execute(
                    approvals.update()
                    .where(approvals.c.approval_id == approval_id)
                    .values(status=status, decided_at=at.astimezone(dt.UTC))
                )
            return _load(conn, approvals.c.approval_id == approval_id)[0]

        return self._store.write(f"deciding approval {approval_id}", write)

    def close(self, approval_id: str, status: str, *, at: dt.datetime, run_id: str) -> None:
        """Close an open request: `used` (its rule ran under it) or `superseded` (a run found
        more than it covers, or no longer needs it)."""
        if status not in ("used", "superseded"):
            raise ValueError(f"status must be used or superseded, not {status!r}")

        def write(conn: Connection) -> None:
            conn.execute(
                approvals.update()
                .where(approvals.c.approval_id == approval_id, approvals.c.status.in_(OPEN))
                .values(status=status, updated_at=at.astimezone(dt.UTC), used_by_run=run_id)
            )

        self._store.write(f"closing approval {approval_id}", write)

    def list(self, *, include_closed: bool = False) -> list[Approval]:
        """Requests, oldest first: the open ones, or all."""
        where = approvals.c.status.in_(OPEN) if not include_closed else sa.true()
        return self._store.read("listing approvals", lambda conn: _load(conn, where))
