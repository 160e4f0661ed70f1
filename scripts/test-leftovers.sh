#!/usr/bin/env bash
# Removes what an earlier test run left on this engine when it was cut short (killed at a
# timeout, the machine restarted mid-run): exactly the objects the tests wrote down in their
# ledger (crates/dtr/tests/it/common/ledger.rs) and nothing else — a replica's containers,
# volumes and seed secrets by its com.docker.dtr.replica label, the dtr-ol / dtr-br networks
# only when that replica's test made them and no DTR container is left, a test's own volume
# by name. Run by scripts/test.sh before the tests; by hand: bash scripts/test-leftovers.sh
set -euo pipefail
ledger=${DTR_TEST_LEDGER:-/var/tmp/dtr-tests/ledger}
[ -s "$ledger" ] || exit 0
networks=kept
while read -r kind name extra; do
  case "$kind" in
    replica)
      label="label=com.docker.dtr.replica=$name"
      count=0
      for c in $(docker ps -aq --filter "$label"); do docker rm -f -v "$c" >/dev/null; count=$((count + 1)); done
      for v in $(docker volume ls -q --filter "$label"); do docker volume rm -f "$v" >/dev/null; count=$((count + 1)); done
      for s in $(docker secret ls -q --filter "$label" 2>/dev/null); do docker secret rm "$s" >/dev/null; count=$((count + 1)); done
      [ "$count" = 0 ] || echo "test-leftovers: removed $count objects the tests' replica $name left"
      [ "$extra" = made ] && networks=made
      ;;
    volume)
      if docker volume inspect "$name" >/dev/null 2>&1; then
        docker volume rm -f "$name" >/dev/null
        echo "test-leftovers: removed the tests' volume $name"
      fi
      ;;
  esac
done < "$ledger"
if [ "$networks" = made ] && [ -z "$(docker ps -aq --filter label=com.docker.dtr.managed=true)" ]; then
  for n in dtr-ol dtr-br; do
    if [ "$(docker network inspect -f '{{index .Labels "com.docker.dtr.managed"}}' "$n" 2>/dev/null)" = true ]; then
      docker network rm "$n" >/dev/null && echo "test-leftovers: removed the network $n"
    fi
  done
fi
: > "$ledger"
