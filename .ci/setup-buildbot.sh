#!/usr/bin/env bash
# Installs pinned buildbot (master), buildbot-www and buildbot-worker into <repo>/.venv-buildbot for the
# end-to-end test against a real Buildbot (crates/server/tests/buildbot_e2e.rs).
# Idempotent: a venv that already has the pinned versions is left as it is.
set -euo pipefail

BUILDBOT_VERSION="4.3.0"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$repo/.venv-buildbot"

have_version() {
    [ -x "$venv/bin/buildbot" ] && [ -x "$venv/bin/buildbot-worker" ] &&
        "$venv/bin/python" -c "
import sys, buildbot, buildbot_worker, buildbot_www
import importlib.metadata as m
sys.exit(not (m.version('buildbot-www') == '$BUILDBOT_VERSION' and buildbot.version == '$BUILDBOT_VERSION' and buildbot_worker.version == '$BUILDBOT_VERSION'))
" 2>/dev/null
}

if have_version; then
    echo "setup-buildbot: buildbot $BUILDBOT_VERSION already in $venv"
    exit 0
fi

# Resolve the real interpreter: a pyenv shim would bind the venv to whatever pyenv picks later.
python="$(python3 -c 'import sys; print(sys.executable)')"
"$python" -m venv "$venv"
# Keep the venv out of git without touching the repository's .gitignore.
printf '*\n' >"$venv/.gitignore"
# The master serves its REST/data API only with the base www plugin (buildbot-www) installed:
# without it the www service refuses to start ("could not find buildbot-www").
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "buildbot==$BUILDBOT_VERSION" "buildbot-worker==$BUILDBOT_VERSION" "buildbot-www==$BUILDBOT_VERSION"
have_version
echo "setup-buildbot: installed buildbot, buildbot-www and buildbot-worker $BUILDBOT_VERSION into $venv"
