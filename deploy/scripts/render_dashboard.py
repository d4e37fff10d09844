# ruff: noqa: E501  (HTML and SVG markup reads better on one line)
"""Render docs/dashboard.png: the Grafana dashboard's panels drawn with real series of a run.

    .venv/bin/python deploy/scripts/render_dashboard.py --out docs/dashboard.png [--minutes 6]

Grafana cannot be installed on this project's machines (no Debian or PyPI package ships it), so
this is a faithful stand-in, not Grafana itself:

1. A run: three fresh PostgreSQL databases with the reference schemas (the test fixtures'
   server: the local one, else a throwaway one), a copy of config/ where every customer ×
   product runs every 10 seconds, and the real `retention-worker run` daemon. The FlexKids
   database of kdv-zonnestraal holds 2,000 invoices past the 7-year fiscal period, and new
   expired invoices, parents and Konnect staff arrive every 15 seconds. The Konnect database
   of bso-de-vlinder is unreachable (a closed port).
2. Debian's prometheus scrapes the daemon every second for `--minutes` minutes.
3. For every panel of deploy/grafana/retention-worker.json, each target's own `expr` is sent to
   /api/v1/query_range over the whole run (step 5 s), with $product and $customer as `.*` and
   $__rate_interval as 30s. The panel's type, grid position, title, unit, thresholds, value
   mappings, legend format, stacking and colour overrides come from the JSON.
4. Each panel is drawn as SVG in one HTML page (in Grafana's dark theme colours), and Debian's
   `chromium --headless` takes the screenshot.

Panels whose metrics the worker does not export yet (approvals, legal holds, audit
checkpoints) show "No data", as Grafana would.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import html
import json
import math
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests import dbs  # noqa: E402  (after the path: the test helpers start the run)
from tests.acceptance.harness import Worker, cli, env_without, free_port, poll  # noqa: E402
from tests.deploy.prometheus import PrometheusServer  # noqa: E402
from tests.rows import flexkids_row, konnect_row  # noqa: E402
from tests.support import insert, product_env, schemas  # noqa: E402

DASHBOARD = REPO / "deploy" / "grafana" / "retention-worker.json"
EVERY_TEN_SECONDS = "*/10 * * * * *"
BROKEN_URL = "postgresql+psycopg://u:pw@127.0.0.1:1/x"
KDV_TENANT, VL_TENANT = 1042, 2077
WIDTH = 1600
CELL_H = 30
GAP = 8
STEP_S = 5
PALETTE = ["#73bf69", "#f2cc0c", "#5794f2", "#ff9830", "#f2495c", "#b877d9", "#8ab8ff", "#fade2a"]
NAMED = {"green": "#73bf69", "red": "#f2495c", "orange": "#ff9830", "blue": "#5794f2"}


# --- the run ----------------------------------------------------------------------------------


def _config(folder: Path) -> Path:
    target = folder / "config"
    shutil.copytree(REPO / "config", target)
    for path in sorted((target / "customers").glob("*.yaml")):
        data = yaml.safe_load(path.read_text("utf-8"))
        for product in data["products"]:
            data["products"][product]["schedule"] = {
                "cron": EVERY_TEN_SECONDS,
                "timezone": "Europe/Amsterdam",
            }
        path.write_text(yaml.safe_dump(data, sort_keys=False), "utf-8")
    flexkids = target / "products" / "flexkids.yaml"
    data = yaml.safe_load(flexkids.read_text("utf-8"))
    data["batch_size"] = 20
    data["batch_pause"] = 0.3
    flexkids.write_text(yaml.safe_dump(data, sort_keys=False), "utf-8")
    return target


def _fiscal_expired(days: int) -> dt.date:
    """An invoice date whose 7-year fiscal period ended `days` days ago."""
    today = dt.date.today()
    return today.replace(year=today.year - 7) - dt.timedelta(days=days)


class _Feeder(threading.Thread):
    """New expired rows every 15 seconds, so the worker always has something to do."""

    def __init__(self, env: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.env = env
        self.stop = threading.Event()
        self.round = 0

    def run(self) -> None:
        while not self.stop.wait(15):
            try:
                self.feed()
            except Exception as exc:  # noqa: BLE001  (say it, and keep the run going)
                print(f"feeder: {exc!s:.300}", file=sys.stderr)

    def feed(self) -> None:
        n = self.round
        self.round += 1
        invoices = range(100_000 + n * 150, 100_000 + (n + 1) * 150)
        insert(
            self.env["FLEXKIDS_DATABASE_URL"],
            "invoice",
            [flexkids_row("invoice", i, KDV_TENANT, _fiscal_expired(3 + i % 20)) for i in invoices],
        )
        # Ids below 10,000: the synthetic BSN has room for four digits.
        parents = range(5_000 + n * 40, 5_000 + (n + 1) * 40)
        insert(
            self.env["FLEXKIDS_DATABASE_URL"],
            "parent",
            [flexkids_row("parent", i, VL_TENANT, dt.date(2024, 1, 1)) for i in parents],
        )
        staff = range(5_000 + n * 25, 5_000 + (n + 1) * 25)
        insert(
            self.env["KONNECT_ZONNESTRAAL_DATABASE_URL"],
            "staff",
            [konnect_row("staff", i, dt.date(2020, 1, 1)) for i in staff],
        )


@contextlib.contextmanager
def run_and_scrape(folder: Path, minutes: float) -> Iterator[tuple[PrometheusServer, float, float]]:
    """Run the daemon for `minutes` under a scraping Prometheus; yield it and the run's span."""
    with dbs.postgres_server() as server, contextlib.ExitStack() as stack:
        urls = [stack.enter_context(dbs.postgres_database(server)) for _ in range(3)]
        products = product_env(*urls)
        schemas(products)
        insert(
            products["FLEXKIDS_DATABASE_URL"],
            "invoice",
            [
                flexkids_row("invoice", i, KDV_TENANT, _fiscal_expired(60 - i // 40))
                for i in range(1, 2001)
            ],
        )
        port = free_port()
        env = {
            **env_without(dict(__import__("os").environ), ("RETENTION_", "FLEXKIDS_", "KONNECT_")),
            **products,
            "KONNECT_DE_VLINDER_DATABASE_URL": BROKEN_URL,
            "RETENTION_LOG_FORMAT": "json",
            "RETENTION_HTTP_HOST": "127.0.0.1",
            "RETENTION_HTTP_PORT": str(port),
            "RETENTION_PEPPER": "dashboard-render-pepper-0123456789",
            "RETENTION_STATE_URL": f"sqlite:///{folder / 'state.db'}",
        }
        migrated = cli(["migrate"], env)
        if migrated.returncode != 0:
            raise SystemExit(f"migrate failed: {migrated.stderr}")
        config = _config(folder)
        worker = Worker([sys.executable, "-m", "worker", "run", "--config", str(config)], env, port)
        prom_dir = folder / "prometheus"
        prom_dir.mkdir()
        feeder = _Feeder(products)
        try:
            prom = PrometheusServer(prom_dir, [f"127.0.0.1:{port}"], [])
            try:
                poll(lambda: prom.query('up{job="retention-worker"} == 1'), 30, "a scrape")
                start = time.time()
                feeder.start()
                deadline = start + minutes * 60
                while time.time() < deadline:
                    if worker.proc.poll() is not None:
                        raise SystemExit(f"the worker exited\n{worker.tail()}")
                    time.sleep(min(5.0, max(0.0, deadline - time.time())))
                yield prom, start, time.time()
            finally:
                feeder.stop.set()
                prom.stop()
        finally:
            feeder.stop.set()
            worker.stop()


# --- queries ----------------------------------------------------------------------------------

Series = tuple[str, list[tuple[float, float | None]]]


def substitute(expr: str) -> str:
    for name, value in {
        "$__rate_interval": "30s",
        "$__interval": f"{STEP_S}s",
        "$__range": "1h",
        "$product": ".*",
        "$customer": ".*",
    }.items():
        expr = expr.replace(name, value)
    return expr


def legend(fmt: str, labels: dict[str, str]) -> str:
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), fmt) or str(labels)


