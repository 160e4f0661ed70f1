#!/usr/bin/env bash
# Builds the nine images of this version from this repository:
#   registry/dtr-<component>:<version> for the eight components, and registry/dtr:<version>.
#
#   scripts/build-images.sh [--if-missing] [--skip-binary] [--test-version V] [TARGET...]
#
#   --if-missing      build only the images the engine does not have yet from this source
#                     (each image is labelled com.docker.dtr.source with the tree it was
#                     built from: HEAD's tree and a hash of the uncommitted changes)
#   --skip-binary     reuse build/dtr instead of running `cargo build --release`
#   --test-version V  the upgrade tests' second version: the binary compiled with
#                     DTR_TEST_VERSION=V (V must be X.Y.Z-test[.N], build.rs checks), into
#                     build/dtr-V, and the nine images tagged V (docs/operations/upgrade.md)
#   TARGET...         only these Dockerfile targets (default: all nine)
#
# Makes the debian:bookworm-slim base image first when it is absent (scripts/base-image.sh).
# The bootstrapper of this version is also tagged registry/dtr:latest (not with --test-version).
# Prints the time each target took.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=$(sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -n1)
ALL=(etcd rethinkdb nginx registry notary-server notary-signer api jobrunner dtr)
IF_MISSING=0
SKIP_BINARY=0
TEST_VERSION=
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --if-missing) IF_MISSING=1 ;;
    --skip-binary) SKIP_BINARY=1 ;;
    --test-version) TEST_VERSION=${2:?--test-version needs a version}; shift ;;
    -h | --help) sed -n '2,12p' "$0"; exit 0 ;;
    -*) echo "unknown option: $1" >&2; exit 2 ;;
    *) targets+=("$1") ;;
  esac
  shift
done
[ ${#targets[@]} -gt 0 ] || targets=("${ALL[@]}")
BINARY=build/dtr
if [ -n "$TEST_VERSION" ]; then
  VERSION=$TEST_VERSION
  BINARY=build/dtr-$TEST_VERSION
fi

# `docker run registry/dtr <command>` without a tag, as operators type the original's
# (`docker/dtr` = latest): the bootstrapper of this version is also `registry/dtr:latest`.
# Not for the test version, which must never be picked up by accident.
tag_latest() {
  if [ -z "$TEST_VERSION" ] && docker image inspect "registry/dtr:$VERSION" >/dev/null 2>&1; then
    docker tag "registry/dtr:$VERSION" registry/dtr:latest
    echo "tagged registry/dtr:$VERSION as registry/dtr:latest"
  fi
}
# what the images are built from: an image of another tree is rebuilt even with --if-missing
# (the upgrade tests' second version must run this checkout's code, not an older one)
source_id() {
  if git rev-parse --git-dir >/dev/null 2>&1; then
    printf '%s-%s' "$(git rev-parse 'HEAD^{tree}')" "$(git diff HEAD | sha256sum | cut -c1-12)"
  else
    echo unknown
  fi
}
SOURCE=$(source_id)
tag_of() { if [ "$1" = dtr ]; then echo "registry/dtr:$VERSION"; else echo "registry/dtr-$1:$VERSION"; fi; }
needs_binary() { case "$1" in api | jobrunner | dtr | registry | notary-server | notary-signer) return 0 ;; *) return 1 ;; esac; }

todo=()
for t in "${targets[@]}"; do
  case " ${ALL[*]} " in *" $t "*) ;; *) echo "unknown target '$t' (one of: ${ALL[*]})" >&2; exit 2 ;; esac
  if [ "$IF_MISSING" = 1 ] && [ "$SOURCE" != unknown ] &&
    [ "$(docker image inspect -f '{{index .Config.Labels "com.docker.dtr.source"}}' "$(tag_of "$t")" 2>/dev/null)" = "$SOURCE" ]; then
    echo "$(tag_of "$t") present, built from this source"
    continue
  fi
  todo+=("$t")
done
[ ${#todo[@]} -gt 0 ] || { tag_latest; exit 0; }

bash scripts/base-image.sh

binary=0
for t in "${todo[@]}"; do needs_binary "$t" && binary=1; done
mkdir -p build
if [ "$binary" = 1 ]; then
  if [ "$SKIP_BINARY" = 0 ] || [ ! -x "$BINARY" ]; then
    if [ -n "$TEST_VERSION" ]; then
      echo "building the dtr binary as test version $TEST_VERSION (DTR_TEST_VERSION, cargo build --release --locked)"
      DTR_TEST_VERSION=$TEST_VERSION cargo build --release --locked --bin dtr
    else
      echo "building the dtr binary (cargo build --release --locked)"
      cargo build --release --locked --bin dtr
    fi
    install -m 0755 target/release/dtr "$BINARY"
  fi
else
  # the classic builder reads the context even for targets that do not copy the binary
  [ -e "$BINARY" ] || : > "$BINARY"
fi

total_start=$(date +%s.%N)
for t in "${todo[@]}"; do
  start=$(date +%s.%N)
  log=$(mktemp /tmp/dtr-build-"$t".XXXXXX)
  if ! DOCKER_BUILDKIT=0 docker build --target "$t" --build-arg DTR_VERSION="$VERSION" --build-arg DTR_BINARY="$BINARY" \
      --label "com.docker.dtr.source=$SOURCE" -t "$(tag_of "$t")" . >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "building $(tag_of "$t") failed (full log: $log)" >&2
    exit 1
  fi
  rm -f "$log"
  printf 'built %-36s in %6.1f s\n' "$(tag_of "$t")" "$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN{print b-a}')"
done
printf 'all built in %.1f s\n' "$(awk -v a="$total_start" -v b="$(date +%s.%N)" 'BEGIN{print b-a}')"
tag_latest
