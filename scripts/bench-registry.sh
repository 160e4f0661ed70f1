#!/usr/bin/env bash
# Registry data path benchmark: docker push and pull of a ~SIZE_MB image (default 100) through
# nginx (the published HTTPS port) and directly to the dtr-registry container, in the same run,
# with two different images of the same size so that no layer is reused. Prints both timings
# and the ratio nginx/direct. Installs a replica of its own and destroys it at the end.
#
#   scripts/bench-registry.sh [SIZE_MB]
#
# Needs the images (scripts/build-images.sh), no DTR cluster on the engine, and root (it adds
# the registry container's name to /etc/hosts and a CA to /etc/docker/certs.d, both removed
# on exit).
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MB=${1:-100}
cargo build --release --locked --bin dtr >/dev/null 2>&1
BIN=target/release/dtr
rid=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
https=$((30000 + RANDOM % 5000)); http=$((35000 + RANDOM % 5000))
ext=127.0.0.1:$https
direct=dtr-registry-$rid:5000
DTR_ADMIN_PASSWORD=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
export DTR_ADMIN_PASSWORD
tmp=$(mktemp -d /tmp/dtr-bench-registry.XXXXXX)
export DOCKER_CONFIG=$tmp/config
installed=0
cleanup() {
  set +e
  docker rmi -f "$ext/admin/bench-nginx:1" "$direct/admin/bench-direct:1" >/dev/null 2>&1
  [ "$installed" = 1 ] && "$BIN" destroy --replica-id "$rid" >/dev/null 2>&1
  rm -rf "/etc/docker/certs.d/$ext" "/etc/docker/certs.d/$direct" "$tmp"
  sed -i "/ dtr-registry-$rid\$/d" /etc/hosts
}
trap cleanup EXIT
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

echo "installing replica $rid"
"$BIN" install --replica-id "$rid" --dtr-external-url "$ext" --replica-https-port "$https" \
  --replica-http-port "$http" </dev/null >"$tmp/install.log" 2>&1 || { cat "$tmp/install.log"; exit 1; }
installed=1
docker run --rm -v "dtr-ca-$rid:/ca:ro" --entrypoint cat "registry/dtr:$("$BIN" --version | awk '{print $2}')" \
  /ca/ca.pem >"$tmp/cluster-ca.pem"
docker run --rm -v "dtr-ca-$rid:/ca:ro" --entrypoint cat "registry/dtr:$("$BIN" --version | awk '{print $2}')" \
  /ca/external/ca.pem >"$tmp/ca.pem"
ip=$(docker inspect -f '{{(index .NetworkSettings.Networks "dtr-br").IPAddress}}' "dtr-registry-$rid")
echo "$ip dtr-registry-$rid" >>/etc/hosts
mkdir -p "/etc/docker/certs.d/$ext" "/etc/docker/certs.d/$direct"
cp "$tmp/ca.pem" "/etc/docker/certs.d/$ext/ca.crt"
cp "$tmp/cluster-ca.pem" "/etc/docker/certs.d/$direct/ca.crt"
for r in "$ext" "$direct"; do
  printf '%s' "$DTR_ADMIN_PASSWORD" | docker login "$r" -u admin --password-stdin >/dev/null
done

make_image() { # make_image NAME
  mkdir -p "$tmp/layer"
  head -c "$((SIZE_MB * 1024 * 1024))" /dev/urandom >"$tmp/layer/data"
  tar -C "$tmp/layer" -c . | docker import - "$1" >/dev/null
}
make_image "$ext/admin/bench-nginx:1"
make_image "$direct/admin/bench-direct:1"

timed() { # timed LABEL CMD...
  local start end
  start=$(now); "${@:2}" >/dev/null; end=$(now)
  eval "$1=$(secs "$start" "$end")"
}
timed push_nginx docker push "$ext/admin/bench-nginx:1"
timed push_direct docker push "$direct/admin/bench-direct:1"
docker rmi "$ext/admin/bench-nginx:1" "$direct/admin/bench-direct:1" >/dev/null
timed pull_nginx docker pull "$ext/admin/bench-nginx:1"
timed pull_direct docker pull "$direct/admin/bench-direct:1"

echo "dtr $("$BIN" --version | awk '{print $2}'), docker $(docker version -f '{{.Server.Version}}'), $(nproc) CPUs, image of $SIZE_MB MB (one layer, random data)"
printf '%-6s %10s %10s %8s\n' "" "nginx (s)" "direct (s)" "ratio"
printf '%-6s %10s %10s %8s\n' push "$push_nginx" "$push_direct" "$(awk -v a="$push_nginx" -v b="$push_direct" 'BEGIN { printf "%.2f", a / b }')"
printf '%-6s %10s %10s %8s\n' pull "$pull_nginx" "$pull_direct" "$(awk -v a="$pull_nginx" -v b="$pull_direct" 'BEGIN { printf "%.2f", a / b }')"
