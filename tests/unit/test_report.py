"""What plan and run print: honest per pair, one JSON shape, progress on a terminal."""

from __future__ import annotations

import datetime as dt
import io
import json

from worker.errors import ConfigProblem
from worker.events import BatchApplied, Outcome, RuleEvaluated, RunFinished
from worker.plandoc import plan_document, set_aside
from worker.progress import Progress
from worker.report import format_changes, format_plan
from worker.runreport import RulePlan, RunReport

AT = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)
NOTHING = "Nothing changed: no data was past its retention period."


def rule(eligible: int, changed: dict[str, int] | None = None) -> RulePlan:
    return RulePlan(
        rule="flexkids.invoice.fiscal",
        action="delete",
        table="invoice",
        period="7y",
        source="fixed",
        cutoff=dt.date(2019, 11, 28),
        today=dt.date(2026, 11, 28),
        eligible=eligible,
        lag_seconds=0.0,
        changed=changed or {},
    )


def report(
    customer: str,
    outcome: Outcome = Outcome.SUCCEEDED,
    *,
    dry: bool = False,
    rules: list[RulePlan] | None = None,
    error: str | None = None,
) -> RunReport:
    return RunReport("r" + customer, customer, "flexkids", outcome, dry, rules or [], error)


PROBLEMS = [
    ConfigProblem("config/customers/kdv-a.yaml", "products.flexkids.tenant (line 4)", "bad"),
    ConfigProblem("config/customers/kdv-a.yaml", "timezone (line 2)", "unknown"),
    ConfigProblem("config/products/konnect.yaml", "rules.0.id (line 9)", "duplicate"),
]


def test_a_failed_pair_is_never_summed_up_as_nothing_to_do() -> None:
    """A pair that failed before counting anything: its error is printed, not "nothing", and
    its eligible rows are "not counted", never 0."""
    text = format_changes(
        [report("kdv-a", Outcome.FAILED, error="cannot reach postgresql://u:***@db/x")]
    )
    assert NOTHING not in text
    assert (
        "kdv-a × flexkids: FAILED; eligible rows not counted, 0 row(s) changed: cannot reach"
        in text
    )
    assert "0 row(s) eligible" not in text
    assert "1 pair(s) did not finish" in text


def test_a_dry_run_that_failed_says_not_counted() -> None:
    """--dry-run where one pair failed before counting and one stopped after its first rule:
    neither is summed up as 0 eligible, the rules counted are named; the total covers only
    the pair that succeeded and says what could not be counted."""
    text = format_changes(
        [
            report("kdv-a", dry=True, rules=[rule(12)]),
            report("kdv-b", Outcome.FAILED, dry=True, error="lock timeout"),
            report("kdv-c", Outcome.FAILED, dry=True, rules=[rule(4)], error="lock timeout"),
        ]
    )
    assert NOTHING not in text
    assert "kdv-a × flexkids: ok; 12 row(s) eligible" in text
    assert "kdv-b × flexkids: FAILED; eligible rows not counted: lock timeout" in text
    assert (
        "kdv-c × flexkids: FAILED; eligible rows not counted (it stopped after counting 1 "
        "rule(s): 4 row(s) there): lock timeout" in text
    )
    assert text.endswith(
        "12 row(s) eligible in 1 pair(s), 0 row(s) in all tables would change; 2 pair(s) "
        "could not be counted, 0 file(s) set aside; a run without --dry-run would change "
        "the rows counted."
    )
    only_failed = format_changes([report("kdv-b", Outcome.FAILED, dry=True, error="x")])
    assert "0 row(s)" not in only_failed
    assert "eligible rows not counted: no pair could be counted" in only_failed


def test_a_dry_run_says_what_is_eligible_and_that_nothing_changed() -> None:
    """--dry-run: the eligible rows per pair, and never "no data was past its period"."""
    text = format_changes([report("kdv-a", dry=True, rules=[rule(12)])])
    assert NOTHING not in text
    assert "Dry run: nothing was changed." in text
    assert "kdv-a × flexkids: ok; 12 row(s) eligible" in text
    assert "12 row(s) eligible; a run without --dry-run would change them." in text


