#!/usr/bin/env bash
# Image storage benchmark, all in one run on this machine:
#   1. docker push and pull of a SIZE_MB image (default 100, one layer of random data) through
#      nginx with the registry on the replica's volume, then the same on S3 (SeaweedFS of
#      scripts/test-servers.sh, through the storage API), then the same bytes put into and got
#      from the bucket with the store's own protocol (curl --aws-sigv4) as the baseline the
#      registry cannot beat; RUNS runs each (default 3), a new image every run, medians printed,
#      and the ratios S3/volume and S3/store
#   2. the time to switch the storage of a 3-replica cluster (from the PUT to every replica's
#      registry reporting the new generation), RUNS switches between two root directories of
#      the bucket, median
#
#   scripts/bench-storage.sh [SIZE_MB] [RUNS]
#
# Needs the images (scripts/build-images.sh), no DTR cluster on the engine, and root (it
# installs and starts the test servers and adds a CA to /etc/docker/certs.d, removed on exit).
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MB=${1:-100}
RUNS=${2:-3}
cargo build --release --locked --bin dtr >/dev/null 2>&1
BIN=$PWD/target/release/dtr
VERSION=$("$BIN" --version | awk '{print $2}')
tmp=$(mktemp -d /tmp/dtr-bench-storage.XXXXXX)
export DOCKER_CONFIG=$tmp/config
DTR_ADMIN_PASSWORD=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
export DTR_ADMIN_PASSWORD
rand_id() { od -An -N6 -tx1 /dev/urandom | tr -d ' \n'; }
replicas=()
images=()
ext=""

