#!/usr/bin/env bash
# Serving under load, on one replica of its own (installed here, destroyed at the end):
#   1. pull throughput: 50 concurrent GETs of a 10 MB layer through nginx (the published HTTPS
#      port) and straight to the dtr-registry container, alternated, ROUNDS times; medians and
#      the ratio nginx/direct (goal >= 0.9)
#   2. token requests at RATE/s for SECONDS (scripts/bench-load-tokens.py, Basic credentials as
#      docker sends them) while 50 pullers loop through nginx and 10 pushers push at once:
#      p50/p99 of /auth/token (goal p99 <= 50 ms at 200/s), errors of each (goal 0), and the
#      api's peak memory (its cgroup's high-water mark)
#
#   scripts/bench-load.sh [ROUNDS] [RATE] [SECONDS]
#
# Needs the images (scripts/build-images.sh), no DTR cluster on the engine, root (a CA in
# /etc/docker/certs.d, removed on exit), curl and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
RATE=${2:-200}
SECONDS_=${3:-15}
PULLERS=50
PUSHERS=10
cargo build --release --locked --bin dtr >/dev/null 2>&1
BIN=target/release/dtr
VERSION=$("$BIN" --version | awk '{print $2}')
rid=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
https=$((30000 + RANDOM % 5000)); http=$((35000 + RANDOM % 5000))
ext=127.0.0.1:$https
DTR_ADMIN_PASSWORD=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
export DTR_ADMIN_PASSWORD
tmp=$(mktemp -d /tmp/dtr-bench-load.XXXXXX)
export DOCKER_CONFIG=$tmp/config
installed=0
cleanup() {
  set +e
  jobs -p | xargs -r kill 2>/dev/null
  docker images --format '{{.Repository}}:{{.Tag}}' | grep "^$ext/" | xargs -r docker rmi -f >/dev/null 2>&1
  [ "$installed" = 1 ] && "$BIN" destroy --replica-id "$rid" >/dev/null 2>&1
  rm -rf "/etc/docker/certs.d/$ext" "$tmp"
}
trap cleanup EXIT
now() { date +%s.%N; }
median() { sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

echo "installing replica $rid"
"$BIN" install --replica-id "$rid" --dtr-external-url "$ext" --replica-https-port "$https" \
  --replica-http-port "$http" </dev/null >"$tmp/install.log" 2>&1 || { cat "$tmp/install.log"; exit 1; }
installed=1
ca_file() { docker run --rm -v "dtr-ca-$rid:/ca:ro" --entrypoint cat "registry/dtr:$VERSION" "/ca/$1"; }
ca_file external/ca.pem >"$tmp/ca.pem"
ca_file ca.pem >"$tmp/cluster-ca.pem"
ip=$(docker inspect -f '{{(index .NetworkSettings.Networks "dtr-br").IPAddress}}' "dtr-registry-$rid")
mkdir -p "/etc/docker/certs.d/$ext"
cp "$tmp/ca.pem" "/etc/docker/certs.d/$ext/ca.crt"
printf '%s' "$DTR_ADMIN_PASSWORD" | docker login "$ext" -u admin --password-stdin >/dev/null

make_image() { # make_image NAME SIZE_MB
  mkdir -p "$tmp/layer"
  head -c "$(($2 * 1024 * 1024))" /dev/urandom >"$tmp/layer/data"
  tar -C "$tmp/layer" -c . | docker import - "$1" >/dev/null
}
make_image "$ext/admin/load:1" 10
docker push -q "$ext/admin/load:1" >/dev/null
for i in $(seq 1 "$PUSHERS"); do make_image "$ext/admin/push-$i:1" 2; done

token=$(curl -sS --cacert "$tmp/ca.pem" -u "admin:$DTR_ADMIN_PASSWORD" \
  "https://$ext/auth/token?service=$ext&scope=repository:admin/load:pull" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
digest=$(curl -sS --cacert "$tmp/ca.pem" -H "Authorization: Bearer $token" \
  -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
  "https://$ext/v2/admin/load/manifests/1" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["layers"][0]["digest"])')

# N GETs of the layer at once from BASE (nginx or the registry container); prints seconds and
# writes the status of each to $tmp/codes
pull_all() { # pull_all BASE CA EXTRA_CURL_ARGS...
  local base=$1 ca=$2; shift 2
  local cfg=$tmp/pull.curl
  : >"$cfg"
  for _ in $(seq 1 "$PULLERS"); do
    printf 'url = "%s/v2/admin/load/blobs/%s"\noutput = "/dev/null"\n' "$base" "$digest" >>"$cfg"
  done
  local t0; t0=$(now)
  curl -sS --no-progress-meter --noproxy "*" --parallel --parallel-max "$PULLERS" --cacert "$ca" "$@" \
    -H "Authorization: Bearer $token" -w '%{http_code}\n' -K "$cfg" >"$tmp/codes" || true
  awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.3f\n", b - a }'
}
layer_mb=$(docker image inspect -f '{{.Size}}' "$ext/admin/load:1" | awk '{ printf "%.2f", $1 / 1048576 }')

echo "1. pull throughput: $PULLERS concurrent GETs of a $layer_mb MB layer, $ROUNDS rounds"
: >"$tmp/nginx.mbs"; : >"$tmp/direct.mbs"
for r in $(seq 1 "$ROUNDS"); do
  s=$(pull_all "https://$ext" "$tmp/ca.pem")
  bad=$(grep -vc '^200$' "$tmp/codes" || true)
  mbs=$(awk -v s="$s" -v n="$PULLERS" -v m="$layer_mb" 'BEGIN { printf "%.1f", n * m / s }')
  echo "$mbs" >>"$tmp/nginx.mbs"
  s2=$(pull_all "https://dtr-registry-$rid:5000" "$tmp/cluster-ca.pem" \
    --resolve "dtr-registry-$rid:5000:$ip")
  bad2=$(grep -vc '^200$' "$tmp/codes" || true)
  mbs2=$(awk -v s="$s2" -v n="$PULLERS" -v m="$layer_mb" 'BEGIN { printf "%.1f", n * m / s }')
  echo "$mbs2" >>"$tmp/direct.mbs"
  echo "   round $r: nginx ${mbs} MB/s (${s} s, $bad errors), direct ${mbs2} MB/s (${s2} s, $bad2 errors)"
done
n_med=$(median <"$tmp/nginx.mbs"); d_med=$(median <"$tmp/direct.mbs")
echo "   median: nginx $n_med MB/s, direct $d_med MB/s, ratio $(awk -v a="$n_med" -v b="$d_med" 'BEGIN { printf "%.2f", a / b }') (goal >= 0.90)"

echo "2. /auth/token at $RATE/s for ${SECONDS_} s with $PULLERS pullers looping and $PUSHERS pushers"
end=$(( $(date +%s) + SECONDS_ ))
( errs=0; loops=0
  while [ "$(date +%s)" -lt "$end" ]; do
    pull_all "https://$ext" "$tmp/ca.pem" >/dev/null
    errs=$((errs + $(grep -vc '^200$' "$tmp/codes" || true))); loops=$((loops + 1))
  done
  echo "$loops $errs" >"$tmp/pullers" ) &
pullers=$!
( fails=0
  for i in $(seq 1 "$PUSHERS"); do docker push -q "$ext/admin/push-$i:1" >/dev/null 2>&1 & done
  for p in $(jobs -p); do wait "$p" || fails=$((fails + 1)); done
  echo "$fails" >"$tmp/pushers" ) &
pushers=$!
tokens=$(python3 scripts/bench-load-tokens.py \
  "https://$ext/auth/token?service=$ext&scope=repository:admin/load:pull" "$tmp/ca.pem" \
  "admin:$DTR_ADMIN_PASSWORD" "$RATE" "$SECONDS_")
wait "$pullers" "$pushers"
read -r loops perr <"$tmp/pullers"
pushfail=$(cat "$tmp/pushers")
peak=$(docker exec "dtr-api-$rid" sh -c \
  'cat /sys/fs/cgroup/memory/memory.max_usage_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.peak' |
  awk '{ printf "%.0f", $1 / 1048576 }')
echo "   tokens: $tokens (goal p99_ms <= 50, errors=0)"
echo "   pulls: $((loops * PULLERS)) in $loops rounds, $perr errors; pushes: $PUSHERS, $pushfail failed"
echo "   api peak memory: $peak MiB"
