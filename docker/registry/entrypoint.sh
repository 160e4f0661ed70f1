#!/bin/bash
# distribution 2.8 of replica $DTR_REPLICA_ID: HTTPS on 5000 with the registry certificate,
# bearer-token auth issued by the api (realm $DTR_TOKEN_REALM, service $DTR_TOKEN_SERVICE,
# issuer "dtr", signed by /ca/api/token.pem), blobs under /storage, health on 127.0.0.1:5001.
set -euo pipefail
. /usr/local/lib/dtr/lib.sh

dtr_check_replica_id
dtr_refuse_if_removed
dtr_require_env DTR_TOKEN_REALM DTR_TOKEN_SERVICE
dtr_require_files /ca/ca.pem /ca/registry/cert.pem /ca/registry/key.pem /ca/api/token.pem \
  /ca/registry/notify-token
# the notifications go to the api over TLS signed by the cluster CA
export SSL_CERT_FILE=/ca/ca.pem
notify_token=$(cat /ca/registry/notify-token)
[ -w /storage ] || dtr_die "/storage is not writable by uid $(id -u)"
case "$(dtr_level)" in
  fatal) level=error ;;
  *) level=$(dtr_level) ;;
esac
dtr_no_proxy "dtr-registry-$DTR_REPLICA_ID"

cat > /run/dtr/registry.yml <<YAML
version: 0.1
log:
  level: $level
  formatter: text
  fields:
    service: registry
    replica: "$DTR_REPLICA_ID"
storage:
  filesystem:
    rootdirectory: /storage
  delete:
    enabled: true
http:
  addr: :5000
  tls:
    certificate: /ca/registry/cert.pem
    key: /ca/registry/key.pem
  debug:
    addr: 127.0.0.1:5001
  headers:
    X-Content-Type-Options: [nosniff]
auth:
  token:
    realm: $(dtr_json_string "$DTR_TOKEN_REALM")
    service: $(dtr_json_string "$DTR_TOKEN_SERVICE")
    issuer: dtr
    rootcertbundle: /ca/api/token.pem
notifications:
  endpoints:
    - name: dtr-api
      url: https://dtr-api-$DTR_REPLICA_ID:9443/internal/registry/events
      headers:
        Authorization: [$(dtr_json_string "Bearer $notify_token")]
      timeout: 2s
      threshold: 5
      backoff: 1s
      ignore:
        actions: [pull]
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
YAML
exec docker-registry serve /run/dtr/registry.yml
