#!/usr/bin/env bash
# The real servers the unit tests of dtr-server need besides the Docker engine, from Debian:
#   - a scratch PostgreSQL 15 (package postgresql-15) on a unix socket in a temporary
#     directory, run as the user postgres: DTR_TEST_PG is its connection string
#   - distribution's registry binary (package docker-registry): DTR_REGISTRY_BIN
# Source it (`. scripts/test-servers.sh`): it installs what is missing (needs root), starts
# PostgreSQL, exports both variables and stops PostgreSQL when the sourcing shell exits.
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

test_servers_stop() {
  [ -n "${DTR_TEST_PG_DIR:-}" ] || return 0
  runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D "$DTR_TEST_PG_DIR/data" -m fast \
    stop >/dev/null 2>&1 || true
  rm -rf "$DTR_TEST_PG_DIR"
}

test_servers_install
test_servers_start
trap test_servers_stop EXIT
