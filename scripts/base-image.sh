#!/usr/bin/env bash
# Makes the debian:bookworm-slim base image when the engine does not have it.
# No image registry is reachable here, so the base is built with debootstrap and imported.
set -euo pipefail
BASE=${DTR_BASE_IMAGE:-debian:bookworm-slim}
if docker image inspect "$BASE" >/dev/null 2>&1; then
  echo "base image $BASE present"
  exit 0
fi
if ! command -v debootstrap >/dev/null 2>&1; then
  echo "installing debootstrap"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi
dir=$(mktemp -d /tmp/dtr-base.XXXXXX)
trap 'rm -rf "$dir"' EXIT
echo "building $BASE with debootstrap (about 30 s)"
debootstrap --variant=minbase bookworm "$dir" http://deb.debian.org/debian >/dev/null
# keep the image small: the apt lists are fetched again by each build stage
rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
tar -C "$dir" -c . | docker import -c 'CMD ["bash"]' - "$BASE" >/dev/null
echo "imported $BASE"
