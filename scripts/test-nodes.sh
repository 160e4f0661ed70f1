#!/usr/bin/env bash
# Three Docker engines on this machine for the multi-node tests, kind-style: each "node" is a
# container of the host engine running Debian's dockerd (image dtr-test-node:<hash of its
# Dockerfile>, built FROM debian:bookworm-slim when absent), its /var/lib/docker on a volume of
# its own, its engine on a unix socket in a host directory (no TCP port):
#   - containers dtrtest-node1..3 (hostnames node1..node3) on the bridge network dtrtest-nodes,
#     a /24 of a /16 that overlaps no network or route of this machine, at .11, .12, .13; the
#     rest of that /16 holds the nodes' own bridges and the swarm's overlays, so that a
#     container in a node still reaches the host's addresses (the test servers on docker0)
#   - one swarm of three managers (losing one node keeps the quorum)
#   - the images of this version and of the upgrade tests' version (registry/dtr*:<version>)
#     and debian:bookworm-slim, loaded into every node the way an offline operator does
#     (`docker save` once, cached under /tmp by image ids, `docker load` into each node)
# Exports DTR_TEST_NODES ("node1 node2 node3"), DTR_TEST_NODE_HOST_<node> (a DOCKER_HOST value),
# DTR_TEST_NODE_ADDR_<node>, DTR_TEST_NODES_NETWORK, DTR_TEST_NODE_IMAGE.
#
# Source it (`. scripts/test-nodes.sh`, as scripts/test.sh does): nodes that are up and healthy
# are reused, else they are made; what this shell made is removed when it exits (containers,
# volumes, network, socket directories: only the dtrtest-* names). By hand:
#   bash scripts/test-nodes.sh up       make (or reuse) the nodes and leave them running
#   bash scripts/test-nodes.sh down     remove them
#   bash scripts/test-nodes.sh status   what is there
#   bash scripts/test-nodes.sh swarm    form the swarm again (every node leaves, node1 inits,
#                                       the others join as managers); the tests' harness uses it
#   bash scripts/test-nodes.sh ghosts   restart a node that lists a network of an old swarm or
#                                       cannot attach a container to an overlay
# docs/testing-nodes.md describes the harness and its Rust API (crates/dtr/tests/it/common/nodes.rs).

TEST_NODES=(node1 node2 node3)
TEST_NODES_NETWORK=dtrtest-nodes
TEST_NODES_SOCKETS=/run/dtrtest-nodes
# where a node's dockerd puts the socket the host uses (the node's host directory is mounted there)
TEST_NODES_INNER_SOCKETS=/dtrtest-socket

test_nodes_repo() { (cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd); }

# The node image. The entrypoint picks overlay2 when an overlay mount works on the node's
# volume, else vfs (with a message in the node's log). dockerd's containers go under a cgroup
# parent of the node's own, so that what a killed node leaves is easy to tell and remove.
test_nodes_dockerfile() {
  cat <<'EOF'
FROM debian:bookworm-slim
ENV DEBIAN_FRONTEND=noninteractive
RUN printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 0755 /usr/sbin/policy-rc.d \
 && apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends docker.io iptables iproute2 ca-certificates tini >/dev/null \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
COPY entrypoint.sh /usr/local/bin/dtrtest-node
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/dtrtest-node"]
EOF
}

