#!/bin/bash
# etcd member of replica $DTR_REPLICA_ID. etcd reads ETCD_NAME, ETCD_INITIAL_CLUSTER,
# ETCD_INITIAL_CLUSTER_STATE and ETCD_INITIAL_CLUSTER_TOKEN from the environment itself;
# this adds the data dir, URLs, TLS (client certificates required on both ports) and logging,
# and runs etcd behind `dtr etcd-guard` (crates/dtr-server/src/etcd_guard.rs).
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

# etcd's own client listener is on the container's loopback only: the cluster reaches it
# through `dtr etcd-guard` on :2379, which lets each client certificate use only its keys
# (dtr_core::contract::etcd_access); peers must present an etcd member's certificate.
exec dtr etcd-guard --listen 0.0.0.0:2379 --upstream 127.0.0.1:2378 -- etcd \
  --data-dir "$data" \
  --listen-client-urls https://127.0.0.1:2378 --advertise-client-urls "https://$self:2379" \
  --listen-peer-urls https://0.0.0.0:2380 --initial-advertise-peer-urls "https://$self:2380" \
  --listen-metrics-urls http://127.0.0.1:2381 \
  --cert-file /ca/etcd/cert.pem --key-file /ca/etcd/key.pem \
  --trusted-ca-file /ca/ca.pem --client-cert-auth \
  --peer-cert-file /ca/etcd/cert.pem --peer-key-file /ca/etcd/key.pem \
  --peer-trusted-ca-file /ca/ca.pem --peer-client-cert-auth --peer-cert-allowed-cn etcd \
  --auto-compaction-mode periodic --auto-compaction-retention 1h \
  --logger zap --log-outputs stderr --log-level "$(dtr_level)" \
  "${repair[@]}" "$@"
