#!/usr/bin/env bash
# Runs schemathesis against a live `pipeguard serve` described by its own /openapi.json:
# a fresh SQLite database, a free port on 127.0.0.1, an admin token minted for the run.
# Fails on any server error (5xx) or any response that does not match the document.
#
#   scripts/schemathesis.sh            smoke (CI): a few examples per operation, a few minutes
#   scripts/schemathesis.sh long       many examples per operation
#   MAX_EXAMPLES=N SEED=N              override either
#   PIPEGUARD_BIN=path                 use this binary instead of building one
#
# Every platform's API points at a closed port on 127.0.0.1, so deliveries schemathesis
# invents never make pipeguard call out. /api/v1/events is left out: each of its streams lasts
# 20 s by design, and one stream per example would only wait.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

mode="${1:-smoke}"
case "$mode" in
  smoke) max="${MAX_EXAMPLES:-10}"; phases="examples,coverage,fuzzing" ;;
  long) max="${MAX_EXAMPLES:-300}"; phases="examples,coverage,fuzzing,stateful" ;;
  *) echo "usage: $0 [smoke|long]" >&2; exit 2 ;;
esac

bash .ci/setup-schemathesis.sh >/dev/null
bin="${PIPEGUARD_BIN:-}"
if [ -z "$bin" ]; then
  # The binary the test build makes (its integration tests run it): after `cargo test
  # --workspace` this compiles nothing, where `cargo build -p pipeguard` would rebuild
  # dependencies whose features differ without the dev-dependencies.
  cargo test --quiet --workspace --no-run
  target="$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
  bin="$target/debug/pipeguard"
fi

work="$(mktemp -d)"
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
server=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

{
  echo "listen = \"127.0.0.1:$port\""
  echo "[api]"
  echo "rate_limit_per_minute = 0"
  for p in github gitlab jenkins circleci buildbot buildkite azure teamcity; do
    printf '[%s]\napi_url = "http://127.0.0.1:9"\n' "$p"
  done
} >"$work/pipeguard.toml"
export PIPEGUARD_DATABASE_URL="sqlite://$work/pipeguard.db"

token="$("$bin" token create --role admin --name schemathesis 2>/dev/null)"
"$bin" serve --config "$work/pipeguard.toml" >"$work/server.log" 2>&1 &
server=$!
base="http://127.0.0.1:$port"
for _ in $(seq 100); do
  curl -fsS "$base/healthz" >/dev/null 2>&1 && break
  kill -0 "$server" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
  sleep 0.2
done

status=0
"$repo/.venv-schemathesis/bin/st" run "$base/openapi.json" \
  --header "Authorization: Bearer $token" \
  --checks not_a_server_error,response_schema_conformance \
  --phases "$phases" \
  --max-examples "$max" \
  ${SEED:+--seed "$SEED"} \
  --exclude-path /api/v1/events \
  --request-timeout 30 \
  --workers 2 \
  --report json --report-json-path "$work/report.json" \
  --warnings off || status=$?

if [ "$status" -ne 0 ]; then
  echo "== server log (errors)" >&2
  grep -iE 'error|panic' "$work/server.log" | tail -n 40 >&2 || true
fi
exit "$status"
