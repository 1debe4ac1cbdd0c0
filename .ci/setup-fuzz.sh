#!/usr/bin/env bash
# cargo-fuzz for scripts/fuzz.sh (libFuzzer targets in fuzz/, built with the nightly toolchain).
# Idempotent: installs only when `cargo fuzz` is missing.
set -euo pipefail
# CI replays the committed fuzz corpus on the stable toolchain (cargo test) instead of
# building the instrumented targets, which takes longer than a CI run should; set
# PIPEGUARD_FUZZ=1 to install there anyway.
if [ -n "${CI:-}" ] && [ -z "${PIPEGUARD_FUZZ:-}" ]; then
  echo "setup-fuzz: skipped in CI (the corpus replay runs with cargo test)"
  exit 0
fi
if cargo fuzz --version >/dev/null 2>&1; then
  exit 0
fi
if ! rustup toolchain list | grep -q '^nightly'; then
  echo "setup-fuzz: the nightly toolchain is missing (rustup toolchain install nightly)" >&2
  exit 1
fi
cargo install cargo-fuzz --locked
cargo fuzz --version
