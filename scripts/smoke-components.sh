#!/usr/bin/env bash
# Smoke test of the six non-Rust component images under docs/components.md, without the
# Rust code: a throw-away CA in a dtr-ca volume laid out like the contract's /ca, networks
# smoke-ol (overlay) and smoke-br (bridge), then etcd -> rethinkdb -> notary-signer ->
# notary-server -> registry -> nginx as replica 5a0c0e000001, each awaited with `dtr-health`
# the way the install does. Then the wiring checks, and a restart of the stateful ones.
#
#   scripts/smoke-components.sh [--version V] [--keep]
#
# Everything it creates is named dtr-<thing>-5a0c0e000001 or smoke-*, and removed on exit
# (--keep leaves it running for a look; run again without --keep to clean up first).
# Needs: docker, openssl, curl on the host.
set -euo pipefail
cd "$(dirname "$0")/.."

RID=5a0c0e000001
OL=smoke-ol
BR=smoke-br
VERSION=${DTR_VERSION:-$(sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml 2>/dev/null | head -n1)}
KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --version) VERSION=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h | --help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
[ -n "$VERSION" ] || { echo "no version: pass --version or run from the repository (Cargo.toml)" >&2; exit 2; }
for tool in docker openssl curl; do
  command -v "$tool" >/dev/null || { echo "$tool is needed on the host" >&2; exit 2; }
done

COMPONENTS=(etcd rethinkdb notary-signer notary-server registry nginx)
declare -A UID_OF=([etcd]=10001 [rethinkdb]=10002 [notary-server]=10003 [notary-signer]=10004
  [registry]=10005 [nginx]=10006 [api]=10007 [jobrunner]=10008)
VOLUMES=(dtr-ca-$RID dtr-etcd-$RID dtr-rethink-$RID dtr-registry-$RID)
HELPERS=(smoke-ca-writer smoke-psql)
image() { echo "registry/dtr-$1:$VERSION"; }
name() { echo "dtr-$1-$RID"; }
now() { date +%s.%N; }
later_than() { awk -v a="$1" -v b="$(now)" -v t="$2" 'BEGIN { exit !(b - a > t) }'; }
secs() { awk -v a="$1" -v b="${2:-$(now)}" 'BEGIN { printf "%.1f", b - a }'; }
say() { printf '%s\n' "$*"; }
fails=0
check() { # check DESCRIPTION CMD...: run CMD, report
  local what=$1; shift
  local out
  if out=$("$@" 2>&1); then say "  ok    $what"; else say "  FAIL  $what"; printf '%s\n' "$out" | sed 's/^/        /' | tail -n 20; fails=$((fails + 1)); fi
}

