#!/usr/bin/env bash
# Runs each libFuzzer target in fuzz/ for a bounded time and prints, per target, the
# executions, executions per second, the corpus it reached and the findings (crash, timeout,
# out-of-memory inputs, kept under fuzz/artifacts/TARGET/). Exits non-zero on any finding.
#
#   scripts/fuzz.sh SECONDS [TARGET...]     targets: webhook analyzer safety (default: all)
#
# The committed seeds (fuzz/corpus/TARGET) are read, never written: new inputs go to
# fuzz/work/TARGET. A finding becomes a regression test in the crate it belongs to.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
secs="${1:?usage: scripts/fuzz.sh SECONDS [TARGET...]}"
shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(webhook analyzer safety)

bash "$repo/.ci/setup-fuzz.sh"
cd "$repo/fuzz"
# Apart from the workspace's: these builds carry coverage instrumentation.
fuzz_target="${FUZZ_TARGET_DIR:-$repo/fuzz/target}"
start=$(date +%s)
cargo +nightly fuzz build --sanitizer none --target-dir "$fuzz_target" >/dev/null
echo "fuzz build: $(( $(date +%s) - start )) s"

found=0
summary=()
for t in "${targets[@]}"; do
  mkdir -p "work/$t" "artifacts/$t"
  log="work/$t.log"
  # Inputs are bounded by what the service accepts; a slow input is a finding too.
  cargo +nightly fuzz run --sanitizer none --target-dir "$fuzz_target" "$t" "work/$t" "corpus/$t" -- \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -print_final_stats=1 -artifact_prefix="artifacts/$t/" >"$log" 2>&1 || true
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
  corpus=$(find "work/$t" -type f | wc -l)
  findings=$(find "artifacts/$t" -type f \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' -o -name 'leak-*' \) | wc -l)
  found=$((found + findings))
  summary+=("$(printf '%-9s %6ss %12s %10s %8s %8s %8s' "$t" "$secs" "${execs:-?}" "${rate:-?}" "${cov:-?}" "$corpus" "$findings")")
  if [ "$findings" -gt 0 ]; then
    echo "== $t: findings in fuzz/artifacts/$t" >&2
    grep -E 'ERROR|panicked|SUMMARY' "$log" | head -n 10 >&2 || true
  fi
done
printf '%-9s %7s %12s %10s %8s %8s %8s\n' target time executions execs/s cov corpus findings
printf '%s\n' "${summary[@]}"
[ "$found" -eq 0 ]
