#!/usr/bin/env bash
# Intake load benchmark: starts pipeguard servers on loopback, drives them with signed GitHub
# workflow_run failure deliveries (`pipeguard bench load`), prints one table row per setup and
# checks that every accepted delivery is in the database.
#
#   bench/load.sh                 # all setups: sqlite-1, postgres-1, postgres-3
#   bench/load.sh sqlite-1        # one setup
#
# Environment (defaults in brackets):
#   DURATION [10]     seconds of load per setup      CONCURRENCY [64]  requests in flight
#   REQUESTS [40000]  deliveries prepared per setup  BODY_KB [20]      body size
#   MIX [new]         new: every delivery a new failed run; mixed: 50 % new deliveries of
#                     recent runs (they join a session), 10 % replays of a recent delivery
#   WORKER [0]        1 runs the healing worker too (its platform calls go to a closed port)
#   PG_ADMIN_URL [postgres://postgres@127.0.0.1:5432/postgres]
#   PIPEGUARD_BIN     a built binary (else: cargo build --release)
#   OUT [bench/results]  where JSON results and server logs go
#
# The worker is off by default ([worker] enabled = false) so the figures are intake alone.
# The load generator runs on the same machine and takes CPU from the servers: its own share
# is reported.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
CONCURRENCY=${CONCURRENCY:-64}
REQUESTS=${REQUESTS:-40000}
BODY_KB=${BODY_KB:-20}
MIX=${MIX:-new}
WORKER=${WORKER:-0}
PG_ADMIN_URL=${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
OUT=${OUT:-bench/results}
SECRET=bench-secret-$$
SETUPS=("$@")
[ ${#SETUPS[@]} -gt 0 ] || SETUPS=(sqlite-1 postgres-1 postgres-3)

if [ -z "${PIPEGUARD_BIN:-}" ]; then
  cargo build --release -q -p pipeguard
  PIPEGUARD_BIN="${CARGO_TARGET_DIR:-target}/release/pipeguard"
fi
mkdir -p "$OUT"
case "$MIX" in
  new) MIX_ARGS=() ;;
  mixed) MIX_ARGS=(--join 50 --duplicates 10) ;;
  *) echo "MIX must be new or mixed" >&2; exit 2 ;;
esac

PIDS=()
stop_servers() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  PIDS=()
}
trap stop_servers EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_server DATABASE_URL LOG: starts one replica; sets URL and appends its pid to PIDS.
start_server() {
  local port; port=$(free_port)
  PIPEGUARD_LISTEN=127.0.0.1:$port PIPEGUARD_DATABASE_URL=$1 \
  PIPEGUARD_GITHUB_WEBHOOK_SECRET=$SECRET PIPEGUARD_GITHUB_TOKEN=ghs_bench \
  PIPEGUARD_GITHUB_API_URL=http://127.0.0.1:9 \
  PIPEGUARD_WORKER_ENABLED=$([ "$WORKER" = 1 ] && echo true || echo false) \
    "$PIPEGUARD_BIN" serve >"$2" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 200); do
    URL=http://127.0.0.1:$port
    curl -fs "$URL/healthz" >/dev/null 2>&1 && return
    sleep 0.05
  done
  echo "server on port $port did not start; see $2" >&2
  exit 1
}

pg_db() {  # pg_db create|drop NAME
  local verb=CREATE; [ "$1" = drop ] && verb="DROP"
  psql -q "$PG_ADMIN_URL" -c "$verb DATABASE $2" >/dev/null
}

echo "| setup | mix | webhooks/s | p50 ms | p99 ms | server CPU % | peak RSS MB | generator CPU % | errors | lost | sessions ok |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
for setup in "${SETUPS[@]}"; do
  backend=${setup%-*}; replicas=${setup#*-}
  tmp=$(mktemp -d)
  case "$backend" in
    sqlite) db="sqlite://$tmp/bench.db" ;;
    postgres) name=pipeguard_bench_$$_$RANDOM; pg_db create "$name"; db="${PG_ADMIN_URL%/*}/$name" ;;
    *) echo "unknown setup $setup" >&2; exit 2 ;;
  esac
  urls=(); pids=()
  for i in $(seq "$replicas"); do
    # One at a time: each replica migrates the database before the next starts.
    start_server "$db" "$OUT/$setup-server-$i.log"
    urls+=(--url "$URL"); pids+=(--pid "${PIDS[-1]}")
  done
  json="$OUT/$setup-$MIX.json"; status=0
  PIPEGUARD_GITHUB_WEBHOOK_SECRET=$SECRET "$PIPEGUARD_BIN" bench load "${urls[@]}" "${pids[@]}" \
    --concurrency "$CONCURRENCY" --duration "$DURATION" --requests "$REQUESTS" \
    --body-kb "$BODY_KB" "${MIX_ARGS[@]}" --database-url "$db" --json "$json" >"$OUT/$setup-$MIX.txt" || status=$?
  stop_servers
  python3 - "$json" "$setup" "$MIX" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1])); d = r.get("database", {}); s = r["servers"]
cpu = sum(x["cpu_percent"] for x in s); rss = "+".join(str(x["peak_rss_mb"]) for x in s)
print(f"| {sys.argv[2]} | {sys.argv[3]} | {r['accepted_per_second']:.0f} | {r['latency_ms']['p50']} | "
      f"{r['latency_ms']['p99']} | {cpu:.0f} | {rss} | {r['generator_cpu_percent']:.0f} | {r['errors']} | "
      f"{d.get('lost')} | {d.get('sessions_ok') and d.get('jobs_ok')} |")
EOF
  [ "$backend" = postgres ] && pg_db drop "$name"
  rm -rf "$tmp"
  if [ "$status" != 0 ]; then echo "$setup: the load generator reported a problem: $OUT/$setup-$MIX.txt" >&2; exit 1; fi
done