tmp=$(mktemp -d /tmp/dtr-smoke.XXXXXX)
cleanup() {
  local rc=$?
  if [ "$KEEP" = 1 ]; then
    say "--keep: left running: ${COMPONENTS[*]/#/dtr-} (-$RID), networks $OL $BR, volumes ${VOLUMES[*]}"
  else
    local c
    for c in "${COMPONENTS[@]}"; do docker rm -f "$(name "$c")" >/dev/null 2>&1 || true; done
    for c in "${HELPERS[@]}"; do docker rm -f "$c" >/dev/null 2>&1 || true; done
    docker network rm "$OL" "$BR" >/dev/null 2>&1 || true
    docker volume rm "${VOLUMES[@]}" >/dev/null 2>&1 || true
  fi
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# leftovers of an earlier run (killed, or --keep) carry exactly these names
for c in "${COMPONENTS[@]}"; do docker rm -f "$(name "$c")" >/dev/null 2>&1 || true; done
for c in "${HELPERS[@]}"; do docker rm -f "$c" >/dev/null 2>&1 || true; done
docker network rm "$OL" "$BR" >/dev/null 2>&1 || true
docker volume rm "${VOLUMES[@]}" >/dev/null 2>&1 || true

for c in "${COMPONENTS[@]}"; do
  docker image inspect "$(image "$c")" >/dev/null 2>&1 \
    || { say "image $(image "$c") is missing: run scripts/build-images.sh first"; exit 1; }
done

# --- the CA and the certificates, laid out like the contract's dtr-ca volume ---------------
say "== certificates"
ca=$tmp/ca
mkdir -p "$ca/root" "$ca/external"
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
key "$ca/root/ca-key.pem"
openssl req -x509 -new -key "$ca/root/ca-key.pem" -sha256 -days 2 -subj "/CN=dtr smoke CA $RID" \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
  -out "$ca/ca.pem"
leaf() { # leaf DIR CN
  local dir=$1 cn=$2
  mkdir -p "$dir"
  key "$dir/key.pem"
  openssl req -new -key "$dir/key.pem" -subj "/CN=$cn" -out "$dir/req.csr"
  printf '%s\n' "subjectAltName=DNS:dtr-$cn-$RID,DNS:localhost,IP:127.0.0.1" \
    'extendedKeyUsage=serverAuth,clientAuth' 'keyUsage=critical,digitalSignature,keyAgreement' \
    'basicConstraints=CA:FALSE' > "$dir/ext.cnf"
  openssl x509 -req -in "$dir/req.csr" -CA "$ca/ca.pem" -CAkey "$ca/root/ca-key.pem" -CAcreateserial \
    -sha256 -days 2 -extfile "$dir/ext.cnf" -out "$dir/cert.pem" 2>/dev/null
  rm -f "$dir/req.csr" "$dir/ext.cnf"
}
for c in etcd rethinkdb notary-signer notary-server registry api jobrunner nginx; do leaf "$ca/$c" "$c"; done
leaf "$ca/external" nginx # the HTTPS port's certificate; here from the same CA
cp "$ca/ca.pem" "$ca/external/ca.pem"
key "$ca/api/token-key.pem"
openssl req -x509 -new -key "$ca/api/token-key.pem" -sha256 -days 2 -subj "/CN=dtr token signer" -out "$ca/api/token.pem"
openssl rand -hex 32 > "$ca/notary-signer/passphrase"
openssl rand -hex 32 > "$ca/registry/notify-token" # no api here: the notifications just queue
rm -f "$ca"/*.srl "$ca/root"/*.srl

docker volume create "dtr-ca-$RID" >/dev/null
owners="chown -R 0:0 /ca; chmod 0755 /ca; chmod 0700 /ca/root; chmod 0600 /ca/root/ca-key.pem"
for c in etcd rethinkdb notary-signer notary-server registry api jobrunner nginx; do
  owners+="; chown ${UID_OF[$c]}:${UID_OF[$c]} /ca/$c/key.pem"
done
owners+="; chown ${UID_OF[nginx]}:${UID_OF[nginx]} /ca/external/key.pem"
owners+="; chown ${UID_OF[api]}:${UID_OF[api]} /ca/api/token-key.pem"
owners+="; chown ${UID_OF[notary-signer]}:${UID_OF[notary-signer]} /ca/notary-signer/passphrase"
owners+="; chown ${UID_OF[registry]}:${UID_OF[registry]} /ca/registry/notify-token"
owners+="; find /ca -type d ! -path /ca/root -exec chmod 0755 {} +; find /ca -name '*.pem' -exec chmod 0644 {} +"
owners+="; find /ca -name '*key.pem' -exec chmod 0600 {} +; chmod 0600 /ca/notary-signer/passphrase /ca/registry/notify-token"
tar -C "$ca" -c . | docker run --rm -i --name smoke-ca-writer --user 0:0 --network none \
  -v "dtr-ca-$RID:/ca" --entrypoint bash "$(image etcd)" -c "tar -C /ca -x && $owners"
say "  dtr-ca-$RID written (CA, 9 leaf certificates, token key pair, signer passphrase, notify token)"

# --- networks and components ---------------------------------------------------------------
docker network create -d overlay --attachable "$OL" >/dev/null
docker network create -d bridge "$BR" >/dev/null

common_env=(-e "DTR_REPLICA_ID=$RID" -e "DTR_VERSION=$VERSION" -e LOG_LEVEL=info)
token_env="-e DTR_TOKEN_REALM=https://localhost/auth/token -e DTR_TOKEN_SERVICE=localhost"
declare -A ARGS=(
  [etcd]="-v dtr-etcd-$RID:/data -e ETCD_NAME=$RID -e ETCD_INITIAL_CLUSTER=$RID=https://dtr-etcd-$RID:2380 -e ETCD_INITIAL_CLUSTER_STATE=new -e ETCD_INITIAL_CLUSTER_TOKEN=dtr"
  [rethinkdb]="-v dtr-rethink-$RID:/var/lib/postgresql/data -e DTR_ETCD_HOSTS=dtr-etcd-$RID:2379 -e DTR_DB_SHARED_BUFFERS_MB=128 -e DTR_DB_EFFECTIVE_CACHE_MB=512"
  [notary-signer]="-e DTR_DB_HOST=dtr-rethinkdb-$RID"
  [notary-server]="-e DTR_DB_HOST=dtr-rethinkdb-$RID -e DTR_NOTARY_SIGNER_HOST=dtr-notary-signer-$RID $token_env"
  [registry]="-v dtr-registry-$RID:/storage -e DTR_ETCD_ENDPOINTS=https://dtr-etcd-$RID:2379 $token_env"
  [nginx]="-e DTR_HTTPS_PORT=443 -p 127.0.0.1::8080 -p 127.0.0.1::8443"
)

# start: create on the overlay, attach the bridge, start (as the install plan does)
start() {
  local c=$1 n
  n=$(name "$c")
  # shellcheck disable=SC2086 # ARGS holds word lists
  docker create --name "$n" --hostname "$n" --network "$OL" --user "${UID_OF[$c]}:${UID_OF[$c]}" \
    --restart unless-stopped -v "dtr-ca-$RID:/ca:ro" "${common_env[@]}" \
    ${ARGS[$c]} "$(image "$c")" >/dev/null
  docker network connect "$BR" "$n"
  docker start "$n" >/dev/null
}
# wait_healthy C TIMEOUT: poll `docker exec dtr-health` every 0.2 s
wait_healthy() {
  local c=$1 timeout=$2 t0 n
  n=$(name "$c")
  t0=$(now)
  until docker exec "$n" dtr-health >/dev/null 2>&1; do
    if [ "$(docker inspect -f '{{.State.Running}}' "$n" 2>/dev/null)" != true ] && later_than "$t0" 3; then
      say "  $n is not running"; docker logs --tail 30 "$n" 2>&1 | sed 's/^/    /'; return 1
    fi
    if later_than "$t0" "$timeout"; then
      say "  $n not healthy after ${timeout}s"; docker logs --tail 30 "$n" 2>&1 | sed 's/^/    /'; return 1
    fi
    sleep 0.2
  done
}

say "== start (time from its docker create to dtr-health ok)"
t_all=$(now)
for c in "${COMPONENTS[@]}"; do
  t=$(now)
  start "$c"
  wait_healthy "$c" 60 || exit 1
  say "  $(printf '%-14s' "$c") healthy after $(secs "$t") s"
done
say "  all six healthy $(secs "$t_all") s after the start of etcd"

# --- wiring checks --------------------------------------------------------------------------
say "== checks"
for c in "${COMPONENTS[@]}"; do
  check "dtr-health of $c (in $(
    t=$(now); docker exec "$(name "$c")" dtr-health >/dev/null 2>&1; secs "$t"
  ) s)" docker exec "$(name "$c")" dtr-health
done

psql_as() { # psql_as COMPONENT CONNINFO SQL: psql from a throw-away container as that component's uid
  docker run --rm --name smoke-psql --network "$BR" --user "${UID_OF[$1]}:${UID_OF[$1]}" \
    -v "dtr-ca-$RID:/ca:ro" --entrypoint psql "$(image rethinkdb)" "$2" -XqAtc "$3"
}
db="host=dtr-rethinkdb-$RID sslrootcert=/ca/ca.pem connect_timeout=5"
expect_fail() { if "$@"; then return 1; fi; }
check "postgres refuses TLS without a client certificate" \
  expect_fail psql_as api "$db dbname=dtr user=dtr sslmode=verify-full" 'select 1'
check "postgres refuses plain TCP" expect_fail psql_as api "$db dbname=dtr user=dtr sslmode=disable" 'select 1'
check "postgres refuses the api certificate for another role" \
  expect_fail psql_as api "$db dbname=notaryserver user=notaryserver sslmode=verify-full sslcert=/ca/api/cert.pem sslkey=/ca/api/key.pem" 'select 1'
who() { [ "$(psql_as api "$db dbname=dtr user=dtr sslmode=verify-full sslcert=/ca/api/cert.pem sslkey=/ca/api/key.pem" \
  "select current_user || '@' || current_database()")" = dtr@dtr ]; }
check "psql with the api certificate is dtr@dtr" who
tables() { [ "$(docker exec "$(name rethinkdb)" psql -d "$1" -XqAtc \
  "select string_agg(tablename || ':' || tableowner, ',' order by tablename) from pg_tables where schemaname = 'public'")" = "$2" ]; }
check "notaryserver schema (owned by notaryserver)" tables notaryserver \
  change_category:notaryserver,changefeed:notaryserver,schema_migrations:notaryserver,tuf_files:notaryserver
check "notarysigner schema (owned by notarysigner)" tables notarysigner \
  private_keys:notarysigner,schema_migrations:notarysigner

# notary-signer end to end: CreateKey over gRPC (curl, HTTP/2) with notary-server's certificate;
# the signer encrypts the new key with the passphrase and stores it in PostgreSQL
create_key() {
  local req
  # gRPC frame: flag 0, length 31, CreateKeyRequest{algorithm=1:"ecdsa", gun=2:"smoke/trust", role=3:"timestamp"}
  req='\000\000\000\000\037\012\005ecdsa\022\013smoke/trust\032\011timestamp'
  docker exec "$(name notary-server)" sh -c "printf '$req' | curl -fsS --http2 -m 5 --noproxy '*' \
    --cacert /ca/ca.pem --cert /ca/notary-server/cert.pem --key /ca/notary-server/key.pem \
    -H 'content-type: application/grpc' -H 'te: trailers' --data-binary @- -o /dev/null \
    https://dtr-notary-signer-$RID:7899/proto.KeyManagement/CreateKey"
  [ "$(docker exec "$(name rethinkdb)" psql -d notarysigner -XqAtc \
    "select count(*) from private_keys where gun = 'smoke/trust' and passphrase_alias = 'dtr'")" = 1 ]
}
check "notary-signer creates a key in PostgreSQL (mutual TLS, passphrase alias dtr)" create_key
no_secret() { ! docker inspect "$(name notary-signer)" | grep -q "$(cat "$ca/notary-signer/passphrase")"; }
check "the signer passphrase is not in docker inspect" no_secret

http_port=$(docker port "$(name nginx)" 8080/tcp | head -n1 | sed 's/.*://')
https_port=$(docker port "$(name nginx)" 8443/tcp | head -n1 | sed 's/.*://')
ext=(--cacert "$ca/external/ca.pem" --resolve "localhost:$https_port:127.0.0.1" -m 5)
v2() { # 401 from the registry itself: token challenge with our realm, registry API header
  local h
  h=$(curl -sS "${ext[@]}" -o /dev/null -D - "https://localhost:$https_port/v2/")
  grep -q '^HTTP/[0-9.]* 401' <<< "$h" && grep -qi '^www-authenticate: Bearer realm="https://localhost/auth/token",service="localhost"' <<< "$h" \
    && grep -qi '^docker-distribution-api-version: registry/2.0' <<< "$h"
}
check "GET https://<nginx>/v2/ is the registry's 401 token challenge" v2
check "GET https://<nginx>/ca is the CA" cmp -s <(curl -fsS "${ext[@]}" "https://localhost:$https_port/ca") "$ca/external/ca.pem"
check "GET https://<nginx>/_notary_server/health is 200" curl -fsS "${ext[@]}" -o /dev/null "https://localhost:$https_port/_notary_server/health"
trust() { [ "$(curl -sS "${ext[@]}" -o /dev/null -w '%{http_code}' "https://localhost:$https_port/v2/smoke/trust/_trust/tuf/root.json")" = 401 ]; }
check "GET https://<nginx>/v2/<name>/_trust/... reaches notary-server (401, token auth)" trust
redirect() { [ "$(curl -sS -m 5 -o /dev/null -w '%{http_code} %{redirect_url}' "http://127.0.0.1:$http_port/v2/x?y=1")" = "301 https://127.0.0.1/v2/x?y=1" ]; }
check "HTTP answers 301 to HTTPS" redirect
status_local() { [ "$(curl -sS -m 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$http_port/nginx_status")" = 403 ]; }
check "/nginx_status is refused from outside the container" status_local

say "== restart (docker restart: existing data, same containers)"
for c in etcd rethinkdb; do
  t=$(now)
  docker restart "$(name "$c")" >/dev/null
  if wait_healthy "$c" 60; then say "  ok    $(printf '%-10s' "$c") healthy again after $(secs "$t") s"; else fails=$((fails + 1)); fi
done
check "the dtr database answers after the restarts" who

if [ "$fails" = 0 ]; then say "smoke: all checks passed"; else say "smoke: $fails check(s) failed"; exit 1; fi
