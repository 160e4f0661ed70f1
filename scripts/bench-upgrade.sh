#!/usr/bin/env bash
# Upgrade figures on the local engine: wall time per replica and the longest stretch without a
# successful pull, for one replica (pulled directly) and for three behind a load balancer
# (the second run of an upgrade killed after its first replica). Runs the two engine tests of
# tests/upgrade.rs that measure them and prints what they measured (the tests assert
# correctness only; timings are printed here, never asserted).
#
#   scripts/bench-upgrade.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/engine-up.sh >/dev/null
bash scripts/build-images.sh --if-missing >/dev/null
bash scripts/build-images.sh --if-missing --test-version "$(cat crates/dtr/tests/it/upgrade-version)" >/dev/null
log=$(mktemp /tmp/dtr-bench-upgrade.XXXXXX)
cargo nextest run --test upgrade --no-capture -E 'test(one_replica) | test(three_replicas)' >"$log" 2>&1 || {
  tail -n 60 "$log" >&2
  echo "the upgrade tests failed (full log: $log)" >&2
  exit 1
}
echo "upgrade $(sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -n1) -> $(cat crates/dtr/tests/it/upgrade-version) on $(nproc) CPUs:"
grep -E "^(single-replica upgrade|three-replica upgrade|upgrade figure)" "$log" | sed 's/; failures: .*//'
rm -f "$log"
