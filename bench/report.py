"""The results as people read them: every figure of issue 11's goals next to its goal.

`goals(result, earlier)` gives the rows (figure, measured, goal, pass/fail/not measured);
`render(result)` the whole text. `earlier` are results of earlier runs (the JSON files in
the results folder), used only for "peak RSS at 10M rows within 10 % of 1M rows".
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

MIB = 2**20
FULL, BIG = 1_000_000, 10_000_000


def _verdict(ok: bool | None) -> str:
    return "not measured" if ok is None else ("pass" if ok else "FAIL")


def _ratio(result: dict[str, Any], action: str, baseline: str) -> float | None:
    part = result.get(action)
    return None if part is None else part["ratios"][f"worker/{baseline}"]


def _rss(result: dict[str, Any]) -> int | None:
    """The largest peak RSS of the delete and anonymise ticks (the idle tick's is its own)."""
    peaks = [result[a]["peak_rss_bytes"] for a in ("delete", "anonymise") if a in result]
    return max(peaks) if peaks else None


def rss_at_sizes(
    result: dict[str, Any], earlier: Iterable[dict[str, Any]]
) -> tuple[int, int] | None:
    """Peak RSS of the latest run at 1M rows and at 10M rows (this run included), if any."""
    latest: dict[int, int] = {}
    for run in [*earlier, result]:  # later runs overwrite earlier ones
        rss = _rss(run)
        rows = run.get("options", {}).get("rows")
        if rss is not None and rows in (FULL, BIG):
            latest[rows] = rss
    return (latest[FULL], latest[BIG]) if len(latest) == 2 else None


def goals(
    result: dict[str, Any], earlier: Iterable[dict[str, Any]] = ()
) -> list[tuple[str, str, str, str]]:
    """(figure, measured, goal, verdict) for every goal of the issue."""
    rows: list[tuple[str, str, str, str]] = []

    def ratio_row(label: str, value: float | None, goal: float, unit: str = "x") -> None:
        shown = "-" if value is None else f"{value:.4g}{unit}"
        rows.append(
            (label, shown, f">= {goal:g}{unit}", _verdict(None if value is None else value >= goal))
        )

    ratio_row("delete / one raw DELETE (all tenants)", _ratio(result, "delete", "raw_all"), 0.5)
    ratio_row(
        "anonymise / one raw UPDATE (all tenants)", _ratio(result, "anonymise", "raw_all"), 0.9
    )
    ratio_row("delete / per-row loop", _ratio(result, "delete", "per_row"), 100)
    ratio_row("anonymise / per-row loop", _ratio(result, "anonymise", "per_row"), 100)
    rss = _rss(result)
    rows.append(
        (
            "peak RSS of the worker, delete/anonymise tick",
            "-" if rss is None else f"{rss / MIB:.0f} MiB",
            "<= 200 MiB",
            _verdict(None if rss is None else rss <= 200 * MIB),
        )
    )
    idle_rss = result["idle"]["peak_rss_bytes"] if "idle" in result else None
    rows.append(
        (
            "peak RSS of the worker, idle tick"
            + (f" ({result['idle']['customers']:,} customers)" if "idle" in result else ""),
            "-" if idle_rss is None else f"{idle_rss / MIB:.0f} MiB",
            "<= 200 MiB",
            _verdict(None if idle_rss is None else idle_rss <= 200 * MIB),
        )
    )
    sizes = rss_at_sizes(result, earlier)
    rows.append(
        (
            "peak RSS at 10M rows vs 1M rows",
            "-"
            if sizes is None
            else f"{sizes[1] / sizes[0]:.3f}x ({sizes[0] / MIB:.0f} -> {sizes[1] / MIB:.0f} MiB)",
            "<= 1.10x",
            _verdict(None if sizes is None else sizes[1] <= 1.1 * sizes[0]),
        )
    )
    for action in ("delete", "anonymise"):
        p99 = result.get(action, {}).get("batch_seconds_p99")
        rows.append(
            (
                f"p99 batch transaction, {action}",
                "-" if p99 is None else f"{p99 * 1000:.1f} ms",
                "<= 1000 ms",
                _verdict(None if p99 is None else p99 <= 1.0),
            )
        )
    idle = result.get("idle")
    cost = None if idle is None else idle["per_customer_rule_seconds"]
    rows.append(
        (
            "idle tick per customer x product x rule",
            "-" if cost is None else f"{cost * 1000:.2f} ms",
            "<= 2 ms",
            _verdict(None if cost is None else cost <= 0.002),
        )
    )
    return rows


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    return [line.format(*header), line.format(*("-" * w for w in widths))] + [
        line.format(*r) for r in rows
    ]


LABELS = {
    "raw_all": "one raw statement, all tenants",
    "raw_per_tenant": "one raw statement per tenant",
    "per_row": "per-row loop (sample)",
    "worker": "worker tick, audit included",
}


def render(result: dict[str, Any], earlier: Iterable[dict[str, Any]] = ()) -> str:
    """The whole result as plain text: the variants per action, then the goals."""
    opts, machine = result["options"], result["machine"]
    lines = [
        f"retention-worker bench, {result['finished_at']}: {result['server']}, "
        f"{machine['cpus']} CPUs, Python {machine['python']}; "
        f"took {result['elapsed_seconds']:.0f} s",
        f"{opts['rows']:,} rows per table, {opts['tenants']:,} tenants (+1 unconfigured), 10 % "
        f"expired; batch size {opts['batch_size'] or 'from the mapping'}; baselines: median of "
        f"{opts['baseline_repeat']}, worker: median of {opts['repeat']}",
    ]
    for action in ("delete", "anonymise"):
        part = result.get(action)
        if part is None:
            continue
        lines += [
            "",
            f"{action}: {part['table']}, rule {part['rule']} (cutoff {part['cutoff']}), "
            f"{part['expired']:,} expired rows",
        ]
        rows = []
        for name, v in part["variants"].items():
            ratio = "1" if name == "worker" else f"{part['ratios'][f'worker/{name}']:.4g}x"
            rows.append(
                (
                    LABELS[name],
                    f"{v['rows']:,}",
                    f"{v['seconds']:.3f}",
                    f"{v['rows_per_second']:,.0f}",
                    ratio,
                )
            )
        lines += _table(("variant", "rows", "seconds", "rows/s", "worker / this"), rows)
        lines.append(
            f"worker: {part['batches']} batches, transaction p50 "
            f"{part['batch_seconds_p50'] * 1000:.1f} ms, "
            f"p99 {part['batch_seconds_p99'] * 1000:.1f} ms, "
            f"max {part['batch_seconds_max'] * 1000:.1f} ms; peak RSS "
            f"{part['peak_rss_bytes'] / MIB:.0f} MiB; {part['audit_records']:,} audit records"
        )
        lines.append(f"checked after every variant: {part['checks']['worker']}")
    idle = result.get("idle")
    if idle is not None:
        lines += [
            "",
            f"idle tick: {idle['customers']:,} customers x {idle['rules']} rules, nothing due: "
            f"{idle['seconds']:.2f} s = {idle['per_customer_seconds'] * 1000:.1f} ms per customer, "
            f"{idle['per_customer_rule_seconds'] * 1000:.2f} ms per customer x rule; "
            "nothing changed",
        ]
    lines += ["", "Goals (issue 11)"]
    lines += _table(("figure", "measured", "goal", "verdict"), goals(result, earlier))
    return "\n".join(lines)
