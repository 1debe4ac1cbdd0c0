#!/usr/bin/env bash
# Installs a pinned ansible-core into <repo>/.venv-ansible for the Ansible healing tests.
# Idempotent: a venv that already has the pinned version is left as it is.
set -euo pipefail

ANSIBLE_CORE_VERSION="2.19.14"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$repo/.venv-ansible"

have_version() {
    [ -x "$venv/bin/ansible-playbook" ] &&
        "$venv/bin/python" -c "import ansible.release as r, sys; sys.exit(r.__version__ != '$ANSIBLE_CORE_VERSION')" 2>/dev/null
}

if have_version; then
    echo "setup-ansible: ansible-core $ANSIBLE_CORE_VERSION already in $venv"
    exit 0
fi

# Resolve the real interpreter: a pyenv shim would bind the venv to whatever pyenv picks later.
python="$(python3 -c 'import sys; print(sys.executable)')"
"$python" -m venv "$venv"
# Keep the venv out of git without touching the repository's .gitignore.
printf '*\n' >"$venv/.gitignore"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "ansible-core==$ANSIBLE_CORE_VERSION"
have_version
echo "setup-ansible: installed ansible-core $ANSIBLE_CORE_VERSION into $venv"
