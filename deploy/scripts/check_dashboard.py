"""Check the Grafana dashboard: its JSON type-checks against @grafana/schema, and every
panel's PromQL parses (promtool).

    python deploy/scripts/check_dashboard.py DASHBOARD.json --tools .tools

1. Type check: writes `export const dashboard = (<the JSON>) satisfies AsJson<Dashboard>;`
   with `Dashboard` from @grafana/schema into TOOLS/node/dashboard-check/ and runs `tsc` with
   strict settings. `satisfies` checks the literal's shape, including excess properties, so
   a misspelt key or a wrong enum value fails. `AsJson<T>` is T as JSON spells it: a string
   enum of the schema (ThresholdsMode.Absolute) becomes its string values ("absolute"),
   since JSON has no TypeScript enums; everything else is kept as the schema says.
2. Expressions: every panel target's `expr` (and each query variable) becomes a recording rule
   in a temporary rules file, with Grafana's variables replaced by values Prometheus accepts
   ($product, $customer → .*, $__rate_interval → 5m, $__interval → 1m, $__range → 1h);
   `promtool check rules` must accept the file.

Exits 0 when both pass; 1 with tsc's or promtool's output otherwise; 2 when a tool is missing.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

GRAFANA_VARIABLES = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "1h",
    "${datasource}": "",
    "$product": ".*",
    "$customer": ".*",
}
TSCONFIG = {
    "compilerOptions": {
        "strict": True,
        "noEmit": True,
        "target": "ES2022",
        "module": "ESNext",
        "moduleResolution": "Bundler",
        "skipLibCheck": True,
        "exactOptionalPropertyTypes": False,
    },
    "files": ["check.ts"],
}


def expressions(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, PromQL) for every panel target and every query variable of the dashboard."""
    found = []

    def panels(items: list[dict[str, Any]]) -> None:
        for panel in items:
            for target in panel.get("targets", []):
                if "expr" in target:
                    where = f"panel {panel.get('title')!r} target {target.get('refId')}"
                    found.append((where, target["expr"]))
            panels(panel.get("panels", []))

    panels(dashboard.get("panels", []))
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") != "query":
            continue
        query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        # label_values(SELECTOR, label) is Grafana's, not PromQL: check its selector.
        match = re.fullmatch(r"label_values\((.*),\s*\w+\)", query.strip())
        found.append((f"variable {var['name']!r}", match.group(1) if match else query))
    return found


def substitute(expr: str) -> str:
    for name, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(name, value)
    return expr


def check_promql(dashboard: dict[str, Any], promtool: str) -> int:
    exprs = expressions(dashboard)
    rules = [
        {"record": f"dashboard:expr_{i}", "expr": substitute(e)} for i, (_, e) in enumerate(exprs)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "dashboard-exprs.yaml"
        path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}), "utf-8")
        done = subprocess.run(
            [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
        )
    if done.returncode != 0:
        print(done.stdout + done.stderr, file=sys.stderr)
        for i, (where, expr) in enumerate(exprs):
            print(f"  dashboard:expr_{i} = {where}: {expr}", file=sys.stderr)
        return 1
    print(f"promtool: {len(exprs)} dashboard expressions parse")
    return 0


def check_types(source: Path, tools: Path) -> int:
    tsc = tools / "node" / "node_modules" / ".bin" / "tsc"
    if not tsc.exists():
        print(f"error: {tsc} is missing; run `make deploy-tools`", file=sys.stderr)
        return 2
    folder = tools / "node" / "dashboard-check"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tsconfig.json").write_text(json.dumps(TSCONFIG, indent=2), "utf-8")
    text = source.read_text("utf-8")
    (folder / "check.ts").write_text(
        "import type { Dashboard } from '@grafana/schema';\n\n"
        f"// Generated from {source.name} by deploy/scripts/check_dashboard.py.\n"
        "// A type as JSON spells it: string enums become their values; the rest is unchanged.\n"
        "type AsJson<T> = T extends string\n"
        "  ? `${T}`\n"
        "  : T extends number | boolean | null | undefined\n"
        "    ? T\n"
        "    : T extends ReadonlyArray<infer U>\n"
        "      ? Array<AsJson<U>>\n"
        "      : T extends object\n"
        "        ? { [K in keyof T]: AsJson<T[K]> }\n"
        "        : T;\n\n"
        f"export const dashboard = ({text.strip()}) satisfies AsJson<Dashboard>;\n",
        "utf-8",
    )
    done = subprocess.run(
        [str(tsc), "-p", str(folder)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        print(f"tsc: {source} does not type-check against @grafana/schema:", file=sys.stderr)
        print(done.stdout + done.stderr, file=sys.stderr)
        return 1
    version = subprocess.run([str(tsc), "--version"], capture_output=True, text=True, check=False)
    print(f"tsc ({version.stdout.strip()}): {source} satisfies Dashboard from @grafana/schema")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dashboard", type=Path)
    parser.add_argument("--tools", type=Path, default=Path(".tools"))
    args = parser.parse_args()
    promtool = shutil.which("promtool")
    if promtool is None:
        print("error: promtool is missing; run `make deploy-tools`", file=sys.stderr)
        return 2
    dashboard = json.loads(args.dashboard.read_text("utf-8"))
    typed = check_types(args.dashboard, args.tools.resolve())
    parsed = check_promql(dashboard, promtool)
    return max(typed, parsed)


if __name__ == "__main__":
    sys.exit(main())