test_nodes_entrypoint() {
  cat <<'EOF'
#!/bin/bash
# a node's dockerd: its socket in /dtrtest-socket (the host's /run/dtrtest-nodes/<node>) and the
# usual one; NODE_NAME, NODE_BIP (its docker0) and NODE_POOL (its local networks) from docker run
set -eu
: "${NODE_NAME:?}" "${NODE_BIP:?}" "${NODE_POOL:?}"
driver=overlay2
probe=/var/lib/docker/.dtrtest-overlay-probe
rm -rf "$probe"
mkdir -p "$probe/lower" "$probe/upper" "$probe/work" "$probe/merged"
if mount -t overlay overlay -o "lowerdir=$probe/lower,upperdir=$probe/upper,workdir=$probe/work" \
     "$probe/merged" 2>"$probe.err"; then
  umount "$probe/merged"
else
  echo "dtrtest-node: overlay mounts do not work on /var/lib/docker ($(cat "$probe.err")): storage driver vfs (slow, every layer copied)" >&2
  driver=vfs
fi
rm -rf "$probe" "$probe.err"
echo "dtrtest-node: $NODE_NAME, storage driver $driver" >&2
rm -f /dtrtest-socket/docker.sock
exec dockerd --host unix:///dtrtest-socket/docker.sock --host unix:///var/run/docker.sock \
  --storage-driver "$driver" --bip "$NODE_BIP" --default-address-pool "base=$NODE_POOL,size=24" \
  --group root --cgroup-parent "/dtrtest-$NODE_NAME" --log-level warn
EOF
}

test_nodes_say() { printf 'test-nodes: %s\n' "$*" >&2; }
test_nodes_fail() { printf 'test-nodes: FAILED: %s\n' "$*" >&2; return 1; }

test_nodes_image_tag() {
  local hash
  hash=$( { test_nodes_dockerfile; test_nodes_entrypoint; } | sha256sum | cut -c1-12)
  echo "dtr-test-node:$hash"
}

test_nodes_build_image() {
  DTR_TEST_NODE_IMAGE=$(test_nodes_image_tag)
  export DTR_TEST_NODE_IMAGE
  if docker image inspect "$DTR_TEST_NODE_IMAGE" >/dev/null 2>&1; then
    return 0
  fi
  local dir start=$SECONDS
  dir=$(mktemp -d /tmp/dtrtest-node-image.XXXXXX)
  test_nodes_dockerfile > "$dir/Dockerfile"
  test_nodes_entrypoint > "$dir/entrypoint.sh"
  chmod 0755 "$dir/entrypoint.sh"
  test_nodes_say "building the node image $DTR_TEST_NODE_IMAGE (Debian's docker.io)"
  if ! DOCKER_BUILDKIT=0 docker build -q -t "$DTR_TEST_NODE_IMAGE" "$dir" > "$dir/build.log" 2>&1; then
    tail -n 30 "$dir/build.log" >&2
    rm -rf "$dir"
    test_nodes_fail "building $DTR_TEST_NODE_IMAGE (log above)"
    return 1
  fi
  rm -rf "$dir"
  test_nodes_say "built $DTR_TEST_NODE_IMAGE in $((SECONDS - start)) s"
}

# --- addresses ---------------------------------------------------------------------------

test_nodes_ip2int() {
  local a b c d
  IFS=. read -r a b c d <<< "$1"
  echo $(( (a << 24) | (b << 16) | (c << 8) | d ))
}

