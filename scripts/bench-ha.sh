#!/usr/bin/env bash
# HA benchmark on the local engine: install one replica, join two more (each join is timed
# from the start of `dtr join` to its end, which waits for the database member to stream from
# the primary), then kill every container of the replica holding the database primary while a
# writer creates a repository every 0.2 s through another replica, and measure how long writes
# were refused. Repeats the kill part N times on fresh clusters (default 1). Prints the figures.
#
#   scripts/bench-ha.sh [N]
#
# Needs the images (scripts/build-images.sh) and no DTR cluster on the engine.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1}
cargo build --release --locked --bin dtr >/dev/null 2>&1
BIN=$(pwd)/target/release/dtr
DTR_ADMIN_PASSWORD=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
export DTR_ADMIN_PASSWORD
tmp=$(mktemp -d /tmp/dtr-bench-ha.XXXXXX)
ids=()
writer=
cleanup() {
  [ -n "$writer" ] && kill "$writer" 2>/dev/null || true
  for r in "${ids[@]}"; do "$BIN" destroy --replica-id "$r" </dev/null >/dev/null 2>&1 || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
now() { date +%s.%N; }
rid() { od -An -N6 -tx1 /dev/urandom | tr -d ' \n'; }
port() { echo $((30000 + RANDOM % 10000)); }

joins=() outages=()
for run in $(seq 1 "$N"); do
  ids=() https=()
  for i in 0 1 2; do ids+=("$(rid)"); https+=("$(port)"); done
  "$BIN" install --replica-id "${ids[0]}" --replica-https-port "${https[0]}" --replica-http-port "$(port)" \
    </dev/null >"$tmp/install.log" 2>&1 || { cat "$tmp/install.log" >&2; exit 1; }
  for i in 1 2; do
    start=$(now)
    "$BIN" join --existing-replica-id "${ids[0]}" --replica-id "${ids[$i]}" \
      --replica-https-port "${https[$i]}" --replica-http-port "$(port)" </dev/null >"$tmp/join.log" 2>&1 \
      || { cat "$tmp/join.log" >&2; exit 1; }
    joins+=("$(awk -v a="$start" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')")
  done
  docker run --rm -v "dtr-ca-${ids[0]}:/ca:ro" --entrypoint cat "registry/dtr:$("$BIN" --version | awk '{print $2}')" \
    /ca/external/ca.pem >"$tmp/ca.pem"
  leader=$("$BIN" status --json | python3 -c 'import json,sys; print(next(m["name"] for m in json.load(sys.stdin)["db"] if m["role"]=="leader"))')
  for i in 0 1 2; do [ "${ids[$i]}" = "$leader" ] && dead=$i; done
  via=$(((dead + 1) % 3))
  (
    n=0
    while :; do
      n=$((n + 1)); t=$(now)
      code=$(curl -s --noproxy '*' -m 15 -o /dev/null -w '%{http_code}' --cacert "$tmp/ca.pem" \
        -u "admin:$DTR_ADMIN_PASSWORD" -H 'Content-Type: application/json' \
        -d "{\"name\":\"bench$run-$n\"}" "https://vm:${https[$via]}/api/v0/repositories/admin")
      echo "$t $code"
      sleep 0.2
    done
  ) >"$tmp/writes.log" 2>/dev/null &
  writer=$!
  sleep 3
  killed=$(now)
  # the database member first, then the rest, one at a time
  docker kill "dtr-rethinkdb-$leader" >/dev/null
  for c in $(docker ps -q --filter "label=com.docker.dtr.replica=$leader"); do docker kill "$c" >/dev/null; done
  for _ in $(seq 1 180); do
    sleep 0.5
    awk -v k="$killed" '$1 > k + 0.5 && $2 == 201 { found = 1 } END { exit !found }' "$tmp/writes.log" && break
  done
  sleep 1
  kill "$writer"; wait "$writer" 2>/dev/null || true; writer=
  # unavailability: from the last acknowledged write before the first refusal after the kill
  # to the first acknowledged write after that refusal (each line: start time, HTTP status)
  outages+=("$(awk -v k="$killed" '
    $1 <= k && $2 == 201 { last = $1 }
    $1 > k && $2 != 201 { if (!ffail) ffail = $1; failed++ }
    $1 > k && $2 == 201 && !ffail { last = $1 }
    $1 > k && $2 == 201 && ffail && !back { back = $1 }
    END {
      if (!ffail) { print "0.0 (no write was refused)"; exit }
      printf "%.1f (from the kill: %.1f; %d refused attempts)", back - last, back - k, failed
    }' "$tmp/writes.log")")
  for r in "${ids[@]}"; do "$BIN" destroy --replica-id "$r" </dev/null >/dev/null 2>&1 || true; done
  ids=()
done

echo "dtr $("$BIN" --version | awk '{print $2}'), docker $(docker version -f '{{.Server.Version}}'), $(nproc) CPUs, $N runs"
echo "join to a synced replica (s, goal <= 15): ${joins[*]}"
for o in "${outages[@]}"; do echo "write unavailability when the primary's replica dies (s, goal <= 20): $o"; done
