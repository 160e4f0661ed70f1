#!/usr/bin/env bash
# The main job on a fresh machine: a Docker engine in swarm mode (scripts/engine-up.sh), the
# nine images of this version (built when absent), then a single-replica install on the local
# engine. Extra arguments go to `dtr install`; the ports default to 8443 / 8080.
#
#   scripts/install-local.sh [dtr install flags...]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/engine-up.sh
bash scripts/build-images.sh --if-missing
cargo build --release --locked --bin dtr
args=("$@")
case " $* " in *" --replica-https-port"*) ;; *) args+=(--replica-https-port 8443) ;; esac
case " $* " in *" --replica-http-port"*) ;; *) args+=(--replica-http-port 8080) ;; esac
exec target/release/dtr install "${args[@]}"
