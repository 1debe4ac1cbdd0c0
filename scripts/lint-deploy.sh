#!/usr/bin/env bash
# Validates the Kubernetes manifests in deploy/ against the Kubernetes API schemas (offline:
# kubernetes-validate ships them). No cluster or container runtime is needed.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv-deploy
if [ ! -x "$venv/bin/kubernetes-validate" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "kubernetes-validate==1.37.0"
fi
"$venv/bin/kubernetes-validate" --strict --quiet --kubernetes-version 1.30.0 $(ls deploy/kubernetes/*.yaml | grep -v kustomization)
"$venv/bin/kubernetes-validate" --strict --quiet $(ls deploy/kubernetes/*.yaml | grep -v kustomization)
echo "deploy/kubernetes: valid against Kubernetes 1.30 and 1.37"
