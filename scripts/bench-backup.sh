#!/usr/bin/env bash
# Backup/restore benchmark on the local engine: install one replica, load it with metadata
# (repositories of 100 tags each, plus one audit event per tag) for each size given, then time
# `dtr backup` and `dtr restore` (after a destroy) and read the bootstrapper's peak RSS with
# GNU time. Prints one line per size.
#
#   scripts/bench-backup.sh [TAGS ...]      (default: 10000 100000)
#
# Needs the images (scripts/build-images.sh) and no DTR cluster on the engine.
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@")
[ ${#sizes[@]} -eq 0 ] && sizes=(10000 100000)
[ -x /usr/bin/time ] || { echo "needs GNU time (apt-get install time)" >&2; exit 1; }
cargo build --release --locked --bin dtr >/dev/null 2>&1
BIN=$(pwd)/target/release/dtr
DTR_ADMIN_PASSWORD=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
export DTR_ADMIN_PASSWORD
tmp=$(mktemp -d /tmp/dtr-bench-backup.XXXXXX)
id=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
https=$((30000 + RANDOM % 10000)) http=$((40000 + RANDOM % 10000))
cleanup() {
  "$BIN" destroy --replica-id "$id" </dev/null >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT
now() { date +%s.%N; }
ports=(--replica-https-port "$https" --replica-http-port "$http")

# measure OUT LOG CMD...: runs CMD (stdin/stdout as the caller redirects them), its stderr to
# LOG, and writes "<elapsed seconds> <peak RSS KiB>" to OUT
measure() {
  local out=$1 log=$2; shift 2
  local start; start=$(now)
  /usr/bin/time -f 'peak-rss-kib %M' "$@" 2>"$log"
  echo "$(echo "$(now) - $start" | bc) $(awk '/peak-rss-kib/ {print $2}' "$log")" >"$out"
}

printf '%-8s %-10s %-12s %-14s %-12s %-14s\n' tags dump-bytes backup-s backup-rss-MiB restore-s restore-rss-MiB
for tags in "${sizes[@]}"; do
  "$BIN" install --replica-id "$id" "${ports[@]}" </dev/null >"$tmp/install.log" 2>&1 \
    || { cat "$tmp/install.log" >&2; exit 1; }
  repos=$(( (tags + 99) / 100 ))
  docker exec "dtr-rethinkdb-$id" psql -XqAt -v ON_ERROR_STOP=1 -d dtr -c "
    INSERT INTO repositories (namespace, name, visibility)
      SELECT 'admin', 'repo' || r, 'private' FROM generate_series(1, $repos) r;
    INSERT INTO tags (repository_id, name, digest, media_type, size, author)
      SELECT r.id, 'tag' || t, 'sha256:' || md5(r.id || '-' || t) || md5(t || '-' || r.id),
             'application/vnd.docker.distribution.manifest.v2+json', 1000 + t, 'admin'
      FROM repositories r, generate_series(1, 100) t
      WHERE (r.id - 1) * 100 + t <= $tags;
    INSERT INTO events (actor, action, object, detail)
      SELECT 'admin', 'tag.push', 'admin/repo' || repository_id || ':' || name, '{}'::jsonb FROM tags;" >/dev/null
  measure "$tmp/backup.m" "$tmp/backup.log" "$BIN" backup --existing-replica-id "$id" \
    </dev/null >"$tmp/backup.tar"
  read -r bsecs brss <"$tmp/backup.m"
  dump=$(tar -xOf "$tmp/backup.tar" "dtr-backup-v$("$BIN" --version | awk '{print $2}')/db/dtr.dump" | wc -c)
  "$BIN" destroy --replica-id "$id" </dev/null >/dev/null 2>&1
  measure "$tmp/restore.m" "$tmp/restore.log" "$BIN" restore --replica-id "$id" "${ports[@]}" \
    --dtr-use-default-storage <"$tmp/backup.tar" >/dev/null
  read -r rsecs rrss <"$tmp/restore.m"
  grep -q "Restored:.* $tags tags" "$tmp/restore.log" || { cat "$tmp/restore.log" >&2; exit 1; }
  printf '%-8s %-10s %-12.1f %-14.1f %-12.1f %-14.1f\n' "$tags" "$dump" "$bsecs" "$(echo "$brss / 1024" | bc -l)" \
    "$rsecs" "$(echo "$rrss / 1024" | bc -l)"
  "$BIN" destroy --replica-id "$id" </dev/null >/dev/null 2>&1
done