def query_panel(
    prom: PrometheusServer, panel: dict[str, Any], start: float, end: float
) -> list[Series]:
    found: list[Series] = []
    for target in panel.get("targets", []):
        data = prom.api(
            "/api/v1/query_range",
            query=substitute(target["expr"]),
            start=str(int(start)),
            end=str(int(end)),
            step=f"{STEP_S}",
        )
        for result in data["result"]:
            points = {
                round(float(t)): float(v) for t, v in result["values"] if not math.isnan(float(v))
            }
            grid = range(int(start), int(end) + 1, STEP_S)
            values = [(float(t), points.get(t)) for t in grid]
            found.append((legend(target.get("legendFormat", ""), result["metric"]), values))
    return found


# --- formatting -------------------------------------------------------------------------------


def fmt(value: float, unit: str | None) -> str:
    if value is None or math.isnan(value):
        return "-"
    if unit == "s":
        a = abs(value)
        for size, name in ((86400 * 365, "year"), (86400, "day"), (3600, "hour"), (60, "min")):
            if a >= size:
                return f"{value / size:.3g} {name}"
        if a >= 1 or a == 0:
            return f"{value:.3g} s"
        return f"{value * 1000:.3g} ms"
    suffix = " rows/s" if unit == "rowsps" else ""
    for size, name in ((1e9, " Bil"), (1e6, " Mil"), (1e3, " K")):
        if abs(value) >= size:
            return f"{value / size:.3g}{name}{suffix}"
    return f"{value:.3g}{suffix}" if value != int(value) else f"{int(value)}{suffix}"


