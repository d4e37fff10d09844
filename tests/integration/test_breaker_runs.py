"""The blast-radius breaker and approvals on real SQLite product and state databases."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from demo.walkthrough import walkthrough
from tests import kidsapp
from tests.gate_support import (
    MISTYPED,
    OLD,
    RECENT,
    config,
    run,
    seed,
)
from tests.support import NOW, copy_config, edit_config
from worker.approvals import ApprovalError, ApprovalLedger
from worker.events import (
    ApprovalChanged,
    RuleGated,
)
from worker.periods import Period, Unit, cutoff
from worker.state import StateStore
from worker.verify import verify


def test_a_mistyped_month_trips_the_breaker_and_changes_nothing(
    tmp_path: Path, product_url: str, state: StateStore
) -> None:
    """1 month on a table where 3,000 of 4,000 rows are older: the rule waits for approval
    with the figures that tripped it; the other customer's run goes on."""
    cfg = config(tmp_path, customers=MISTYPED)
    seed(product_url, [OLD] * 3_000 + [RECENT] * 1_000, [OLD] * 5)
    before = kidsapp.rows_by_id(product_url)

    reports, seen = run(cfg, product_url, state)

    after = kidsapp.rows_by_id(product_url)
    assert {i for i in before if i > 10_000} & set(after) == set()  # kdv-b: 5 rows deleted
    assert {i: v for i, v in after.items() if v[0] == 1} == {
        i: v for i, v in before.items() if v[0] == 1
    }
    a = next(r for r in reports if r.customer == "kdv-a")
    assert [p.rule for p in a.awaiting] == [kidsapp.RULE]
    assert a.changed == 0
    (gated,) = seen.of(RuleGated)
    assert (gated.gate, gated.why, gated.eligible) == ("awaiting_approval", "breaker", 3_000)
    assert "3000 of 4000 rows (75.0%) exceed max_share 25.0%" in gated.reasons
    (waiting,) = ApprovalLedger(state).list()
    assert (waiting.customer, waiting.status, waiting.eligible) == ("kdv-a", "waiting", 3_000)
    assert waiting.figures["table_rows"] == 4_000
    assert [e.change for e in seen.of(ApprovalChanged)] == ["requested"]
    assert verify(state).ok

    # The next night asks nothing new: the waiting request is updated, not duplicated.
    run(cfg, product_url, state, now=NOW + dt.timedelta(days=1))
    (still,) = ApprovalLedger(state).list()
    assert (still.approval_id, still.requested_at) == (waiting.approval_id, waiting.requested_at)


def test_an_approval_lets_the_next_run_do_what_was_counted_once(
    tmp_path: Path, product_url: str, state: StateStore
) -> None:
    """After approve, the next run deletes exactly the counted rows and uses the approval up;
    a later large backlog asks again."""
    cfg = config(tmp_path, customers=MISTYPED)
    seed(product_url, [OLD] * 3_000 + [RECENT] * 1_000, [])
    run(cfg, product_url, state)
    (waiting,) = ApprovalLedger(state).list()
    ApprovalLedger(state).decide(
        waiting.approval_id, "approve", by="alice", reason="leavers", at=NOW
    )

    reports, seen = run(cfg, product_url, state)

    assert reports[0].changed == 3_000
    assert set(kidsapp.rows_by_id(product_url)) == set(range(3_001, 4_001))
    assert [e.change for e in seen.of(ApprovalChanged)] == ["used"]
    (used,) = ApprovalLedger(state).list(include_closed=True)
    assert used.status == "used"
    assert ApprovalLedger(state).list() == []
    assert verify(state).ok


def test_more_rows_than_approved_ask_again(
    tmp_path: Path, product_url: str, state: StateStore
) -> None:
    """An approval covers its count plus a tenth: finding far more supersedes it."""
    cfg = config(tmp_path, customers=MISTYPED)
    seed(product_url, [OLD] * 2_000 + [RECENT] * 500, [])
    run(cfg, product_url, state)
    (first,) = ApprovalLedger(state).list()
    ApprovalLedger(state).decide(first.approval_id, "approve", by="alice", reason="ok", at=NOW)
    kidsapp.create(product_url, [(5_000 + i, 1, OLD) for i in range(1_000)])

    reports, _ = run(cfg, product_url, state)

    assert reports[0].changed == 0
    assert [p.why for p in reports[0].awaiting] == ["exceeds_approval"]
    statuses = {a.approval_id: a.status for a in ApprovalLedger(state).list(include_closed=True)}
    assert statuses[first.approval_id] == "superseded"
    (again,) = ApprovalLedger(state).list()
    assert again.approval_id != first.approval_id
    assert again.eligible == 3_000


