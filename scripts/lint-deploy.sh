#!/usr/bin/env bash
# Validates the Kubernetes manifests in deploy/ against the Kubernetes API schemas (offline:
# kubernetes-validate ships them). No cluster or container runtime is needed.
set -euo pipefail
cd "$(dirname "$0")/.."
source .ci/venv.sh
V=1.37.0
pinned_venv deploy \
  "import importlib.metadata as m, sys; sys.exit(m.version('kubernetes-validate') != '$V')" \
  "kubernetes-validate==$V" >/dev/null
venv=.venv-deploy
"$venv/bin/kubernetes-validate" --strict --quiet --kubernetes-version 1.30.0 $(ls deploy/kubernetes/*.yaml | grep -v kustomization)
"$venv/bin/kubernetes-validate" --strict --quiet $(ls deploy/kubernetes/*.yaml | grep -v kustomization)
echo "deploy/kubernetes: valid against Kubernetes 1.30 and 1.37"