def test_nothing_to_do_only_when_every_pair_succeeded_with_nothing_eligible() -> None:
    """The "nothing changed" line needs every pair run, nothing eligible and nothing set aside."""
    assert NOTHING in format_changes([report("kdv-a", rules=[rule(0)])])
    assert NOTHING not in format_changes([report("kdv-a", rules=[rule(0)])], set_aside(PROBLEMS))
    assert NOTHING not in format_changes(
        [report("kdv-a", rules=[rule(0)]), report("kdv-b", Outcome.INTERRUPTED)]
    )


def test_a_run_reports_changes_per_table_and_per_pair() -> None:
    """Rows changed per product, table and action, then eligible and changed per pair."""
    text = format_changes([report("kdv-a", rules=[rule(3, {"invoice": 3, "invoice_line": 7})])])
    assert "flexkids  invoice_line  delete     7" in text
    assert "kdv-a × flexkids: ok; 3 row(s) eligible, 10 row(s) changed" in text


def test_a_plan_names_the_rows_a_run_would_block_and_why() -> None:
    """A rule with rows a run would block: the pair's line says "at least", the rule lists
    each reason with its rows; JSON per rule, pair and in the totals. None: nothing new."""
    blocking = rule(5)
    blocking.would_change = {"invoice": 3}
    blocking.would_block = 2
    blocking.block_reasons = {"a row of invoice that is not eligible (keys)": 2}
    text = format_plan([report("kdv-a", dry=True, rules=[blocking])], "table", AT)
    assert "kdv-a × flexkids: ok; 5 row(s) eligible, 3 row(s) would change, at least 2 " in text
    assert "    flexkids.invoice.fiscal: at least 2 eligible row(s) would be blocked" in text
    assert "      2: a row of invoice that is not eligible (keys)" in text
    doc = plan_document([report("kdv-a", dry=True, rules=[blocking])], AT)
    assert (doc["totals"]["would_block"], doc["pairs"][0]["would_block"]) == (2, 2)
    assert doc["pairs"][0]["rules"][0]["block_reasons"] == blocking.block_reasons
    plain = format_plan([report("kdv-a", dry=True, rules=[rule(5)])], "table", AT)
    assert "block" not in plain


def test_the_json_plan_is_one_document_of_one_shape() -> None:
    """Instant, totals and every pair — failed and set-aside ones with their reasons."""
    reports = [
        report("kdv-a", rules=[rule(5)]),
        report("kdv-b", Outcome.FAILED, error="timeout"),
    ]
    doc = json.loads(format_plan(reports, "json", AT, set_aside(PROBLEMS)))
    assert doc == plan_document(reports, AT, set_aside(PROBLEMS))
    assert doc["at"] == "2026-11-28T12:00:00+00:00"
    assert doc["totals"] == {
        "pairs": 2,
        "succeeded": 1,
        "failed": 1,
        "interrupted": 0,
        "set_aside": 2,
        "eligible": 5,
        "not_counted": 3,
        "rows": 0,
        "held": 0,
        "would_block": 0,
        "awaiting_approval": 0,
    }
    assert [
        (p["customer"], p["product"], p["outcome"], p["eligible"], p["error"]) for p in doc["pairs"]
    ] == [
        ("kdv-a", "flexkids", "succeeded", 5, None),
        ("kdv-b", "flexkids", "failed", None, "timeout"),
        (
            "kdv-a",
            None,
            "set_aside",
            None,
            "set aside: 2 problem(s) in config/customers/kdv-a.yaml",
        ),
        (
            None,
            "konnect",
            "set_aside",
            None,
            "set aside: 1 problem(s) in config/products/konnect.yaml",
        ),
    ]
    assert [p["problems"] for p in doc["pairs"]] == [
        [],
        [],
        ["products.flexkids.tenant (line 4): bad", "timezone (line 2): unknown"],
        ["rules.0.id (line 9): duplicate"],
    ]
    shape = {"customer", "product", "outcome", "error", "eligible", "problems", "tables", "rules"}
    shape.add("would_block")
    assert all(set(p) == shape for p in doc["pairs"])
    assert doc["pairs"][0]["rules"][0]["cutoff"] == "2019-11-28"
    assert doc["set_aside"] == [
        {
            "file": "config/customers/kdv-a.yaml",
            "customer": "kdv-a",
            "product": None,
            "problems": ["products.flexkids.tenant (line 4): bad", "timezone (line 2): unknown"],
        },
        {
            "file": "config/products/konnect.yaml",
            "customer": None,
            "product": "konnect",
            "problems": ["rules.0.id (line 9): duplicate"],
        },
    ]
    empty = json.loads(format_plan([], "json", AT))
    assert set(empty) == set(doc)
    assert set(empty["totals"]) == set(doc["totals"])
    assert empty["totals"]["eligible"] == 0  # no pairs: nothing to count, truly 0
    failed = json.loads(format_plan([report("kdv-b", Outcome.FAILED, error="x")], "json", AT))
    assert failed["totals"]["eligible"] is None  # never 0 for a count that was not taken
    assert failed["pairs"][0]["eligible"] is None


