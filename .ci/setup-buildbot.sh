#!/usr/bin/env bash
# Installs pinned buildbot (master), buildbot-www and buildbot-worker into <repo>/.venv-buildbot
# for the end-to-end test against a real Buildbot (crates/server/tests/buildbot_e2e.rs).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/venv.sh"

V="4.3.0"
# The master serves its REST/data API only with the base www plugin (buildbot-www) installed:
# without it the www service refuses to start ("could not find buildbot-www").
pinned_venv buildbot "
import sys, importlib.metadata as m
sys.exit(any(m.version(p) != '$V' for p in ('buildbot', 'buildbot-worker', 'buildbot-www')))
" "buildbot==$V" "buildbot-worker==$V" "buildbot-www==$V"
