#!/usr/bin/env bash
# Installs a pinned schemathesis into <repo>/.venv-schemathesis for scripts/schemathesis.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/venv.sh"

V="4.32.5"
pinned_venv schemathesis \
    "import importlib.metadata as m, sys; sys.exit(m.version('schemathesis') != '$V')" \
    "schemathesis==$V"
