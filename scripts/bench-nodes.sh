#!/usr/bin/env bash
# Several-nodes benchmark on the harness of scripts/test-nodes.sh (three engines, one swarm),
# the image storage on S3 (SeaweedFS of scripts/test-servers.sh), each command run against the
# engine of the node it acts on:
#   1. the time `dtr join` takes for a replica on another node, until its database member
#      streams (the command returns then): node2, node3, then node3 destroyed, removed and
#      joined again until RUNS joins (at least 2), median
#   2. the write gap when a whole node dies: a writer creates a repository through node 2 every
#      200 ms; node 1 (the first replica, often the database primary) is killed; the gap is from
#      the last write acknowledged before to the first after. RUNS kills (node 1 restarted and
#      the cluster healthy again in between), median
#   3. pulls of one SIZE_MB image (one layer, random data) pushed through node 1: through node 3
#      (another node: the blobs come from the store through node 3's registry) and through node 1,
#      RUNS each, medians and the ratio
#
#   scripts/bench-nodes.sh [RUNS] [SIZE_MB]
#
# Needs root and the images (scripts/build-images.sh); starts and stops the test servers and
# the nodes itself.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
SIZE_MB=${2:-100}
cargo build --release --locked --bin dtr >/dev/null 2>&1
BIN=$PWD/target/release/dtr
tmp=$(mktemp -d /tmp/dtr-bench-nodes.XXXXXX)
export DOCKER_CONFIG=$tmp/config
DTR_ADMIN_PASSWORD=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
export DTR_ADMIN_PASSWORD
. scripts/test-servers.sh >"$tmp/servers.log" 2>&1 || { cat "$tmp/servers.log"; exit 1; }
. scripts/test-nodes.sh >"$tmp/nodes.log" 2>&1 || { cat "$tmp/nodes.log"; exit 1; }
certs=()
declare -A RID HTTPS
cleanup() {
  set +e
  kill "${writer_pid:-}" 2>/dev/null
  for c in "${certs[@]}"; do rm -rf "/etc/docker/certs.d/$c"; done
  # what the benchmark installed on the nodes goes with it (the harness may be reused)
  for n in "${!RID[@]}"; do on "$n" destroy --replica-id "${RID[$n]}" >/dev/null 2>&1; done
  rm -rf "$tmp"
  test_nodes_stop
  test_servers_stop
}
trap cleanup EXIT

rand_id() { od -An -N6 -tx1 /dev/urandom | tr -d ' \n'; }
port() { echo $((30000 + RANDOM % 20000)); }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
host() { local v="DTR_TEST_NODE_HOST_$1"; echo "${!v}"; }
addr() { local v="DTR_TEST_NODE_ADDR_$1"; echo "${!v}"; }
on() { local n=$1; shift; DOCKER_HOST=$(host "$n") "$BIN" "$@" </dev/null; }
ndocker() { local n=$1; shift; docker -H "$(host "$n")" "$@"; }

new_replica() { RID[$1]=$(rand_id); HTTPS[$1]=$(port); }
ports_of() { echo "--replica-https-port ${HTTPS[$1]} --replica-http-port $(port)"; }

# --- install on node 1, S3 through the API
new_replica node1
ext="$(addr node1):${HTTPS[node1]}"
echo "installing replica ${RID[node1]} on node1"
# shellcheck disable=SC2046
on node1 install --ucp-node node1 --replica-id "${RID[node1]}" --dtr-external-url "$ext" \
  $(ports_of node1) >"$tmp/install.log" 2>&1 || { cat "$tmp/install.log"; exit 1; }
ndocker node1 run --rm -v "dtr-ca-${RID[node1]}:/ca:ro" --entrypoint cat \
  "registry/dtr:$("$BIN" --version | awk '{print $2}')" /ca/external/ca.pem >"$tmp/ca.pem"
printf 'user = "admin:%s"\n' "$DTR_ADMIN_PASSWORD" >"$tmp/admin.curlrc"
api() { # api AUTHORITY METHOD PATH [BODY]
  curl -sS -K "$tmp/admin.curlrc" --cacert "$tmp/ca.pem" -m 20 -X "$2" \
    -H 'Content-Type: application/json' ${4:+--data "$4"} "https://$1$3"
}
bucket=dtr-bench-$(rand_id)
printf 'user = "%s:%s"\n' "$DTR_TEST_S3_ACCESS_KEY" "$DTR_TEST_S3_SECRET_KEY" >"$tmp/s3.curlrc"
curl -fsS -K "$tmp/s3.curlrc" --aws-sigv4 "aws:amz:us-east-1:s3" -X PUT "$DTR_TEST_S3_ENDPOINT/$bucket" >/dev/null
printf '{"storage":{"s3":{"region":"us-east-1","regionendpoint":"%s","bucket":"%s","accesskey":"%s","secretkey":"%s","secure":false,"v4auth":true,"rootdirectory":"/dtr"}},"keep_metadata":true}' \
  "$DTR_TEST_S3_ENDPOINT" "$bucket" "$DTR_TEST_S3_ACCESS_KEY" "$DTR_TEST_S3_SECRET_KEY" >"$tmp/s3.json"
api "$ext" PUT /api/v0/admin/settings/registry/simple "@$tmp/s3.json" >/dev/null
until api "$ext" GET /api/v0/admin/settings/registry/status | python3 -c '
import json, sys
r = json.load(sys.stdin)["replicas"]
sys.exit(0 if r and all(v and v.get("generation") == 1 for v in r.values()) else 1)'; do sleep 0.5; done