# whether a.b.c.d/n and e.f.g.h/m overlap
test_nodes_overlap() {
  local n1=${1#*/} n2=${2#*/} s1 s2 e1 e2
  [ "$n1" = "$1" ] && n1=32
  [ "$n2" = "$2" ] && n2=32
  s1=$(test_nodes_ip2int "${1%/*}"); s2=$(test_nodes_ip2int "${2%/*}")
  s1=$(( s1 & ~((1 << (32 - n1)) - 1) & 0xffffffff )); e1=$(( s1 + (1 << (32 - n1)) - 1 ))
  s2=$(( s2 & ~((1 << (32 - n2)) - 1) & 0xffffffff )); e2=$(( s2 + (1 << (32 - n2)) - 1 ))
  [ "$s1" -le "$e2" ] && [ "$s2" -le "$e1" ]
}

# every IPv4 prefix this machine routes or its engine's networks use
test_nodes_taken_prefixes() {
  ip -4 route show table all 2>/dev/null | awk '{print $1}' | grep -E '^[0-9]+\.' || true
  ip -4 -o addr show 2>/dev/null | awk '{print $4}'
  local ids
  ids=$(docker network ls -q)
  # shellcheck disable=SC2086
  [ -n "$ids" ] && docker network inspect -f '{{range .IPAM.Config}}{{.Subnet}} {{end}}' $ids \
    | tr ' ' '\n' | grep -E '^[0-9]+\.' || true
}

# the first free /16 of the candidates: its first two octets ("10.213")
test_nodes_pick_block() {
  local taken block p clash
  taken=$(test_nodes_taken_prefixes)
  for block in 10.213 10.214 10.215 10.216 10.217 10.218 10.219 10.223 10.227 10.231 172.29 172.30; do
    clash=""
    for p in $taken; do
      [ "$p" = default ] && continue
      if test_nodes_overlap "$block.0.0/16" "$p"; then clash=$p; break; fi
    done
    [ -z "$clash" ] && { echo "$block"; return 0; }
  done
  test_nodes_fail "no free /16 for the nodes' networks among the candidates (taken: $(echo "$taken" | tr '\n' ' '))"
}

# DTR_TEST_NODES_BLOCK ("10.213") from the network when it exists, else a free one
test_nodes_block() {
  local subnet
  subnet=$(docker network inspect -f '{{range .IPAM.Config}}{{.Subnet}}{{end}}' "$TEST_NODES_NETWORK" 2>/dev/null || true)
  if [ -n "$subnet" ]; then
    echo "$subnet" | cut -d. -f1-2
  else
    test_nodes_pick_block
  fi
}

test_nodes_index() { echo "${1#node}"; }
test_nodes_sock() { echo "$TEST_NODES_SOCKETS/$1/docker.sock"; }
test_nodes_docker() { local n=$1; shift; docker -H "unix://$(test_nodes_sock "$n")" "$@"; }

test_nodes_export() {
  local block=$1 n i
  export DTR_TEST_NODES="${TEST_NODES[*]}" DTR_TEST_NODES_NETWORK=$TEST_NODES_NETWORK
  for n in "${TEST_NODES[@]}"; do
    i=$(test_nodes_index "$n")
    export "DTR_TEST_NODE_HOST_$n=unix://$(test_nodes_sock "$n")"
    export "DTR_TEST_NODE_ADDR_$n=$block.0.$((10 + i))"
  done
}

# --- nodes -------------------------------------------------------------------------------

test_nodes_answers() { test_nodes_docker "$1" version -f '{{.Server.Version}}' >/dev/null 2>&1; }

test_nodes_wait_engine() {
  local n=$1 deadline=$((SECONDS + 60))
  while ! test_nodes_answers "$n"; do
    if [ "$(docker inspect -f '{{.State.Running}}' "dtrtest-$n" 2>/dev/null)" != true ] \
       || [ $SECONDS -ge $deadline ]; then
      docker logs --tail 20 "dtrtest-$n" >&2 2>&1 || true
      test_nodes_fail "the engine of $n does not answer on $(test_nodes_sock "$n") (its log above)"
      return 1
    fi
    sleep 0.5
  done
}

test_nodes_create() {
  local block=$1 n i
  if ! docker network inspect "$TEST_NODES_NETWORK" >/dev/null 2>&1; then
    docker network create --driver bridge --subnet "$block.0.0/24" --gateway "$block.0.1" \
      --label dtrtest.harness=nodes "$TEST_NODES_NETWORK" >/dev/null || return 1
  fi
  for n in "${TEST_NODES[@]}"; do
    i=$(test_nodes_index "$n")
    mkdir -p "$TEST_NODES_SOCKETS/$n"
    chmod 0700 "$TEST_NODES_SOCKETS" "$TEST_NODES_SOCKETS/$n"
    docker run -d --name "dtrtest-$n" --hostname "$n" --label dtrtest.harness=nodes \
      --network "$TEST_NODES_NETWORK" --ip "$block.0.$((10 + i))" --restart no \
      --cap-add ALL --cap-drop SYS_RESOURCE \
      --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
      --device-cgroup-rule 'a *:* rwm' -v /sys/fs/cgroup:/sys/fs/cgroup:rw --tmpfs /run \
      -v "dtrtest-$n-docker:/var/lib/docker" -v "$TEST_NODES_SOCKETS/$n:$TEST_NODES_INNER_SOCKETS" \
      -e "NODE_NAME=$n" -e "NODE_BIP=$block.$i.1/24" -e "NODE_POOL=$block.$((16 * i)).0/20" \
      "$DTR_TEST_NODE_IMAGE" >/dev/null || { test_nodes_fail "docker run dtrtest-$n"; return 1; }
  done
  for n in "${TEST_NODES[@]}"; do test_nodes_wait_engine "$n" || return 1; done
  local driver
  driver=$(test_nodes_docker node1 info -f '{{.Driver}}')
  [ "$driver" = overlay2 ] || test_nodes_say "the nodes' storage driver is $driver, not overlay2 (see docker logs dtrtest-node1)"
}

# "hostname status manager-status" lines of the swarm as node $1 sees it
test_nodes_swarm_view() {
  test_nodes_docker "$1" node ls --format '{{.Hostname}} {{.Status}} {{.ManagerStatus}}' 2>/dev/null | sort
}

test_nodes_swarm_ready() {
  local n view leader="" l
  for n in "${TEST_NODES[@]}"; do
    view=$(test_nodes_swarm_view "$n") || return 1
    [ "$(grep -cE '^node[0-9]+ Ready (Leader|Reachable)$' <<< "$view")" = "${#TEST_NODES[@]}" ] || return 1
    [ "$(wc -l <<< "$view")" = "${#TEST_NODES[@]}" ] || return 1
    l=$(awk '$3 == "Leader" {print $1}' <<< "$view")
    [ -z "$leader" ] && leader=$l
    [ "$l" = "$leader" ] || return 1
  done
}

# every node leaves whatever swarm it is in; node1 makes a new one, the others join as managers
test_nodes_swarm_form() {
  local block=$1 n i token addr1
  addr1=$block.0.11
  # a node that just came back to a swarm without quorum can fail its first leave: asked
  # again until it says it is in no swarm (30 s at most)
  local tries
  for n in "${TEST_NODES[@]}"; do
    for tries in $(seq 30); do
      [ "$(test_nodes_docker "$n" info -f '{{.Swarm.LocalNodeState}}' 2>/dev/null)" = inactive ] && break
      test_nodes_docker "$n" swarm leave --force >/dev/null 2>&1 || sleep 1
    done
  done
  test_nodes_docker node1 swarm init --advertise-addr "$addr1" --listen-addr "$addr1:2377" \
    --default-addr-pool "$block.128.0/17" --default-addr-pool-mask-length 24 >/dev/null \
    || { test_nodes_fail "swarm init on node1"; return 1; }
  token=$(test_nodes_docker node1 swarm join-token -q manager) || return 1
  for n in "${TEST_NODES[@]:1}"; do
    i=$(test_nodes_index "$n")
    test_nodes_docker "$n" swarm join --token "$token" --advertise-addr "$block.0.$((10 + i))" \
      --listen-addr "$block.0.$((10 + i)):2377" "$addr1:2377" >/dev/null \
      || { test_nodes_fail "swarm join of $n"; return 1; }
  done
  test_nodes_wait_swarm 60 || return 1
  test_nodes_drop_ghosts
}

# A node that left a swarm and joined a new one can keep listing a network of the old swarm
# that no manager knows ("network ... not found" when a container is started on it; seen with
# dtr-ol after a --force-new-cluster). Every manager lists every network of the swarm, so a
# swarm network that one node lists and another does not is such a ghost: that node's engine
# is restarted, which forgets it.
test_nodes_drop_ghosts() {
  local n other net i
  for i in "${!TEST_NODES[@]}"; do
    n=${TEST_NODES[$i]}
    other=${TEST_NODES[$(( (i + 1) % ${#TEST_NODES[@]} ))]}
    for net in $(test_nodes_docker "$n" network ls -q --filter scope=swarm --no-trunc); do
      if ! test_nodes_docker "$other" network ls -q --filter scope=swarm --no-trunc | grep -qx "$net"; then
        test_nodes_say "$n lists a network of an old swarm ($net) that $other does not: restarting its engine"
        docker restart -t 5 "dtrtest-$n" >/dev/null
        test_nodes_wait_engine "$n" || return 1
        break
      fi
    done
  done
  test_nodes_wait_swarm 60 && test_nodes_probe_overlay
}

# A health check of the swarm's data path: each node starts a throwaway container on the
# attachable overlay dtrtest-probe; a node that cannot has its engine restarted and tries again.
# (It was added for joins that timed out attaching to dtr-ol after two nodes were lost; those
# were a node detaching mid-join, which the join itself now prevents: this probe passed then.)
test_nodes_probe_overlay() {
  local net=dtrtest-probe n
  test_nodes_docker node1 network inspect "$net" >/dev/null 2>&1 \
    || test_nodes_docker node1 network create -d overlay --attachable "$net" >/dev/null \
    || { test_nodes_fail "creating the overlay $net on node1"; return 1; }
  for n in "${TEST_NODES[@]}"; do
    test_nodes_attach_ok "$n" "$net" && continue
    test_nodes_say "$n cannot attach a container to the overlay $net: restarting its engine"
    docker restart -t 5 "dtrtest-$n" >/dev/null
    test_nodes_wait_engine "$n" && test_nodes_wait_swarm 60 || return 1
    test_nodes_attach_ok "$n" "$net" || { test_nodes_fail "$n still cannot attach a container to $net"; return 1; }
  done
}

test_nodes_attach_ok() {
  local n=$1 net=$2 rc
  test_nodes_docker "$n" rm -f "dtrtest-probe-$n" >/dev/null 2>&1
  timeout 60 docker -H "unix://$(test_nodes_sock "$n")" run --rm --pull never --name "dtrtest-probe-$n" \
    --network "$net" debian:bookworm-slim true >/dev/null 2>"/tmp/dtrtest-probe-$n.log"
  rc=$?
  [ $rc = 0 ] || cat "/tmp/dtrtest-probe-$n.log" >&2
  rm -f "/tmp/dtrtest-probe-$n.log"
  test_nodes_docker "$n" rm -f "dtrtest-probe-$n" >/dev/null 2>&1
  return $rc
}

test_nodes_wait_swarm() {
  local deadline=$((SECONDS + $1)) n
  until test_nodes_swarm_ready; do
    if [ $SECONDS -ge $deadline ]; then
      for n in "${TEST_NODES[@]}"; do echo "== swarm as $n sees it" >&2; test_nodes_swarm_view "$n" >&2; done
      test_nodes_fail "the swarm of the nodes is not three ready managers after $1 s (above)"
      return 1
    fi
    sleep 1
  done
}

# the nodes are running this image, answer, sit at their addresses and form the swarm
test_nodes_healthy() {
  local block=$1 n i
  for n in "${TEST_NODES[@]}"; do
    i=$(test_nodes_index "$n")
    [ "$(docker inspect -f "{{.State.Running}} {{.Config.Image}} {{(index .NetworkSettings.Networks \"$TEST_NODES_NETWORK\").IPAddress}}" \
      "dtrtest-$n" 2>/dev/null)" = "true $DTR_TEST_NODE_IMAGE $block.0.$((10 + i))" ] || return 1
    test_nodes_answers "$n" || return 1
  done
  test_nodes_swarm_ready
}

# --- images ------------------------------------------------------------------------------

# "reference id" of every image the nodes get, sorted
test_nodes_image_list() {
  local repo version test_version v refs ref
  repo=$(test_nodes_repo)
  version=$(sed -n 's/^version *= *"\(.*\)"/\1/p' "$repo/Cargo.toml" | head -n1)
  test_version=$(cat "$repo/crates/dtr/tests/it/upgrade-version")
  for v in "$version" "$test_version"; do
    refs=$(docker images --filter "reference=registry/dtr*:$v" --format '{{.Repository}}:{{.Tag}}')
    [ -n "$refs" ] || test_nodes_say "no registry/dtr*:$v image on this engine (scripts/build-images.sh builds them): not loaded"
    for ref in $refs; do echo "$ref $(docker image inspect -f '{{.Id}}' "$ref")"; done
  done
  echo "debian:bookworm-slim $(docker image inspect -f '{{.Id}}' debian:bookworm-slim)"
}

test_nodes_has_images() {
  local n=$1 list=$2 ref id
  while read -r ref id; do
    [ "$(test_nodes_docker "$n" image inspect -f '{{.Id}}' "$ref" 2>/dev/null)" = "$id" ] || return 1
  done <<< "$list"
}

test_nodes_load_images() {
  local list key tar n todo=() start=$SECONDS
  list=$(test_nodes_image_list | sort) || return 1
  for n in "${TEST_NODES[@]}"; do
    test_nodes_has_images "$n" "$list" || todo+=("$n")
  done
  [ ${#todo[@]} -eq 0 ] && { test_nodes_say "the nodes have the $(wc -l <<< "$list") images"; return 0; }
  key=$(sha256sum <<< "$list" | cut -c1-16)
  tar=/tmp/dtrtest-node-images-$key.tar
  if [ ! -s "$tar" ]; then
    # only one cache: an older one is of images that are gone
    rm -f /tmp/dtrtest-node-images-*.tar /tmp/dtrtest-node-images-*.tar.part
    test_nodes_say "saving $(wc -l <<< "$list") images to $tar"
    # shellcheck disable=SC2046
    docker save -o "$tar.part" $(awk '{print $1}' <<< "$list") \
      || { rm -f "$tar.part"; test_nodes_fail "docker save of the nodes' images"; return 1; }
    mv "$tar.part" "$tar"
    test_nodes_say "saved $(du -m "$tar" | cut -f1) MB in $((SECONDS - start)) s"
  fi
  local pids=() failed="" i
  for n in "${todo[@]}"; do
    test_nodes_docker "$n" load -q -i "$tar" > "/tmp/dtrtest-node-load-$n.log" 2>&1 &
    pids+=($!)
  done
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || { failed+=" ${todo[$i]}"; cat "/tmp/dtrtest-node-load-${todo[$i]}.log" >&2; }
    rm -f "/tmp/dtrtest-node-load-${todo[$i]}.log"
  done
  [ -z "$failed" ] || { test_nodes_fail "docker load into$failed (above)"; return 1; }
  for n in "${todo[@]}"; do
    test_nodes_has_images "$n" "$list" || { test_nodes_fail "$n lacks images after docker load"; return 1; }
    # the images these replaced (older builds of the same tags)
    test_nodes_docker "$n" image prune -f >/dev/null 2>&1 || true
  done
  test_nodes_say "loaded $(wc -l <<< "$list") images into ${todo[*]} in $((SECONDS - start)) s"
}

# --- up, down, status --------------------------------------------------------------------

# reuses nodes that are up and healthy, else makes them (TEST_NODES_MADE=1); then the images
test_nodes_up() {
  local start=$SECONDS block
  if ! docker info >/dev/null 2>&1; then
    test_nodes_fail "the host's Docker engine does not answer (scripts/engine-up.sh)"
    return 1
  fi
  bash "$(test_nodes_repo)/scripts/base-image.sh" >&2 || return 1
  test_nodes_build_image || return 1
  block=$(test_nodes_block) || return 1
  test_nodes_export "$block"
  local made=0
  if ! test_nodes_healthy "$block"; then
    if docker inspect "dtrtest-node1" >/dev/null 2>&1 || docker network inspect "$TEST_NODES_NETWORK" >/dev/null 2>&1; then
      test_nodes_say "nodes there but not healthy (or of another image): made again"
      test_nodes_down
      block=$(test_nodes_block) || return 1
      test_nodes_export "$block"
    fi
    made=1
    # from here on, a failure leaves what was made to test_nodes_stop
    TEST_NODES_MADE=1
    test_nodes_create "$block" || return 1
  fi
  # the images first: forming the swarm ends with a probe that runs one of them on each node
  test_nodes_load_images || return 1
  if [ $made = 1 ]; then
    test_nodes_swarm_form "$block" || return 1
  fi
  test_nodes_say "$(if [ $made = 1 ]; then echo made; else echo reused; fi) ${TEST_NODES[*]} at $block.0.11-13 (network $TEST_NODES_NETWORK, swarm of three managers) in $((SECONDS - start)) s"
}

test_nodes_down() {
  local n
  for n in "${TEST_NODES[@]}"; do
    docker rm -f "dtrtest-$n" >/dev/null 2>&1 || true
  done
  for n in "${TEST_NODES[@]}"; do
    docker volume rm -f "dtrtest-$n-docker" >/dev/null 2>&1 || true
    # the cgroups of the containers a killed node could not remove (empty ones only)
    find /sys/fs/cgroup -maxdepth 2 -type d -name "dtrtest-$n" 2>/dev/null | while read -r d; do
      find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true
    done
  done
  docker network rm "$TEST_NODES_NETWORK" >/dev/null 2>&1 || true
  rm -rf "$TEST_NODES_SOCKETS"
}

# what an EXIT trap of the sourcing shell runs: removes the nodes if this shell made them
test_nodes_stop() {
  if [ "${TEST_NODES_MADE:-}" = 1 ]; then
    test_nodes_down
    TEST_NODES_MADE=
    test_nodes_say "removed the nodes"
  fi
}

test_nodes_status() {
  local n
  for n in "${TEST_NODES[@]}"; do
    printf '%s: %s' "$n" "$(docker inspect -f '{{.State.Status}} {{.Config.Image}}' "dtrtest-$n" 2>/dev/null || echo absent)"
    if test_nodes_answers "$n"; then
      printf ', engine %s, %s containers, %s images, swarm %s\n' \
        "$(test_nodes_docker "$n" version -f '{{.Server.Version}}')" \
        "$(test_nodes_docker "$n" ps -aq | wc -l)" "$(test_nodes_docker "$n" images -q | wc -l)" \
        "$(test_nodes_docker "$n" info -f '{{.Swarm.LocalNodeState}}')"
    else
      printf ', engine not answering\n'
    fi
  done
  for n in "${TEST_NODES[@]}"; do
    test_nodes_answers "$n" && { echo "swarm as $n sees it:"; test_nodes_swarm_view "$n"; break; }
  done
}

# adds test_nodes_stop to the EXIT trap of the sourcing shell, before what is there (the
# servers of scripts/test-servers.sh set theirs first)
test_nodes_trap() {
  local prev="" current
  current=$(trap -p EXIT)
  if [ -n "$current" ]; then
    # `trap -- 'command' EXIT`, unquoted by the shell itself
    eval "current=($current)"
    prev=${current[2]}
  fi
  case "$prev" in *test_nodes_stop*) return 0 ;; esac
  # shellcheck disable=SC2064
  trap "test_nodes_stop${prev:+; $prev}" EXIT
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -uo pipefail
  case "${1:-}" in
    up) test_nodes_up || { test_nodes_stop; exit 1; }; exit 0 ;;
    down) test_nodes_down; test_nodes_say "removed the nodes"; exit 0 ;;
    status) test_nodes_status; exit 0 ;;
    swarm) block=$(test_nodes_block) && test_nodes_export "$block" && test_nodes_swarm_form "$block"; exit $? ;;
    ghosts) block=$(test_nodes_block) && test_nodes_export "$block" && test_nodes_drop_ghosts; exit $? ;;
    *) sed -n '2,27p' "$0"; exit 2 ;;
  esac
else
  # set first: what was made is removed when a later step fails
  test_nodes_trap
  test_nodes_up || { test_nodes_fail "the test nodes did not come up"; return 1; }
fi