def test_four_eyes_needs_a_second_different_approver(
    tmp_path: Path, product_url: str, state: StateStore
) -> None:
    """With four-eyes one approval is not enough; the same approver twice is refused."""
    cfg = config(
        tmp_path,
        product=kidsapp.mapping(approval={"four_eyes": True}),
        customers=MISTYPED,
    )
    seed(product_url, [OLD] * 3_000 + [RECENT] * 1_000, [])
    run(cfg, product_url, state)
    ledger = ApprovalLedger(state)
    (waiting,) = ledger.list()
    assert waiting.approvers_needed == 2
    once = ledger.decide(waiting.approval_id, "approve", by="alice", reason="ok", at=NOW)
    assert once.status == "waiting"
    with pytest.raises(ApprovalError, match="second, different approver"):
        ledger.decide(waiting.approval_id, "approve", by="alice", reason="again", at=NOW)
    reports, _ = run(cfg, product_url, state)
    assert reports[0].changed == 0  # still one approver short
    twice = ledger.decide(waiting.approval_id, "approve", by="bob", reason="ok", at=NOW)
    assert twice.status == "approved"
    reports, _ = run(cfg, product_url, state)
    assert reports[0].changed == 3_000


def test_a_rejected_request_changes_nothing_and_cannot_be_approved(
    tmp_path: Path, product_url: str, state: StateStore
) -> None:
    """reject closes the request; the rows stay; deciding it again is refused."""
    cfg = config(tmp_path, customers=MISTYPED)
    seed(product_url, [OLD] * 3_000 + [RECENT] * 1_000, [])
    run(cfg, product_url, state)
    ledger = ApprovalLedger(state)
    (waiting,) = ledger.list()
    ledger.decide(waiting.approval_id, "reject", by="carol", reason="typo: 1 month", at=NOW)
    with pytest.raises(ApprovalError, match="rejected, not waiting"):
        ledger.decide(waiting.approval_id, "approve", by="dave", reason="ok", at=NOW)
    assert len(kidsapp.rows_by_id(product_url)) == 4_000


def test_an_approval_only_rule_is_counted_but_never_run_unapproved(
    tmp_path: Path, product_url: str, state: StateStore
) -> None:
    """`approval: required`: plan counts it; run leaves it waiting; approve lets one run do
    it; the next rows wait for a new approval."""
    cfg = config(
        tmp_path,
        product=kidsapp.mapping(rules=[kidsapp.rule(approval="required")]),
    )
    seed(product_url, [OLD] * 3 + [RECENT], [OLD] * 2)
    planned, _ = run(cfg, product_url, state, dry_run=True)
    assert [(r.customer, r.rules[0].eligible, r.rules[0].gate) for r in planned] == [
        ("kdv-a", 3, "awaiting_approval"),
        ("kdv-b", 2, "awaiting_approval"),
    ]
    assert ApprovalLedger(state).list() == []  # a dry run asks nobody

    reports, _ = run(cfg, product_url, state)
    assert [r.changed for r in reports] == [0, 0]
    assert len(kidsapp.rows_by_id(product_url)) == 6
    requests = {a.customer: a for a in ApprovalLedger(state).list()}
    assert {c: a.why for c, a in requests.items()} == {"kdv-a": "flagged", "kdv-b": "flagged"}

    ApprovalLedger(state).decide(
        requests["kdv-a"].approval_id, "approve", by="alice", reason="audit log", at=NOW
    )
    reports, _ = run(cfg, product_url, state)
    assert [r.changed for r in reports] == [3, 0]
    assert set(kidsapp.rows_by_id(product_url)) == {4, 10_001, 10_002}

    kidsapp.create(product_url, [(50, 1, OLD)])
    reports, _ = run(cfg, product_url, state)
    assert reports[0].changed == 0  # a new approval is needed for new rows
    assert 50 in kidsapp.rows_by_id(product_url)


