#!/usr/bin/env bash
# The main job on a fresh machine: a Docker engine in swarm mode (scripts/engine-up.sh), the
# nine images of this version (built when absent), then a single-replica install on the local
# engine. Extra arguments go to `dtr install`; the ports default to 8443 / 8080. The admin
# password is DTR_ADMIN_PASSWORD, or a generated one kept in .dtr-admin-password.
#
#   scripts/install-local.sh [dtr install flags...]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/engine-up.sh
bash scripts/build-images.sh --if-missing
cargo build --release --locked --bin dtr
# the first administrator's password: DTR_ADMIN_PASSWORD, or generated once and kept in
# .dtr-admin-password (mode 0600, ignored by git); never printed
if [ -z "${DTR_ADMIN_PASSWORD:-}" ]; then
  if [ ! -s .dtr-admin-password ]; then
    (umask 077; od -An -N18 -tx1 /dev/urandom | tr -d ' \n' > .dtr-admin-password)
  fi
  DTR_ADMIN_PASSWORD=$(cat .dtr-admin-password)
  echo "administrator: admin, password in $(pwd)/.dtr-admin-password"
fi
export DTR_ADMIN_PASSWORD
args=("$@")
case " $* " in *" --replica-https-port"*) ;; *) args+=(--replica-https-port 8443) ;; esac
case " $* " in *" --replica-http-port"*) ;; *) args+=(--replica-http-port 8080) ;; esac
exec target/release/dtr install "${args[@]}"