def color(name: str) -> str:
    return NAMED.get(name, name)


def threshold_color(defaults: dict[str, Any], value: float) -> str:
    steps = (defaults.get("thresholds") or {}).get("steps") or [{"color": "green", "value": None}]
    chosen = steps[0]["color"]
    for step in steps[1:]:
        if step["value"] is not None and value >= step["value"]:
            chosen = step["color"]
    return color(chosen)


def mapped(defaults: dict[str, Any], value: float) -> tuple[str, str] | None:
    for mapping in defaults.get("mappings") or []:
        option = mapping.get("options", {}).get(
            str(int(value)) if value == int(value) else str(value)
        )
        if option:
            return option.get("text", ""), color(option.get("color", ""))
    return None


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    if high <= low:
        high = low + 1
    raw = (high - low) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.floor(low / step) * step
    ticks = [first]
    while ticks[-1] < high - step * 0.001:
        ticks.append(ticks[-1] + step)
    return ticks


# --- drawing ----------------------------------------------------------------------------------


def esc(text: str) -> str:
    return html.escape(text, quote=True)


def draw_stat(panel: dict[str, Any], series: list[Series], w: float, h: float) -> str:
    defaults = panel["fieldConfig"]["defaults"]
    values = [v for _, points in series[:1] for _, v in points if v is not None]
    if not values:
        return f'<div class="nodata" style="height:{h - 32}px">No data</div>'
    value = values[-1]
    hit = mapped(defaults, value)
    text, bg = hit if hit else (fmt(value, defaults.get("unit")), threshold_color(defaults, value))
    return f'<div class="stat" style="background:{bg};height:{h - 40}px">{esc(text)}</div>'