def test_normal_nights_never_trip_the_default_breaker(
    tmp_path: Path, product_url: str, state: StateStore
) -> None:
    """Twenty nights on a 40,000-row table, 800 to 1,800 rows expiring each night (history,
    share and cap all judged): no night waits for approval, and every expiring row goes."""
    cfg = config(tmp_path)
    period = Period(24, Unit.MONTHS)
    rows: list[tuple[int, int, dt.date | None]] = []
    nights = [NOW + dt.timedelta(days=n) for n in range(20)]
    for n, night in enumerate(nights):
        due = cutoff(night.date(), period) - dt.timedelta(days=1)  # eligible from night n
        start = len(rows) + 1
        rows += [(start + k, 1, due) for k in range(800 + (n * 377) % 1_000)]
    expiring = len(rows)
    rows += [(k, 1, None) for k in range(expiring + 1, 40_001)]  # still enrolled
    kidsapp.create(product_url, rows)

    for night in nights:
        reports, seen = run(cfg, product_url, state, now=night, customer="kdv-a")
        assert seen.of(RuleGated) == [], night
        assert reports[0].awaiting == []

    assert len(kidsapp.rows_by_id(product_url)) == 40_000 - expiring
    assert ApprovalLedger(state).list(include_closed=True) == []


# The parent's time basis as the shipped demo maps it: the latest de-registration of his
# children (a related table that an earlier rule of the pair deletes from), else his own end.
RELATED_BASIS = """\
    dates:
      relation_ended: relation_ended_on
      last_child_left:
        latest: deregistered_on
        from: {table: child, references: {organisation_id: organisation_id, parent_id: id}}
        if_none: relation_ended
    where:
      - {column: relation_ended_on, is_null: false}
"""


@pytest.mark.parametrize("parent_basis", ["own column", "related table"])
def test_the_demo_never_trips_the_default_breaker(tmp_path: Path, parent_basis: str) -> None:
    """The whole demo (seed, plan, run, verify) on the tests' copy of the configuration:
    no rule waits for approval with the default limits, and the demo exits 0. Its plan's rows
    per product, table and action (dependents included) are, line for line, the rows its run
    then changes (issue 9, point 9) — also where a parent's time basis reads the children
    that the pair's child rule deletes first in the run (the plan leaves them out too)."""
    config_dir = copy_config(tmp_path)
    if parent_basis == "related table":
        products = "products/flexkids.yaml"
        edit_config(config_dir, products, "    dates: {relation_ended: relation_ended_on}\n", "")
        parent = "    table: parent\n    key: [id]\n"
        edit_config(config_dir, products, parent, parent + RELATED_BASIS)
        edit_config(config_dir, products, "date: relation_ended\n", "date: last_child_left\n")
        # The child rule first, as in the shipped demo: the run deletes children before it
        # judges their parents.
        text = (config_dir / products).read_text(encoding="utf-8")
        child_rule = text[text.index("  # Phased: health notes") :]
        edit_config(config_dir, products, child_rule, "")
        parent_rule = "  - id: flexkids.parent.relation-ended\n"
        edit_config(config_dir, products, parent_rule, child_rule + "\n" + parent_rule)
    lines: list[str] = []
    code = walkthrough(tmp_path / "demo", config_dir, reset=False, echo=lines.append)
    text = "\n".join(lines)
    assert code == 0, text
    assert "awaits approval" not in text and "wait for approval" not in text
    planned = _between(text, "A run would change:\n", "\nPlan as of")
    changed = _between(text, "== Run once\n", "\nPer customer × product:")
    assert planned == changed
    rows = [int(line.split()[-1]) for line in changed.splitlines()[2:]]
    assert f"{sum(rows)} row(s) in all tables would change" in text
    eligible = int(text.split(" row(s) eligible now in ", 1)[0].rsplit("\n", 1)[-1])
    assert sum(rows) > eligible  # the dependents go too, and the plan says so
    store = StateStore(f"sqlite:///{tmp_path / 'demo' / 'state.db'}")
    try:
        assert ApprovalLedger(store).list(include_closed=True) == []
    finally:
        store.close()