# --- 1. joins on other nodes
join() { # join NODE: prints the seconds it took
  new_replica "$1"
  local t0 t1
  t0=$(now)
  # shellcheck disable=SC2046
  on "$1" join --ucp-node "$1" --existing-replica-id "${RID[node1]}" --replica-id "${RID[$1]}" \
    $(ports_of "$1") >"$tmp/join.log" 2>&1 || { cat "$tmp/join.log" >&2; exit 1; }
  t1=$(now)
  echo "$(secs "$t0" "$t1")"
}
echo "1. $RUNS joins of a replica on another node (node2, node3, then node3 again)"
join node2 >>"$tmp/joins"
join node3 >>"$tmp/joins"
for i in $(seq 3 "$RUNS"); do
  # as on a plain swarm: the containers go on their own node (two of three members stay, so
  # etcd keeps its quorum), then the member is removed through node1
  on node3 destroy --replica-id "${RID[node3]}" >"$tmp/remove.log" 2>&1 \
    && on node1 remove --existing-replica-id "${RID[node1]}" --replica-ids "${RID[node3]}" >>"$tmp/remove.log" 2>&1 \
    || { cat "$tmp/remove.log"; exit 1; }
  join node3 >>"$tmp/joins"
done

# --- 2. write gap when node 1 dies
healthy() { # every replica's /_ping at its node answers 200
  local n code
  for n in node1 node2 node3; do
    code=$(curl -sk -o /dev/null -w '%{http_code}' -m 3 "https://$(addr "$n"):${HTTPS[$n]}/_ping" || true)
    [ "$code" = 200 ] || return 1
  done
}
echo "2. $RUNS kills of node1 under writes through node2"
for i in $(seq 1 "$RUNS"); do
  : >"$tmp/writes"
  ( n=0; while :; do n=$((n + 1)); t=$(now)
      code=$(curl -s -k -o /dev/null -w '%{http_code}' -K "$tmp/admin.curlrc" -m 15 -X POST \
        -H 'Content-Type: application/json' --data "{\"name\":\"gap$i-$n\"}" \
        "https://$(addr node2):${HTTPS[node2]}/api/v0/repositories/admin" || true)
      echo "$t $code" >>"$tmp/writes"; sleep 0.2; done ) &
  writer_pid=$!
  until [ "$(grep -c ' 201$' "$tmp/writes" || true)" -ge 10 ]; do sleep 0.2; done
  killed=$(now)
  docker kill dtrtest-node1 >/dev/null
  resumed=$((SECONDS + 300))
  until awk -v k="$killed" '$1 > k + 0.5 && $2 == 201 { found = 1 } END { exit !found }' "$tmp/writes"; do
    [ $SECONDS -lt $resumed ] || { echo "no write through node2 was acknowledged within 300 s of node1's death" >&2; exit 1; }
    sleep 0.2
  done
  kill "$writer_pid"; wait "$writer_pid" 2>/dev/null || true
  awk -v k="$killed" '$2 == 201 && $1 <= k { before = $1 } $2 == 201 && $1 > k && !after { after = $1 } END { printf "%.2f\n", after - before }' \
    "$tmp/writes" >>"$tmp/gaps"
  docker start dtrtest-node1 >/dev/null
  back=$((SECONDS + 300))
  until healthy; do
    [ $SECONDS -lt $back ] || { echo "the replicas were not all healthy 300 s after node1 came back" >&2; exit 1; }
    sleep 1
  done
done

# --- 3. pulls through another node
authority() { echo "$(addr "$1"):${HTTPS[$1]}"; }
for n in node1 node3; do
  a=$(authority "$n"); certs+=("$a")
  mkdir -p "/etc/docker/certs.d/$a"; cp "$tmp/ca.pem" "/etc/docker/certs.d/$a/ca.crt"
  printf '%s' "$DTR_ADMIN_PASSWORD" | docker login "$a" -u admin --password-stdin >/dev/null 2>&1
done
mkdir -p "$tmp/layer"; head -c "$((SIZE_MB * 1024 * 1024))" /dev/urandom >"$tmp/layer/data"
image="$(authority node1)/admin/bench-nodes:1"
tar -C "$tmp/layer" -c . | docker import - "$image" >/dev/null
docker push "$image" >/dev/null
docker rmi "$image" >/dev/null
echo "3. $RUNS pulls of $SIZE_MB MB through node3 and through node1"
for i in $(seq 1 "$RUNS"); do
  for n in node3 node1; do
    ref="$(authority "$n")/admin/bench-nodes:1"
    t0=$(now); docker pull "$ref" >/dev/null; t1=$(now)
    echo "$(secs "$t0" "$t1")" >>"$tmp/pull-$n"
    docker rmi "$ref" >/dev/null
  done
done

echo
echo "dtr $("$BIN" --version | awk '{print $2}'), docker $(docker version -f '{{.Server.Version}}') (nodes: $(ndocker node1 version -f '{{.Server.Version}}')), $(nproc) CPUs, three nodes on this machine, S3 on SeaweedFS, median of $RUNS"
echo "join of a replica on another node (until its database streams): $(median <"$tmp/joins") s (runs: $(paste -sd' ' "$tmp/joins"))"
echo "write gap when node1 dies (writes through node2): $(median <"$tmp/gaps") s (runs: $(paste -sd' ' "$tmp/gaps"))"
p3=$(median <"$tmp/pull-node3"); p1=$(median <"$tmp/pull-node1")
echo "pull of $SIZE_MB MB pushed through node1: through node3 $p3 s, through node1 $p1 s, ratio $(awk -v a="$p3" -v b="$p1" 'BEGIN { printf "%.2f", a / b }')"
