#!/usr/bin/env bash
# Makes sure a Docker engine in swarm mode answers on this machine (what dtr and its tests
# drive), installing what is missing on a fresh Debian machine:
#   - packages docker.io, debootstrap, curl, openssl (apt-get, when absent; needs root)
#   - dockerd started in the background when `docker info` does not answer (log:
#     /var/log/dtr-dockerd.log); it lives as long as this machine session
#   - `docker swarm init --advertise-addr 127.0.0.1` when the engine is not in a swarm
# Safe to run again: it changes nothing when everything is already there.
set -euo pipefail

missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)  # a docker client alone is not enough
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
  if [ -n "${DOCKER_HOST:-}" ]; then
    echo "DOCKER_HOST=$DOCKER_HOST does not answer; not starting a local dockerd" >&2
    exit 1
  fi
  echo "starting dockerd (log: /var/log/dtr-dockerd.log)"
  nohup setsid dockerd >/var/log/dtr-dockerd.log 2>&1 < /dev/null &
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  docker info >/dev/null 2>&1 || { tail -n 20 /var/log/dtr-dockerd.log >&2; echo "dockerd did not come up" >&2; exit 1; }
fi

state=$(docker info -f '{{.Swarm.LocalNodeState}}')
if [ "$state" != active ]; then
  echo "initialising a single-node swarm (docker swarm init --advertise-addr 127.0.0.1)"
  docker swarm init --advertise-addr 127.0.0.1 >/dev/null
fi
echo "docker engine $(docker version -f '{{.Server.Version}}') ready, swarm node $(docker info -f '{{.Name}}')"
