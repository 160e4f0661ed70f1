#!/usr/bin/env bash
# Upgrade figures on the local engine: wall time per replica and the longest stretch without a
# successful pull, for one replica (pulled directly) and for three behind a load balancer
# (the second run of an upgrade killed after its first replica). Runs the two engine tests of
# crates/dtr/tests/it/upgrade.rs that measure them and prints what they measured (the tests
# assert correctness only; timings are printed here, never asserted). The three-replica
# upgrade under pull load is then repeated N times (default 1): failed pulls per run, and how
# many runs had none.
#
#   scripts/bench-upgrade.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-1}
bash scripts/engine-up.sh >/dev/null
bash scripts/build-images.sh --if-missing >/dev/null
bash scripts/build-images.sh --if-missing --test-version "$(cat crates/dtr/tests/it/upgrade-version)" >/dev/null
log=$(mktemp /tmp/dtr-bench-upgrade.XXXXXX)
trap 'rm -f "$log"' EXIT
upgrade_tests() {
  cargo nextest run --locked -p dtr --test it --no-capture -E "$1" >"$log" 2>&1
}
upgrade_tests 'test(/^upgrade::one_replica/) | test(/^upgrade::three_replicas/)' || {
  tail -n 60 "$log" >&2
  echo "the upgrade tests failed" >&2
  exit 1
}
echo "upgrade $(sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -n1) -> $(cat crates/dtr/tests/it/upgrade-version) on $(nproc) CPUs:"
grep -E "^(single-replica upgrade|three-replica upgrade|upgrade figure)" "$log" | sed 's/; failures: .*//'

[ "$runs" -gt 1 ] || exit 0
echo "three-replica upgrade under pull load, $runs runs:"
clean=0
for i in $(seq 1 "$runs"); do
  if upgrade_tests 'test(/^upgrade::three_replicas/)'; then result=passed; else result=FAILED; fi
  line=$(grep -E "^three-replica upgrade behind" "$log" || true)
  [ -n "$line" ] || line="no figure ($(grep -m1 -E "panicked at|assertion" "$log" || echo 'see the test output'))"
  echo "  run $i: $result: ${line#three-replica upgrade behind the balancer: }"
  if [ "$result" = passed ] && grep -q " 0 failed" <<<"$line"; then clean=$((clean + 1)); fi
done
echo "runs without a failed pull: $clean of $runs"
