#!/bin/bash
# PostgreSQL 15 managed by Patroni, member $DTR_REPLICA_ID of cluster "dtr", with the
# replica's etcd (DTR_ETCD_HOSTS, local member first) as its store. Authentication is by
# client certificate only: CN -> role through pg_ident map "dtr". Patroni runs initdb on
# first start (or clones from the primary when a cluster exists) and post_bootstrap creates
# the roles, databases and notary schemas; with existing PGDATA it just starts again.
set -euo pipefail
. /usr/local/lib/dtr/lib.sh

dtr_check_replica_id
dtr_refuse_if_removed
dtr_check_hosts DTR_ETCD_HOSTS
dtr_require_files /ca/ca.pem /ca/rethinkdb/cert.pem /ca/rethinkdb/key.pem
self=dtr-rethinkdb-$DTR_REPLICA_ID
shared_buffers=${DTR_DB_SHARED_BUFFERS_MB:-128}
effective_cache=${DTR_DB_EFFECTIVE_CACHE_MB:-4096}
[[ $shared_buffers =~ ^[0-9]+$ && $effective_cache =~ ^[0-9]+$ ]] \
  || dtr_die "DTR_DB_SHARED_BUFFERS_MB / DTR_DB_EFFECTIVE_CACHE_MB must be numbers of MB"
case "$(dtr_level)" in
  debug) pg_level=debug1 patroni_level=DEBUG ;;
  info) pg_level=info patroni_level=INFO ;;
  warn) pg_level=warning patroni_level=WARNING ;;
  error) pg_level=error patroni_level=ERROR ;;
  fatal) pg_level=fatal patroni_level=CRITICAL ;;
esac
dtr_no_proxy "$self" "${DTR_ETCD_HOSTS//:2379/}"

# the same certificate is the server's and this member's client identity
ssl="sslmode: verify-full
      sslrootcert: /ca/ca.pem
      sslcert: /ca/rethinkdb/cert.pem
      sslkey: /ca/rethinkdb/key.pem"

cat > /run/dtr/patroni.yml <<YAML
scope: dtr
namespace: /dtr/patroni/
# quoted: an id of decimal digits only would be a YAML number, which Patroni cannot use
name: "$DTR_REPLICA_ID"
log:
  level: $patroni_level
restapi:
  listen: 0.0.0.0:8008
  connect_address: $self:8008
  certfile: /ca/rethinkdb/cert.pem
  keyfile: /ca/rethinkdb/key.pem
  cafile: /ca/ca.pem
  # the unsafe endpoints (POST/PUT/PATCH/DELETE: restart, switchover, reinitialize, config)
  # answer only the database members (patronictl runs in them) and this container, each
  # with a certificate of the cluster CA; any other component gets 403 (issue 18, finding 2)
  verify_client: optional
  allowlist: [127.0.0.1/32]
  allowlist_include_members: true
ctl:
  certfile: /ca/rethinkdb/cert.pem
  keyfile: /ca/rethinkdb/key.pem
  cacert: /ca/ca.pem
etcd3:
  hosts: $DTR_ETCD_HOSTS
  protocol: https
  cacert: /ca/ca.pem
  cert: /ca/rethinkdb/cert.pem
  key: /ca/rethinkdb/key.pem
watchdog:
  mode: "off"
bootstrap:
  dcs:
    # failover after about ttl + loop_wait; loop_wait + 2 x retry_timeout <= ttl
    ttl: 12
    loop_wait: 3
    retry_timeout: 4
    maximum_lag_on_failover: 1048576
    synchronous_mode: true
    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters:
        wal_level: replica
        hot_standby: "on"
        wal_log_hints: "on"
        max_wal_senders: 10
        max_replication_slots: 10
        max_connections: 200
  initdb:
    - encoding: UTF8
    - locale: C.UTF-8
    - data-checksums
    - auth-local: peer
    - auth-host: reject
  post_bootstrap: /usr/local/lib/dtr/post-bootstrap.sh
postgresql:
  listen: 0.0.0.0:5432
  connect_address: $self:5432
  data_dir: /var/lib/postgresql/data/pgdata
  bin_dir: /usr/lib/postgresql/15/bin
  pgpass: /run/dtr/pgpass
  use_unix_socket: true
  # without this, pg_basebackup of a new replica waits for a spread checkpoint (minutes)
  basebackup:
    - checkpoint: fast
  authentication:
    superuser:
      username: postgres
      $ssl
    replication:
      username: replicator
      $ssl
  pg_hba:
    - local all all peer
    - hostssl all all all cert map=dtr
    - hostssl replication all all cert map=dtr
  pg_ident:
    - dtr rethinkdb postgres
    - dtr rethinkdb replicator
    - dtr api dtr
    - dtr jobrunner dtr
    - dtr notary-server notaryserver
    - dtr notary-signer notarysigner
  parameters:
    unix_socket_directories: /run/postgresql
    ssl: "on"
    ssl_cert_file: /ca/rethinkdb/cert.pem
    ssl_key_file: /ca/rethinkdb/key.pem
    ssl_ca_file: /ca/ca.pem
    ssl_min_protocol_version: TLSv1.2
    shared_buffers: ${shared_buffers}MB
    effective_cache_size: ${effective_cache}MB
    jit: "off"
    log_min_messages: $pg_level
    log_line_prefix: "%m [%p] %q%u@%d "
YAML

exec patroni /run/dtr/patroni.yml
