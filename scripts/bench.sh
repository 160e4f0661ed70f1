#!/usr/bin/env bash
# Install/destroy benchmark on the local engine: N cycles (default 3) of a single-replica
# install with a random replica id on high ports, then destroy. Prints the time of every
# install step and of destroy per run, and the median of each.
#
#   scripts/bench.sh [N]
#
# Needs the images (scripts/build-images.sh) and no DTR cluster on the engine.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-3}
cargo build --release --locked --bin dtr >/dev/null 2>&1
BIN=target/release/dtr
DTR_ADMIN_PASSWORD=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
export DTR_ADMIN_PASSWORD
tmp=$(mktemp -d /tmp/dtr-bench.XXXXXX)
rid=
cleanup() {
  [ -n "$rid" ] && "$BIN" destroy --replica-id "$rid" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT
now() { date +%s.%N; }

for i in $(seq 1 "$N"); do
  rid=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
  https=$((30000 + RANDOM % 5000)); http=$((35000 + RANDOM % 5000))
  "$BIN" install --replica-id "$rid" --replica-https-port "$https" --replica-http-port "$http" \
    </dev/null >"$tmp/install-$i.log" 2>&1 || { cat "$tmp/install-$i.log" >&2; exit 1; }
  start=$(now)
  "$BIN" destroy --replica-id "$rid" </dev/null >"$tmp/destroy-$i.log" 2>&1 || { cat "$tmp/destroy-$i.log" >&2; exit 1; }
  awk -v a="$start" -v b="$(now)" 'BEGIN { printf "destroy: (%.1fs)\n", b - a }' >>"$tmp/destroy-$i.log"
  done_rid=$rid rid=
  # step lines look like "<timestamp> INFO  <step>: <detail> (1.2s)"
  sed -n 's/^[^ ]* INFO  \(.*\): .* (\([0-9.]*\)s)$/\1\t\2/p; s/^[^ ]* INFO  \(Installation is complete\) (\([0-9.]*\)s)$/install total\t\2/p' \
    "$tmp/install-$i.log" | sed "s/-$done_rid\t/\t/" >"$tmp/steps-$i.tsv"
  sed -n 's/^destroy: (\([0-9.]*\)s)$/destroy total\t\1/p' "$tmp/destroy-$i.log" >>"$tmp/steps-$i.tsv"
done

echo "dtr $("$BIN" --version | awk '{print $2}'), docker $(docker version -f '{{.Server.Version}}'), $(nproc) CPUs, $N runs"
printf '%-60s %s\n' "step" "seconds per run (median)"
cat "$tmp"/steps-*.tsv | awk -F'\t' '
  { if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 } v[$1] = v[$1] " " $2 }
  END {
    for (i = 1; i <= n; i++) {
      k = order[i]; m = split(substr(v[k], 2), a, " ")
      for (x = 1; x <= m; x++) for (y = x + 1; y <= m; y++) if (a[y] + 0 < a[x] + 0) { t = a[x]; a[x] = a[y]; a[y] = t }
      printf "%-60s %s  (%s)\n", k, substr(v[k], 2), a[int((m + 1) / 2)]
    }
  }'
