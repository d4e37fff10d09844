#!/usr/bin/env bash
# Check the Helm chart with the tools in TOOLS (default .tools, see install-tools.sh):
#   1. helm lint --strict (default values, and every optional resource on);
#   2. helm template for Kubernetes 1.32 in each case below, validated by
#      kubernetes-validate -k 1.32.0 --strict; the ServiceMonitor and PrometheusRule (which
#      it has no schema for) against the operator's CRD schemas (validate_crds.mjs); the
#      PrometheusRule's groups by promtool;
#   3. the values files against values.schema.json with check-jsonschema, and a values file
#      with a typo refused by both check-jsonschema and helm.
# Cases: default values; default values in cronjobs mode; every optional resource on (with the
# configuration of config/ as config.files) in daemon and in cronjobs mode.
set -euo pipefail

TOOLS=${1:-.tools}
CHART=helm/retention-worker
KUBE=1.32.0
export HELM_CACHE_HOME HELM_CONFIG_HOME HELM_DATA_HOME
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
HELM_CACHE_HOME=$work/helm/cache HELM_CONFIG_HOME=$work/helm/config HELM_DATA_HOME=$work/helm/data

helm() { "$TOOLS/bin/helm" "$@" 2> >(grep -v 'found symbolic link in path' >&2); }
say() { printf '\n--> %s\n' "$*"; }
fail() { printf 'chart: %s\n' "$*" >&2; exit 1; }

# The tools virtualenv has PyYAML (a dependency of kubernetes-validate).
PY=$TOOLS/venv/bin/python
"$PY" deploy/scripts/config_values.py config >"$work/config.values.yaml"
FULL=(-f "$work/config.values.yaml" -f deploy/helm/full.values.yaml)

say "helm lint --strict"
helm lint --strict "$CHART"
helm lint --strict "$CHART" "${FULL[@]}"

render() {  # render NAME HELM-ARGS...: template, then validate for Kubernetes $KUBE
    local name=$1
    shift
    say "helm template ($name) | kubernetes-validate -k $KUBE --strict"
    helm template retention-worker "$CHART" --namespace retention --kube-version "$KUBE" "$@" \
        >"$work/$name.yaml"
    local rc=0
    "$TOOLS/bin/kubernetes-validate" -k "$KUBE" --strict --quiet "$work/$name.yaml" \
        >"$work/$name.validate" 2>&1 || rc=$?
    # It has no schemas for the operator's kinds: validate_crds.mjs checks those below.
    grep -v "Couldn't find schema for kind \(PrometheusRule\|ServiceMonitor\) with api version monitoring.coreos.com/v1" \
        "$work/$name.validate" || true
    ((rc == 0)) || fail "kubernetes-validate refused the $name manifests"
    node deploy/scripts/validate_crds.mjs "$TOOLS/node" "$work/$name.yaml" | sed "s|$work/||"
    grep '^kind:' "$work/$name.yaml" | sort | uniq -c | sed 's/^/   /'
}
render default
render default-cronjobs --set mode=cronjobs
render full "${FULL[@]}"
render full-cronjobs "${FULL[@]}" --set mode=cronjobs
grep -q '^kind: CronJob' "$work/full-cronjobs.yaml" || fail "mode=cronjobs rendered no CronJob"

say "PrometheusRule groups: promtool check rules"
"$PY" - "$work/full.yaml" "$work/rendered-rules.yaml" <<'PY'
import json, sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d.get("kind") == "PrometheusRule"]
assert len(docs) == 1, f"expected one PrometheusRule, got {len(docs)}"
json.dump({"groups": docs[0]["spec"]["groups"]}, open(sys.argv[2], "w"))
PY
promtool check rules "$work/rendered-rules.yaml"

say "values files against values.schema.json (check-jsonschema)"
"$TOOLS/bin/check-jsonschema" --schemafile "$CHART/values.schema.json" \
    "$CHART/values.yaml" deploy/helm/full.values.yaml "$work/config.values.yaml"

say "a values file with a typo is refused"
if "$TOOLS/bin/check-jsonschema" --schemafile "$CHART/values.schema.json" \
    deploy/helm/typo.values.yaml >"$work/typo.out" 2>&1; then
    fail "check-jsonschema accepted deploy/helm/typo.values.yaml"
fi
sed 's/^/   /' "$work/typo.out"
if helm template retention-worker "$CHART" -f deploy/helm/typo.values.yaml >"$work/typo.out" 2>&1; then
    fail "helm template accepted deploy/helm/typo.values.yaml"
fi
sed 's/^/   /' "$work/typo.out"
grep -q 'enbled' "$work/typo.out" || fail "helm's refusal does not name the misspelt key"
echo "chart: all checks passed"
