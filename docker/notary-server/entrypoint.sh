#!/bin/bash
# notary-server of replica $DTR_REPLICA_ID: HTTPS on 4443, signing delegated to this
# replica's notary-signer over mutual TLS, TUF metadata in PostgreSQL database notaryserver
# as role notaryserver (client certificate). Clients need a bearer token from the api
# (DTR_TOKEN_REALM / DTR_TOKEN_SERVICE, required), exactly as for the registry.
set -euo pipefail
. /usr/local/lib/dtr/lib.sh

dtr_check_replica_id
dtr_refuse_if_removed
dtr_check_hosts DTR_DB_HOST DTR_NOTARY_SIGNER_HOST
dtr_require_files /ca/ca.pem /ca/notary-server/cert.pem /ca/notary-server/key.pem
# notary's driver knows one host: it connects to dtr db-proxy on 127.0.0.1, which forwards
# each connection to the database primary (TLS stays end to end; see crates/dtr-server/src/dbproxy.rs)
db=127.0.0.1:5432
signer_host=${DTR_NOTARY_SIGNER_HOST%:*}
signer_port=7899
[[ $DTR_NOTARY_SIGNER_HOST == *:* ]] && signer_port=${DTR_NOTARY_SIGNER_HOST##*:}
dtr_no_proxy "dtr-notary-server-$DTR_REPLICA_ID" "$signer_host" "${DTR_DB_HOST%:*}"

auth=
if [ -n "${DTR_TOKEN_REALM:-}" ] && [ -n "${DTR_TOKEN_SERVICE:-}" ]; then
  dtr_require_files /ca/api/token.pem
  auth=$(cat <<JSON
  "auth": {
    "type": "token",
    "options": {
      "realm": $(dtr_json_string "$DTR_TOKEN_REALM"),
      "service": $(dtr_json_string "$DTR_TOKEN_SERVICE"),
      "issuer": "dtr",
      "rootcertbundle": "/ca/api/token.pem"
    }
  },
JSON
)
else
  dtr_die "DTR_TOKEN_REALM and DTR_TOKEN_SERVICE must be set: notary-server never runs without client authentication"
fi

# towards the signer: the client certificate of the signer's own callers' CA (phase 2's
# signer-client.pem); a replica installed before it existed uses this component's certificate
signer_cert=/ca/notary-server/signer-client.pem signer_key=/ca/notary-server/signer-client-key.pem
if [ ! -e "$signer_cert" ]; then
  signer_cert=/ca/notary-server/cert.pem signer_key=/ca/notary-server/key.pem
fi

cat > /run/dtr/server.json <<JSON
{
  "server": {
    "http_addr": ":4443",
    "tls_cert_file": "/ca/notary-server/cert.pem",
    "tls_key_file": "/ca/notary-server/key.pem"
  },
  "trust_service": {
    "type": "remote",
    "hostname": "$signer_host",
    "port": "$signer_port",
    "key_algorithm": "ecdsa",
    "tls_ca_file": "/ca/ca.pem",
    "tls_client_cert": "$signer_cert",
    "tls_client_key": "$signer_key"
  },
  "storage": {
    "backend": "postgres",
    "db_url": "postgres://notaryserver@$db/notaryserver?sslmode=verify-full&sslrootcert=/ca/ca.pem&sslcert=/ca/notary-server/cert.pem&sslkey=/ca/notary-server/key.pem"
  },
$auth
  "logging": { "level": "$(dtr_level)" }
}
JSON
exec dtr db-proxy --listen "$db" --db-host "$DTR_DB_HOST" -- notary-server -config /run/dtr/server.json "$@"
