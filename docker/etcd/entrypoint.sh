#!/bin/bash
# etcd member of replica $DTR_REPLICA_ID. etcd reads ETCD_NAME, ETCD_INITIAL_CLUSTER,
# ETCD_INITIAL_CLUSTER_STATE and ETCD_INITIAL_CLUSTER_TOKEN from the environment itself;
# this adds the data dir, URLs, TLS (client certificates required on both ports) and logging.
# Extra arguments go to etcd. With existing data in /data/etcd the initial-cluster settings are
# ignored, so a restart just works. `dtr emergency-repair` leaves /data/force-new-cluster: the
# next start (only that one) makes this member a one-member cluster that keeps its data.
set -euo pipefail
. /usr/local/lib/dtr/lib.sh

dtr_check_replica_id
dtr_refuse_if_removed
dtr_require_env ETCD_NAME ETCD_INITIAL_CLUSTER ETCD_INITIAL_CLUSTER_STATE
dtr_require_files /ca/ca.pem /ca/etcd/cert.pem /ca/etcd/key.pem
export ETCD_INITIAL_CLUSTER_TOKEN=${ETCD_INITIAL_CLUSTER_TOKEN:-dtr}
self=dtr-etcd-$DTR_REPLICA_ID
data=/data/etcd
mkdir -p "$data"
chmod 0700 "$data"
dtr_no_proxy "$self"
repair=()
if [ -e /data/force-new-cluster ]; then
  dtr_log "emergency repair: starting as a new one-member cluster with this member's data"
  rm -f /data/force-new-cluster
  repair=(--force-new-cluster)
fi

exec etcd \
  --data-dir "$data" \
  --listen-client-urls https://0.0.0.0:2379 --advertise-client-urls "https://$self:2379" \
  --listen-peer-urls https://0.0.0.0:2380 --initial-advertise-peer-urls "https://$self:2380" \
  --listen-metrics-urls http://127.0.0.1:2381 \
  --cert-file /ca/etcd/cert.pem --key-file /ca/etcd/key.pem \
  --trusted-ca-file /ca/ca.pem --client-cert-auth \
  --peer-cert-file /ca/etcd/cert.pem --peer-key-file /ca/etcd/key.pem \
  --peer-trusted-ca-file /ca/ca.pem --peer-client-cert-auth \
  --auto-compaction-mode periodic --auto-compaction-retention 1h \
  --logger zap --log-outputs stderr --log-level "$(dtr_level)" \
  "${repair[@]}" "$@"
