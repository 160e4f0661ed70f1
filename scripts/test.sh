#!/usr/bin/env bash
# The whole test suite, from a clean checkout on a fresh machine (CI runs exactly this):
#   1. a Docker engine in swarm mode (scripts/engine-up.sh installs and starts it if needed),
#      cleared of what an earlier run that was cut short left (scripts/test-leftovers.sh)
#   2. the nine images, built from this checkout (scripts/build-images.sh; layer cache helps),
#      and the upgrade tests' second version (--test-version, crates/dtr/tests/it/upgrade-version) if absent
#   3. lints: cargo fmt --check, cargo clippy -D warnings
#   4. the component images on their own (scripts/smoke-components.sh)
#   5. the servers the unit tests of dtr-server use: a scratch PostgreSQL and distribution's
#      binary from Debian (scripts/test-servers.sh, stopped when this script ends), and three
#      Docker engines in one swarm for the multi-node tests (scripts/test-nodes.sh, removed likewise)
#   6. every Rust test: unit, snapshots, CLI, CLI reference, and the engine tests, which
#      fail (not skip) here when the engine or a server is missing (DTR_REQUIRE_ENGINE=1)
set -euo pipefail
cd "$(dirname "$0")/.."
export DTR_REQUIRE_ENGINE=1 CARGO_TERM_COLOR=never
step() { printf '\n== %s (%s)\n' "$*" "$(date -u +%H:%M:%S)"; }

step "engine"
bash scripts/engine-up.sh
bash scripts/test-leftovers.sh
step "images"
bash scripts/build-images.sh
bash scripts/build-images.sh --if-missing --test-version "$(cat crates/dtr/tests/it/upgrade-version)"
step "lints"
cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings
step "component images"
bash scripts/smoke-components.sh
step "test servers"
. scripts/test-servers.sh
. scripts/test-nodes.sh
step "rust tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --locked --no-fail-fast
else
  cargo test --locked --no-fail-fast
fi
step "done"
