#!/usr/bin/env bash
# Installs a pinned schemathesis into <repo>/.venv-schemathesis for scripts/schemathesis.sh.
# Idempotent: a venv that already has the pinned version is left as it is.
set -euo pipefail

SCHEMATHESIS_VERSION="4.32.5"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$repo/.venv-schemathesis"

have_version() {
    [ -x "$venv/bin/st" ] &&
        "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('schemathesis') != '$SCHEMATHESIS_VERSION')" 2>/dev/null
}

if have_version; then
    echo "setup-schemathesis: schemathesis $SCHEMATHESIS_VERSION already in $venv"
    exit 0
fi

# Resolve the real interpreter: a pyenv shim would bind the venv to whatever pyenv picks later.
python="$(python3 -c 'import sys; print(sys.executable)')"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
have_version
echo "setup-schemathesis: installed schemathesis $SCHEMATHESIS_VERSION into $venv"
