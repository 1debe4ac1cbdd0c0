#!/usr/bin/env bash
# Installs a pinned ansible-core into <repo>/.venv-ansible for the Ansible healing tests.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/venv.sh"

V="2.19.14"
pinned_venv ansible "import ansible.release as r, sys; sys.exit(r.__version__ != '$V')" \
    "ansible-core==$V"