def test_the_plan_counts_rows_per_table_a_run_would_change() -> None:
    """Per rule and pair (JSON) and per product, table and action (table form): the subject's
    rows and every other table's, dependents and cascades included, as a run counts them."""
    first = rule(3)
    first.would_change = {"invoice": 3, "invoice_line": 7}
    second = rule(2)
    second.would_change = {"invoice": 2, "payment": 1}
    reports = [report("kdv-a", dry=True, rules=[first, second])]
    doc = plan_document(reports, AT)
    assert doc["totals"]["eligible"] == 5
    assert doc["totals"]["rows"] == 13
    assert doc["pairs"][0]["tables"] == {"invoice": 5, "invoice_line": 7, "payment": 1}
    assert [r["tables"] for r in doc["pairs"][0]["rules"]] == [
        {"invoice": 3, "invoice_line": 7},
        {"invoice": 2, "payment": 1},
    ]
    text = format_plan(reports, "table", AT)
    assert "flexkids  invoice_line  delete     7" in text
    assert "flexkids  invoice       delete     5" in text
    assert "kdv-a × flexkids: ok; 5 row(s) eligible, 13 row(s) would change" in text
    assert "5 row(s) eligible now in 1 pair(s), 13 row(s) in all tables would change" in text
    assert "flexkids  payment       delete     1" in format_changes(reports)


def test_the_plan_table_lists_failed_and_set_aside_pairs() -> None:
    """The table form names every pair, the failed one with its error, and set-aside files."""
    text = format_plan(
        [
            report("kdv-a", dry=True, rules=[rule(5)]),
            report("kdv-b", Outcome.FAILED, dry=True, error="timeout"),
        ],
        "table",
        AT,
        set_aside(PROBLEMS),
    )
    assert "kdv-b × flexkids: FAILED; eligible rows not counted: timeout" in text
    assert (
        "SET ASIDE customer kdv-a: 2 problem(s) in config/customers/kdv-a.yaml; "
        "eligible rows not counted" in text
    )
    assert "SET ASIDE product konnect (every customer)" in text
    assert text.endswith(
        "5 row(s) eligible now in 1 pair(s), 0 row(s) in all tables would change; "
        "1 pair(s) could not be counted, 2 file(s) set aside; nothing was changed."
    )


def test_progress_shows_rows_done_of_eligible_per_rule() -> None:
    """Each batch rewrites the rule's line; a rule's last batch ends the line."""
    stream = io.StringIO()
    progress = Progress(stream)
    names = {"run_id": "r1", "customer": "kdv-a", "product": "flexkids"}
    common = {**names, "rule": "flexkids.invoice.fiscal", "action": "delete", "table": "invoice"}
    evaluated = RuleEvaluated(
        **common,
        eligible=5,
        lag_seconds=0.0,
        cutoff=dt.date(2019, 11, 28),
        period="7y",
        source="fixed",
    )
    progress(evaluated)
    for batch, rows in enumerate(({"invoice": 3, "invoice_line": 9}, {"invoice": 2}), 1):
        progress(
            BatchApplied(
                **common, batch=batch, rows=rows, categories=("bank",), duration_seconds=0.1
            )
        )
    progress(evaluated)  # the backlog left behind is evaluated again: no new line
    progress(RunFinished(**names, outcome=Outcome.SUCCEEDED, at=AT, duration_seconds=1.0))
    assert stream.getvalue() == (
        "\rkdv-a × flexkids  flexkids.invoice.fiscal: 0/5 row(s)"
        "\rkdv-a × flexkids  flexkids.invoice.fiscal: 3/5 row(s)"
        "\rkdv-a × flexkids  flexkids.invoice.fiscal: 5/5 row(s)\n"
    )