def _between(text: str, start: str, end: str) -> str:
    return text.split(start, 1)[1].split(end, 1)[0]


@pytest.mark.parametrize(
    ("first", "second"),
    [("alice", "Alice"), ("alice", "ALICE"), ("Alice Smith", "alice  smith")],
)
def test_four_eyes_refuses_the_same_person_written_differently(
    tmp_path: Path, product_url: str, state: StateStore, first: str, second: str
) -> None:
    """Case and spacing do not make a second pair of eyes; the request stays waiting."""
    cfg = config(
        tmp_path, product=kidsapp.mapping(approval={"four_eyes": True}), customers=MISTYPED
    )
    kidsapp.create(product_url, [(i, 1, dt.date(2026, 6, 1)) for i in range(1, 2001)])
    run(cfg, product_url, state, customer="kdv-a")
    ledger = ApprovalLedger(state)
    (request,) = ledger.list()
    ledger.decide(request.approval_id, "approve", by=first, reason="checked", at=NOW)
    with pytest.raises(ApprovalError, match="second, different approver"):
        ledger.decide(request.approval_id, "approve", by=second, reason="again", at=NOW)
    assert ledger.list()[0].status == "waiting"


def test_an_approval_never_covers_a_cutoff_its_first_approver_did_not_see(
    tmp_path: Path, product_url: str, state: StateStore
) -> None:
    """Four-eyes: alice approves the request as counted; six days later a run moves the
    still-waiting request's cutoff; bob approves. The run does only the rows before the
    cutoff alice saw: the 60 rows between the two cutoffs stay."""
    cfg = config(
        tmp_path, product=kidsapp.mapping(approval={"four_eyes": True}), customers=MISTYPED
    )
    rows = [(i, 1, dt.date(2026, 6, 1)) for i in range(1, 2001)]
    between = [(5000 + i, 1, dt.date(2026, 11, 1) - dt.timedelta(days=i % 3)) for i in range(60)]
    kidsapp.create(product_url, rows + between + [(9000, 1, dt.date(2026, 11, 25))])
    run(cfg, product_url, state, customer="kdv-a")
    ledger = ApprovalLedger(state)
    (request,) = ledger.list()
    seen_by_alice = request.cutoff
    ledger.decide(request.approval_id, "approve", by="alice", reason="checked", at=NOW)
    later = NOW + dt.timedelta(days=6)
    run(cfg, product_url, state, now=later, customer="kdv-a")
    assert ledger.list()[0].cutoff > seen_by_alice  # the request moved under alice's approval
    ledger.decide(request.approval_id, "approve", by="bob", reason="checked", at=later)
    (report,), _ = run(cfg, product_url, state, now=later, customer="kdv-a")
    left = kidsapp.rows_by_id(product_url)
    assert [i for i, _, _ in between if i not in left] == []
    assert report.changed == 2_000


def test_a_request_no_run_waits_for_is_closed(
    tmp_path: Path, product_url: str, state: StateStore
) -> None:
    """The breaker trips on a mistyped month; the customer's file is fixed and the next run
    does the rule normally: the old request is closed (superseded), not left waiting."""
    kidsapp.create(
        product_url,
        [(i, 1, dt.date(2026, 6, 1)) for i in range(1, 2001)]
        + [(3000 + i, 1, dt.date(2023, 1, 1)) for i in range(1, 50)]
        + [(5000 + i, 1, dt.date(2026, 11, 25)) for i in range(1, 2000)],
    )
    bad = config(tmp_path / "bad", customers=MISTYPED)
    (report,), _ = run(bad, product_url, state, customer="kdv-a")
    assert report.rules[0].gate == "awaiting_approval"
    fixed = config(tmp_path / "fixed", customers={"kdv-a": {"settings": {"child_months": 24}}})
    (report,), seen = run(fixed, product_url, state, customer="kdv-a")
    assert report.rules[0].gate == "" and report.rules[0].changed == {"child": 49}
    assert ApprovalLedger(state).list() == []
    assert [e.change for e in seen.of(ApprovalChanged)] == ["superseded"]
    (closed,) = ApprovalLedger(state).list(include_closed=True)
    assert closed.status == "superseded"
