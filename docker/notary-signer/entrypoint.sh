#!/bin/bash
# notary-signer of replica $DTR_REPLICA_ID: gRPC on 7899 with mutual TLS (callers need a
# certificate of the replica's signer-callers CA: the notary-server and the health probe),
# keys in PostgreSQL database notarysigner as role notarysigner (client certificate),
# encrypted with the passphrase of alias "dtr". The passphrase is read here from the dtr-ca
# volume and handed to notary-signer only through the environment of the exec'd process (never the container's, so not in docker inspect).
set -euo pipefail
. /usr/local/lib/dtr/lib.sh

dtr_check_replica_id
dtr_refuse_if_removed
dtr_check_hosts DTR_DB_HOST
dtr_require_files /ca/ca.pem /ca/notary-signer/cert.pem /ca/notary-signer/key.pem /ca/notary-signer/passphrase
# notary's driver knows one host: it connects to dtr db-proxy on 127.0.0.1, which forwards
# each connection to the database primary (TLS stays end to end; see crates/dtr-server/src/dbproxy.rs)
db=127.0.0.1:5432
dtr_no_proxy "dtr-notary-signer-$DTR_REPLICA_ID" "${DTR_DB_HOST%:*}"

# callers: only certificates of this replica's signer-callers CA (the notary-server's and the
# health probe's; phase 2 makes it and forgets its key), not every certificate of the cluster
# CA. A replica installed before that CA existed has none and keeps the cluster CA.
clients=/ca/notary-signer/signer-clients-ca.pem
if [ ! -e "$clients" ]; then
  dtr_log "warning: no $clients (a replica installed by an earlier version): any certificate of the cluster CA may call this signer"
  clients=/ca/ca.pem
fi

cat > /run/dtr/signer.json <<JSON
{
  "server": {
    "grpc_addr": ":7899",
    "tls_cert_file": "/ca/notary-signer/cert.pem",
    "tls_key_file": "/ca/notary-signer/key.pem",
    "client_ca_file": "$clients"
  },
  "logging": { "level": "$(dtr_level)" },
  "storage": {
    "backend": "postgres",
    "db_url": "postgres://notarysigner@$db/notarysigner?sslmode=verify-full&sslrootcert=/ca/ca.pem&sslcert=/ca/notary-signer/cert.pem&sslkey=/ca/notary-signer/key.pem",
    "default_alias": "dtr"
  }
}
JSON

NOTARY_SIGNER_DTR=$(cat /ca/notary-signer/passphrase)
[ -n "$NOTARY_SIGNER_DTR" ] || dtr_die "/ca/notary-signer/passphrase is empty"
export NOTARY_SIGNER_DTR
exec dtr db-proxy --listen "$db" --db-host "$DTR_DB_HOST" -- notary-signer -config /run/dtr/signer.json "$@"
