#!/usr/bin/env bash
# Intake load benchmark: starts pipeguard servers on loopback, drives them with signed GitHub
# workflow_run failure deliveries (`pipeguard bench load`), prints one table row per setup and
# checks that every accepted delivery is in the database.
#
#   bench/load.sh                 # all setups: sqlite-1, postgres-1, postgres-3
#   bench/load.sh sqlite-1        # one setup
#   BURST=1 bench/load.sh sqlite-1   # an outage: 10,000 failures in a minute, worker on
#
# Environment (defaults in brackets):
#   DURATION [10]     seconds of load per setup      CONCURRENCY [64]  requests in flight
#   REQUESTS [40000]  deliveries prepared per setup  BODY_KB [20]      body size
#   MIX [new]         new: every delivery a new failed run; mixed: 50 % new deliveries of
#                     recent runs (they join a session), 10 % replays of a recent delivery
#   WORKER [0]        1 runs the healing worker too (its platform calls go to a closed port)
#   BURST [0]         1: an outage. Every delivery a new failure with the same registry error
#                     (REQUESTS [10000] sent evenly over DURATION [60] s, REPOSITORIES [200]),
#                     about runs of a GitHub stand-in the generator starts; the workers run
#                     against it, hold the failures as one incident and probe with canaries;
#                     the registry is back after OUTAGE [90] s and the held wave is followed
#                     until every session is final (SETTLE [900] s at most). The wave's pace:
#                     RELEASE_PER_MINUTE [1200]; the budget is opened for it.
#   PG_ADMIN_URL [postgres://postgres@127.0.0.1:5432/postgres]
#   PIPEGUARD_BIN     a built binary (else: cargo build --release)
#   OUT [bench/results]  where JSON results and server logs go
#
# The worker is off by default ([worker] enabled = false) so the figures are intake alone.
# The load generator runs on the same machine and takes CPU from the servers: its own share
# is reported.
set -euo pipefail
cd "$(dirname "$0")/.."

BURST=${BURST:-0}
if [ "$BURST" = 1 ]; then
  DURATION=${DURATION:-60}; REQUESTS=${REQUESTS:-10000}; WORKER=1
fi
DURATION=${DURATION:-10}
CONCURRENCY=${CONCURRENCY:-64}
REQUESTS=${REQUESTS:-40000}
REPOSITORIES=${REPOSITORIES:-$([ "$BURST" = 1 ] && echo 200 || echo 50)}
OUTAGE=${OUTAGE:-90}
SETTLE=${SETTLE:-900}
RELEASE_PER_MINUTE=${RELEASE_PER_MINUTE:-1200}
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
# The stand-in's port is chosen first: the servers start before the generator starts it.
BURST_ARGS=(); API_URL=http://127.0.0.1:9; CONFIG_ARGS=()
if [ "$BURST" = 1 ]; then
  [ "$MIX" = new ] || { echo "BURST=1 sends new failures only (MIX=new)" >&2; exit 2; }
  STAND_IN_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  API_URL=http://127.0.0.1:$STAND_IN_PORT
  BURST_ARGS=(--burst --stand-in-port "$STAND_IN_PORT" --repositories "$REPOSITORIES"
              --outage-seconds "$OUTAGE" --settle-seconds "$SETTLE")
  CONFIG="$OUT/burst-pipeguard.toml"; CONFIG_ARGS=(--config "$CONFIG")
  # Canaries every 10-30 s instead of 2-30 min, and a budget the whole wave fits in: the
  # bench follows the wave to its end instead of an hour's budget.
  cat >"$CONFIG" <<EOF
[healing]
budget_per_hour = 100000
backoff_seconds = 1
[incidents]
canary_seconds = 10
canary_max_seconds = 30
release_per_minute = $RELEASE_PER_MINUTE
[worker]
verify_poll_seconds = 2
EOF
fi
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
  PIPEGUARD_GITHUB_API_URL=$API_URL \
  PIPEGUARD_WORKER_ENABLED=$([ "$WORKER" = 1 ] && echo true || echo false) \
    "$PIPEGUARD_BIN" serve "${CONFIG_ARGS[@]}" >"$2" 2>&1 &
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
  label=$MIX; [ "$BURST" = 1 ] && label=burst
  json="$OUT/$setup-$label.json"; status=0
  PIPEGUARD_GITHUB_WEBHOOK_SECRET=$SECRET "$PIPEGUARD_BIN" bench load "${urls[@]}" "${pids[@]}" \
    --concurrency "$CONCURRENCY" --duration "$DURATION" --requests "$REQUESTS" \
    --body-kb "$BODY_KB" "${MIX_ARGS[@]}" "${BURST_ARGS[@]}" --database-url "$db" --json "$json" \
    >"$OUT/$setup-$label.txt" || status=$?
  stop_servers
  python3 - "$json" "$setup" "$label" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1])); d = r.get("database", {}); s = r["servers"]
cpu = sum(x["cpu_percent"] for x in s); rss = "+".join(str(x["peak_rss_mb"]) for x in s)
print(f"| {sys.argv[2]} | {sys.argv[3]} | {r['accepted_per_second']:.0f} | {r['latency_ms']['p50']} | "
      f"{r['latency_ms']['p99']} | {cpu:.0f} | {rss} | {r['generator_cpu_percent']:.0f} | {r['errors']} | "
      f"{d.get('lost')} | {d.get('sessions_ok') and d.get('jobs_ok')} |")
b = r.get("burst")
if b:
    print(f"burst: settled at {b['settled_seconds']} s, {b['reruns']} re-runs ({b['canaries']} canaries, {b.get('reruns_into_outage')} into the outage), "
          f"at most {b['in_flight_max_during_outage']} in flight during the outage; "
          f"{b['held_when_outage_ended']} held when it ended at {b['outage_seconds']} s; "
          f"all final at {b['drained_seconds']} s (wave {b['wave_seconds']} s, "
          f"{b['wave_per_minute']}/min): {b['sessions_by_status']}")
EOF
  [ "$backend" = postgres ] && pg_db drop "$name"
  rm -rf "$tmp"
  if [ "$status" != 0 ]; then echo "$setup: the load generator reported a problem: $OUT/$setup-$label.txt" >&2; exit 1; fi
done