cleanup() {
  set +e
  for i in "${images[@]}"; do docker rmi -f "$i" >/dev/null 2>&1; done
  # the joined replicas first: destroy of the last one leaves no cluster behind
  for ((i = ${#replicas[@]} - 1; i >= 0; i--)); do
    "$BIN" destroy --replica-id "${replicas[$i]}" >/dev/null 2>&1
  done
  [ -n "$ext" ] && rm -rf "/etc/docker/certs.d/$ext"
  rm -rf "$tmp"
}
. scripts/test-servers.sh >"$tmp/servers.log" 2>&1 || { cat "$tmp/servers.log"; exit 1; }
trap 'cleanup; test_servers_stop' EXIT

now() { date +%s.%N; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
timed() { # timed CMD...: prints the seconds it took
  local start end
  start=$(now); "$@" >/dev/null; end=$(now)
  awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f\n", b - a }'
}

# --- a replica, its CA trusted, logged in
rid=$(rand_id)
https=$((30000 + RANDOM % 5000)); http=$((35000 + RANDOM % 5000))
ext=127.0.0.1:$https
echo "installing replica $rid"
"$BIN" install --replica-id "$rid" --dtr-external-url "$ext" --replica-https-port "$https" \
  --replica-http-port "$http" </dev/null >"$tmp/install.log" 2>&1 || { cat "$tmp/install.log"; exit 1; }
replicas+=("$rid")
docker run --rm -v "dtr-ca-$rid:/ca:ro" --entrypoint cat "registry/dtr:$VERSION" \
  /ca/external/ca.pem >"$tmp/ca.pem"
mkdir -p "/etc/docker/certs.d/$ext"
cp "$tmp/ca.pem" "/etc/docker/certs.d/$ext/ca.crt"
printf '%s' "$DTR_ADMIN_PASSWORD" | docker login "$ext" -u admin --password-stdin >/dev/null 2>&1
printf 'user = "admin:%s"\n' "$DTR_ADMIN_PASSWORD" >"$tmp/admin.curlrc"
api() { # api METHOD PATH [BODY]: the answer's body; fails on an HTTP error
  curl -fsS -K "$tmp/admin.curlrc" --cacert "$tmp/ca.pem" -X "$1" -H 'Content-Type: application/json' \
    ${3:+--data "$3"} "https://$ext$2"
}

# --- push and pull through nginx, RUNS times, each a new image
head -c "$((SIZE_MB * 1024 * 1024))" /dev/urandom >"$tmp/data"
push_pull() { # push_pull LABEL: appends "push SECS" and "pull SECS" lines to $tmp/LABEL
  local i image
  for i in $(seq 1 "$RUNS"); do
    image="$ext/admin/bench-$1-$i:1"
    images+=("$image")
    mkdir -p "$tmp/layer"
    head -c "$((SIZE_MB * 1024 * 1024))" /dev/urandom >"$tmp/layer/data"
    tar -C "$tmp/layer" -c . | docker import - "$image" >/dev/null
    echo "push $(timed docker push "$image")" >>"$tmp/$1"
    docker rmi "$image" >/dev/null
    echo "pull $(timed docker pull "$image")" >>"$tmp/$1"
  done
}
of() { awk -v op="$2" '$1 == op { print $2 }' "$tmp/$1" | median; }

echo "volume: $RUNS push/pull of $SIZE_MB MB"
push_pull volume

# --- the same cluster on S3
bucket=dtr-bench-$(rand_id)
printf 'user = "%s:%s"\n' "$DTR_TEST_S3_ACCESS_KEY" "$DTR_TEST_S3_SECRET_KEY" >"$tmp/s3.curlrc"
s3() { curl -fsS -K "$tmp/s3.curlrc" --aws-sigv4 "aws:amz:us-east-1:s3" "$@"; }
s3 -X PUT "$DTR_TEST_S3_ENDPOINT/$bucket" >/dev/null
section() { # section ROOTDIR: the storage section for the bucket, as the API takes it
  printf '{"storage":{"s3":{"region":"us-east-1","regionendpoint":"%s","bucket":"%s","accesskey":"%s","secretkey":"%s","secure":false,"v4auth":true,"rootdirectory":"%s"}},"keep_metadata":true}' \
    "$DTR_TEST_S3_ENDPOINT" "$bucket" "$DTR_TEST_S3_ACCESS_KEY" "$DTR_TEST_S3_SECRET_KEY" "$1"
}
wait_generation() { # wait_generation N: until every replica's registry runs generation N
  local deadline=$((SECONDS + 300))
  until api GET /api/v0/admin/settings/registry/status | python3 -c '
import json, sys
r = json.load(sys.stdin)["replicas"]
sys.exit(0 if r and all(v.get("generation") == int(sys.argv[1]) for v in r.values()) else 1)' "$1"; do
    [ $SECONDS -lt $deadline ] || { echo "generation $1 not reached" >&2; exit 1; }
    sleep 0.2
  done
}
# the secret goes in the body from a file, never on a command line
section /a >"$tmp/section-a.json"
section /b >"$tmp/section-b.json"
generation=$(api PUT /api/v0/admin/settings/registry/simple "@$tmp/section-a.json" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["generation"])')
wait_generation "$generation"
echo "s3: $RUNS push/pull of $SIZE_MB MB"
push_pull s3

# --- the store's own protocol: the same size of bytes in and out of the bucket
echo "store: $RUNS put/get of $SIZE_MB MB"
for i in $(seq 1 "$RUNS"); do
  echo "push $(timed s3 -T "$tmp/data" "$DTR_TEST_S3_ENDPOINT/$bucket/bench/$i")" >>"$tmp/store"
  echo "pull $(timed s3 -o /dev/null "$DTR_TEST_S3_ENDPOINT/$bucket/bench/$i")" >>"$tmp/store"
done

# --- a 3-replica cluster switching between two root directories
for _ in 1 2; do
  j=$(rand_id)
  echo "joining replica $j"
  "$BIN" join --existing-replica-id "$rid" --replica-id "$j" \
    --replica-https-port $((30000 + RANDOM % 5000)) --replica-http-port $((35000 + RANDOM % 5000)) \
    </dev/null >"$tmp/join.log" 2>&1 || { cat "$tmp/join.log"; exit 1; }
  replicas+=("$j")
done
echo "3 replicas: $RUNS storage switches"
for i in $(seq 1 "$RUNS"); do
  if [ $((i % 2)) = 1 ]; then file=$tmp/section-b.json; else file=$tmp/section-a.json; fi
  start=$(now)
  generation=$(api PUT /api/v0/admin/settings/registry/simple "@$file" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["generation"])')
  wait_generation "$generation"
  end=$(now)
  awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f\n", b - a }' >>"$tmp/switch"
done

echo
echo "dtr $VERSION, docker $(docker version -f '{{.Server.Version}}'), SeaweedFS $SEAWEEDFS_VERSION on this machine, $(nproc) CPUs, $SIZE_MB MB image (one layer, random data), median of $RUNS"
printf '%-6s %11s %11s %11s %10s %10s\n' "" "volume (s)" "s3 (s)" "store (s)" "s3/volume" "s3/store"
for op in push pull; do
  v=$(of volume $op); s=$(of s3 $op); st=$(of store $op)
  printf '%-6s %11s %11s %11s %10s %10s\n' "$op" "$v" "$s" "$st" "$(ratio "$s" "$v")" "$(ratio "$s" "$st")"
done
echo "storage switch of 3 replicas (PUT to every registry on the new generation): $(median <"$tmp/switch") s (runs: $(paste -sd' ' "$tmp/switch"))"
