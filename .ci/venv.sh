# Sourced by the setup scripts: one pinned Python tool per venv, <repo>/.venv-NAME.
#
#   pinned_venv NAME CHECK REQUIREMENT...
#
# CHECK is Python that exits 0 when the venv already holds the pinned versions; then nothing is
# installed (idempotent). Otherwise the venv is created and the requirements installed, and
# CHECK must pass afterwards.
pinned_venv() {
    local name=$1 check=$2
    shift 2
    local repo venv python
    repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    venv="$repo/.venv-$name"
    if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "$check" 2>/dev/null; then
        echo "setup-$name: $* already in $venv"
        return 0
    fi
    # The real interpreter: a pyenv shim would bind the venv to whatever pyenv picks later.
    python="$(python3 -c 'import sys; print(sys.executable)')"
    "$python" -m venv "$venv"
    # Keep the venv out of git without touching the repository's .gitignore.
    printf '*\n' >"$venv/.gitignore"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@"
    "$venv/bin/python" -c "$check"
    echo "setup-$name: installed $* into $venv"
}
