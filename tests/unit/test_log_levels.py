"""An idle run logs little at INFO: a rule with nothing due writes its `rule.evaluated` line at
DEBUG, and `run.finished` says how many rules were evaluated and how many had rows due."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from tests.support import NOW
from tests.unit.test_logging import AT, COMMON, RUN
from tests.unit.test_run import VL, Fleet, invoices, pair, runner
from worker.events import Event, Outcome, RuleEvaluated, RunFinished
from worker.logging import LogSubscriber, configure_logging

FISCAL = "flexkids.invoice.fiscal"


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    yield
    structlog.reset_defaults()
    for handler in [h for h in root.handlers if h.name == "retention-worker"]:
        root.removeHandler(handler)
    root.setLevel(level)


def logged(events: list[Event], level: str) -> list[dict[str, Any]]:
    """The JSON lines `events` make with the log configured at `level`."""
    out = io.StringIO()
    configure_logging(level, "json", out)
    subscriber = LogSubscriber()
    for event in events:
        subscriber(event)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def evaluated(
    rule: str, eligible: int = 0, held: int = 0, gate: str = "", after_batches: bool = False
) -> RuleEvaluated:
    return RuleEvaluated(
        **RUN,
        rule=rule,
        action=COMMON["action"],
        table=COMMON["table"],
        eligible=eligible,
        lag_seconds=60.0 if eligible else 0.0,
        cutoff=dt.date(2023, 3, 1),
        period="P2Y",
        source="catalogue",
        held=held,
        gate=gate,
        after_batches=after_batches,
    )


# Every way a rule has something to say; then a rule with nothing due.
BUSY = [
    evaluated("due", eligible=3),
    evaluated("due", eligible=0, after_batches=True),  # its batches left nothing
    evaluated("due.approved", eligible=0, gate="approved", after_batches=True),
    evaluated("some.held", eligible=2, held=2),
    evaluated("held.whole", eligible=0, gate="held"),  # a hold on the rule, nothing eligible
    evaluated("waiting", eligible=5, gate="awaiting_approval"),
]
IDLE = evaluated("idle")


def test_an_idle_rule_is_logged_at_debug_and_a_rule_with_something_due_at_info() -> None:
    """At INFO only the idle rule's line is missing; at DEBUG it is there, at level debug,
    with the same fields; every other line keeps level info."""
    events: list[Event] = [*BUSY, IDLE]
    at_info = logged(events, "INFO")
    assert [(line["rule"], line["eligible"], line["level"]) for line in at_info] == [
        (e.rule, e.eligible, "info") for e in BUSY
    ]
    at_debug = logged(events, "DEBUG")
    assert [line["level"] for line in at_debug] == ["info"] * len(BUSY) + ["debug"]
    idle = at_debug[-1]
    assert (idle["event"], idle["rule"], idle["eligible"], idle["held"], idle["gate"]) == (
        "rule.evaluated",
        "idle",
        0,
        0,
        "",
    )
    assert set(idle) == set(at_debug[0])


def test_run_finished_carries_the_rules_evaluated_and_those_due() -> None:
    """`rules` and `rules_due` are on the line, `null` when the event does not know them (a
    crashed run closed by another process); the other fields are as before."""
    finished = RunFinished(
        **RUN, outcome=Outcome.SUCCEEDED, at=AT, duration_seconds=1.0, rules=6, rules_due=1
    )
    closed = RunFinished(**RUN, outcome=Outcome.CRASHED, at=AT, duration_seconds=0.0)
    line, crashed = logged([finished, closed], "INFO")
    assert (line["event"], line["level"], line["rules"], line["rules_due"]) == (
        "run.finished",
        "info",
        6,
        1,
    )
    assert (line["outcome"], line["rows_total"], line["processed"]) == ("succeeded", 0, [])
    assert (crashed["rules"], crashed["rules_due"]) == (None, None)


def test_a_run_with_one_rule_due_logs_that_rule_only_and_counts_both() -> None:
    """A real run (memory connector): the invoice rule has rows due and runs its batches;
    the pair's five other rules have nothing due. At INFO the invoice rule's two lines (its
    backlog, then what its batches left) are the only `rule.evaluated` lines, and
    `run.finished` says 6 rules evaluated, 1 due. The events are unchanged: every rule is
    published, the invoice rule twice."""
    fleet = Fleet({(VL, "flexkids"): {"invoice": invoices(2077, 3, 2, 1)}})
    events: list[Event] = []
    report = runner(fleet, events).run(*pair(VL, "flexkids"), NOW, dry_run=False)
    assert report.outcome is Outcome.SUCCEEDED, report.error
    published = [e for e in events if isinstance(e, RuleEvaluated)]
    assert len(published) == 7
    assert [(e.eligible, e.after_batches) for e in published if e.rule == FISCAL] == [
        (3, False),
        (0, True),
    ]
    at_info = logged(events, "INFO")
    rule_lines = [
        (line["rule"], line["eligible"]) for line in at_info if line["event"] == "rule.evaluated"
    ]
    assert rule_lines == [(FISCAL, 3), (FISCAL, 0)]
    assert [line["rule"] for line in at_info if line["event"] == "batch.applied"] == [FISCAL]
    [finished] = [line for line in at_info if line["event"] == "run.finished"]
    assert (finished["rules"], finished["rules_due"], finished["rows_total"]) == (6, 1, 3)
    at_debug = logged(events, "DEBUG")
    assert len([line for line in at_debug if line["event"] == "rule.evaluated"]) == 7
