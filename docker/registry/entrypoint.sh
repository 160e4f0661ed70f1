#!/bin/bash
# distribution 2.8 of replica $DTR_REPLICA_ID, run by `dtr registry` (our binary): it renders
# the configuration (the cluster's storage from etcd, TLS with the registry certificate,
# bearer-token auth issued by the api for realm $DTR_TOKEN_REALM and service
# $DTR_TOKEN_SERVICE, notifications to the api), serves HTTPS on 5000 and health on
# 127.0.0.1:5001, and moves to a new storage configuration without dropping a connection.
set -euo pipefail
. /usr/local/lib/dtr/lib.sh

dtr_check_replica_id
dtr_refuse_if_removed
dtr_require_env DTR_TOKEN_REALM DTR_TOKEN_SERVICE DTR_ETCD_ENDPOINTS
dtr_require_files /ca/ca.pem /ca/registry/cert.pem /ca/registry/key.pem /ca/api/token.pem \
  /ca/registry/notify-token
[ -w /storage ] || dtr_die "/storage is not writable by uid $(id -u)"
dtr_no_proxy "dtr-registry-$DTR_REPLICA_ID" "dtr-etcd-$DTR_REPLICA_ID" "dtr-api-$DTR_REPLICA_ID"
exec dtr registry