def draw_timeseries(panel: dict[str, Any], series: list[Series], w: float, h: float) -> str:
    defaults = panel["fieldConfig"]["defaults"]
    custom = defaults.get("custom", {})
    unit = defaults.get("unit")
    if not series:
        return f'<div class="nodata" style="height:{h - 32}px">No data</div>'
    overrides = {
        o["matcher"]["options"]: color(p["value"]["fixedColor"])
        for o in panel["fieldConfig"].get("overrides", [])
        for p in o["properties"]
        if p["id"] == "color"
    }
    colors = [overrides.get(name, PALETTE[i % len(PALETTE)]) for i, (name, _) in enumerate(series)]
    stacked = (custom.get("stacking") or {}).get("mode") == "normal"
    bars = custom.get("drawStyle") == "bars"
    times = [t for t, _ in series[0][1]]
    tops = []
    base = [0.0] * len(times)
    stacks = []
    for _, points in series:
        vals = [v if v is not None else None for _, v in points]
        if stacked:
            lower = list(base)
            upper = [b + (v or 0.0) for b, v in zip(base, vals, strict=True)]
            base = upper
            stacks.append((lower, upper))
            tops += upper
        else:
            stacks.append((None, vals))
            tops += [v for v in vals if v is not None]
    legend_w = min(w * 0.45, 340.0)
    plot_x, plot_y = 58.0, 8.0
    plot_w, plot_h = w - legend_w - plot_x - 12, h - 32 - 34
    low = 0.0
    high = max(tops) if tops else 1.0
    ticks = nice_ticks(low, high if high > 0 else 1.0)
    top = ticks[-1] if ticks[-1] > 0 else 1.0

    def x(t: float) -> float:
        return plot_x + (t - times[0]) / max(times[-1] - times[0], 1) * plot_w

    def y(v: float) -> float:
        return plot_y + plot_h - (v - low) / (top - low) * plot_h

    out = [f'<svg width="{plot_x + plot_w + 12:.0f}" height="{h - 34:.0f}">']
    for tick in ticks:
        out.append(
            f'<line x1="{plot_x}" x2="{plot_x + plot_w:.1f}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" class="grid"/>'
            f'<text x="{plot_x - 6}" y="{y(tick) + 4:.1f}" class="axis" text-anchor="end">{esc(fmt(tick, unit))}</text>'
        )
    span = times[-1] - times[0]
    labels = max(2, min(6, int(plot_w // 70)))
    for i in range(labels):
        t = times[0] + span * i / (labels - 1)
        label = dt.datetime.fromtimestamp(t, dt.UTC).strftime("%H:%M:%S")
        anchor = "start" if i == 0 else "end" if i == labels - 1 else "middle"
        out.append(
            f'<text x="{x(t):.1f}" y="{plot_y + plot_h + 16:.1f}" class="axis" text-anchor="{anchor}">{label}</text>'
        )
    bar_w = max(plot_w / max(len(times), 1) * 0.7, 1.0)
    for (lower, upper), col in zip(stacks, colors, strict=True):
        if bars:
            for i, t in enumerate(times):
                v = upper[i]
                if not v:
                    continue
                b = lower[i] if lower else 0.0
                if v - b <= 0:
                    continue
                out.append(
                    f'<rect x="{x(t) - bar_w / 2:.1f}" y="{y(v):.1f}" width="{bar_w:.1f}" '
                    f'height="{y(b) - y(v):.1f}" fill="{col}" fill-opacity="0.75"/>'
                )
            continue
        segments: list[list[tuple[float, float]]] = [[]]
        for i, t in enumerate(times):
            v = upper[i]
            if v is None:
                if segments[-1]:
                    segments.append([])
                continue
            segments[-1].append((x(t), y(v)))
        for seg in segments:
            if not seg:
                continue
            pts = " ".join(f"{a:.1f},{b:.1f}" for a, b in seg)
            fill_base = [(x(times[i]), y(lower[i])) for i in range(len(times))] if lower else None
            opacity = custom.get("fillOpacity", 0) / 100
            if opacity:
                floor = (
                    " ".join(f"{a:.1f},{b:.1f}" for a, b in reversed(fill_base[: len(seg)]))
                    if fill_base and len(seg) == len(times)
                    else f"{seg[-1][0]:.1f},{y(0):.1f} {seg[0][0]:.1f},{y(0):.1f}"
                )
                out.append(
                    f'<polygon points="{pts} {floor}" fill="{col}" fill-opacity="{opacity}"/>'
                )
            out.append(
                f'<polyline points="{pts}" fill="none" stroke="{col}" stroke-width="{custom.get("lineWidth", 1)}"/>'
            )
    out.append("</svg>")
    rows = []
    for (name, points), col in zip(series, colors, strict=True):
        vals = [v for _, v in points if v is not None]
        last = fmt(vals[-1], unit) if vals else "-"
        peak = fmt(max(vals), unit) if vals else "-"
        rows.append(
            f'<tr><td><span class="sw" style="background:{col}"></span>{esc(name)}</td>'
            f"<td>{esc(last)}</td><td>{esc(peak)}</td></tr>"
        )
    value_w = 84 if legend_w > 260 else 48
    table = (
        f'<div class="legend" style="width:{legend_w - 8:.0f}px;max-height:{h - 40:.0f}px">'
        f"<table><colgroup><col><col style='width:{value_w}px'><col style='width:{value_w}px'></colgroup>"
        f"<tr><th>Name</th><th>Last</th><th>Max</th></tr>{''.join(rows)}</table></div>"
    )
    return f'<div class="tswrap">{"".join(out)}{table}</div>'


def draw_state_timeline(panel: dict[str, Any], series: list[Series], w: float, h: float) -> str:
    defaults = panel["fieldConfig"]["defaults"]
    if not series:
        return f'<div class="nodata" style="height:{h - 32}px">No data</div>'
    label_w, area_w = 200.0, w - 230.0
    row_h = min(34.0, (h - 70) / len(series))
    out = [f'<svg width="{w - 16:.0f}" height="{h - 34:.0f}">']
    times = [t for t, _ in series[0][1]]
    span = max(times[-1] - times[0], 1)
    for r, (name, points) in enumerate(series):
        top = 6 + r * (row_h + 4)
        out.append(
            f'<text x="{label_w - 8}" y="{top + row_h / 2 + 4:.1f}" class="axis" text-anchor="end">{esc(name)}</text>'
        )
        runs: list[tuple[float, float, float | None]] = []
        for t, v in points:
            if runs and runs[-1][2] == v:
                runs[-1] = (runs[-1][0], t, v)
            else:
                runs.append((t, t, v))
        for i, (t0, _, v) in enumerate(runs):
            t1 = runs[i + 1][0] if i + 1 < len(runs) else times[-1]
            if v is None:
                continue
            x0 = label_w + (t0 - times[0]) / span * area_w
            x1 = label_w + (t1 - times[0]) / span * area_w
            hit = mapped(defaults, v)
            text, fill = hit if hit else (fmt(v, None), threshold_color(defaults, v))
            out.append(
                f'<rect x="{x0:.1f}" y="{top:.1f}" width="{max(x1 - x0, 1):.1f}" height="{row_h:.1f}" '
                f'fill="{fill}" fill-opacity="0.8"/>'
            )
            if x1 - x0 > 40:
                out.append(
                    f'<text x="{(x0 + x1) / 2:.1f}" y="{top + row_h / 2 + 4:.1f}" class="val" text-anchor="middle">{esc(text)}</text>'
                )
    bottom = 6 + len(series) * (row_h + 4) + 14
    for i in range(6):
        t = times[0] + span * i / 5
        label = dt.datetime.fromtimestamp(t, dt.UTC).strftime("%H:%M:%S")
        anchor = "start" if i == 0 else "end" if i == 5 else "middle"
        out.append(
            f'<text x="{label_w + area_w * i / 5:.1f}" y="{bottom:.1f}" class="axis" text-anchor="{anchor}">{label}</text>'
        )
    out.append("</svg>")
    return "".join(out)


DRAW = {"stat": draw_stat, "timeseries": draw_timeseries, "state-timeline": draw_state_timeline}

CSS = """
body { margin:0; background:#111217; font-family: 'DejaVu Sans', sans-serif; color:#ccccdc; }
.head { height:48px; display:flex; align-items:center; padding:0 16px; font-size:18px; }
.head small { margin-left:16px; color:#8e8e9e; font-size:12px; }
.vars { height:36px; padding:0 16px; font-size:12px; color:#8e8e9e; }
.vars span { background:#22252b; border:1px solid #34373d; padding:4px 8px; margin-right:8px; }
.grid { position:relative; }
.panel { position:absolute; background:#181b1f; border:1px solid #2a2d33; border-radius:2px; overflow:hidden; }
.panel h3 { margin:0; padding:6px 8px; height:20px; font-size:13px; font-weight:500; color:#ccccdc; }
.row { position:absolute; font-size:15px; color:#ccccdc; padding-top:6px; }
.stat { margin:0 8px; display:flex; align-items:center; justify-content:center; font-size:34px;
        font-weight:500; color:#fff; border-radius:2px; }
.nodata { display:flex; align-items:center; justify-content:center; color:#8e8e9e; font-size:14px; }
.tswrap { display:flex; padding:0 8px; }
svg line.grid { stroke:#2c3036; }
svg text.axis { fill:#9fa1a8; font-size:11px; }
svg text.val { fill:#fff; font-size:12px; }
.legend { overflow:hidden; font-size:11px; }
.legend table { width:100%; border-collapse:collapse; table-layout:fixed; }
.legend th { text-align:left; color:#6e9fff; font-weight:500; padding:2px 4px; border-bottom:1px solid #2a2d33; }
.legend td, .legend th { padding:2px 4px; white-space:nowrap; overflow:hidden; text-overflow:ellipsis; }
.sw { display:inline-block; width:12px; height:4px; margin-right:6px; vertical-align:middle; }
.foot { position:absolute; left:16px; font-size:11px; color:#8e8e9e; }
"""


def page(
    dashboard: dict[str, Any], data: dict[int, list[Series]], start: float, end: float
) -> tuple[str, int]:
    col = (WIDTH - 2 * GAP) / 24
    parts = []
    bottom = 0
    for panel in dashboard["panels"]:
        pos = panel["gridPos"]
        left = GAP + pos["x"] * col
        top = pos["y"] * (CELL_H + GAP)
        w = pos["w"] * col - GAP
        h = pos["h"] * (CELL_H + GAP) - GAP
        bottom = max(bottom, top + h)
        if panel["type"] == "row":
            parts.append(
                f'<div class="row" style="left:{left:.0f}px;top:{top:.0f}px">⌄ {esc(panel["title"])}</div>'
            )
            continue
        body = DRAW[panel["type"]](panel, data.get(panel["id"], []), w, h)
        parts.append(
            f'<div class="panel" style="left:{left:.0f}px;top:{top:.0f}px;width:{w:.0f}px;height:{h:.0f}px">'
            f"<h3>{esc(panel['title'])}</h3>{body}</div>"
        )
    fmt_t = "%Y-%m-%d %H:%M:%S"
    span = f"{dt.datetime.fromtimestamp(start, dt.UTC):{fmt_t}} - {dt.datetime.fromtimestamp(end, dt.UTC):{fmt_t}} UTC"
    height = int(48 + 36 + bottom + 40)
    doc = (
        f"<!doctype html><html><head><meta charset='utf-8'><style>{CSS}</style></head><body>"
        f"<div class='head'>{esc(dashboard['title'])}<small>{esc(span)} · Prometheus, step {STEP_S}s</small></div>"
        "<div class='vars'><span>Data source: prometheus</span><span>Product: All</span><span>Customer: All</span></div>"
        f"<div class='grid' style='height:{bottom + 30:.0f}px'>{''.join(parts)}"
        f"<div class='foot' style='top:{bottom + 10:.0f}px'>Drawn by deploy/scripts/render_dashboard.py from "
        "deploy/grafana/retention-worker.json and real series of a run (not a Grafana screenshot).</div></div>"
        "</body></html>"
    )
    return doc, height


def screenshot(html_path: Path, out: Path, height: int) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("chromium is missing: apt-get install chromium")
    done = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--window-size={WIDTH},{height}",
            f"--screenshot={out}",
            html_path.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0 or not out.is_file():
        raise SystemExit(f"chromium failed: {done.stderr[-2000:]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "dashboard.png")
    parser.add_argument("--minutes", type=float, default=6.0)
    parser.add_argument("--keep-html", type=Path, help="also write the HTML page here")
    args = parser.parse_args()
    dashboard = json.loads(DASHBOARD.read_text("utf-8"))
    with tempfile.TemporaryDirectory(prefix="rw-dash-") as tmp:
        folder = Path(tmp)
        with run_and_scrape(folder, args.minutes) as (prom, start, end):
            data = {
                panel["id"]: query_panel(prom, panel, start, end)
                for panel in dashboard["panels"]
                if panel["type"] != "row"
            }
        doc, height = page(dashboard, data, start, end)
        html_path = folder / "dashboard.html"
        html_path.write_text(doc, "utf-8")
        if args.keep_html:
            shutil.copy(html_path, args.keep_html)
        screenshot(html_path, args.out.resolve(), height)
    series = sum(len(s) for s in data.values())
    print(f"{args.out}: {len(data)} panels, {series} series from {end - start:.0f} s of a run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
