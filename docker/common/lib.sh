# Shared by the component entrypoints (sourced, never run): logging, input checks,
# LOG_LEVEL normalisation and proxy exclusions. See docs/components.md.

dtr_log() { printf '%s %s: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${0##*/}" "$*" >&2; }
dtr_die() { dtr_log "error: $*"; exit 1; }

# dtr_require_env VAR... : every named variable is set and not empty
dtr_require_env() {
  local v
  for v in "$@"; do
    [ -n "${!v:-}" ] || dtr_die "environment variable $v is not set (the install plan sets it)"
  done
}

# dtr_require_files FILE... : every file is readable by this container's user
dtr_require_files() {
  local f
  for f in "$@"; do
    [ -r "$f" ] || dtr_die "$f is missing or not readable by uid $(id -u) (is the dtr-ca volume mounted at /ca?)"
  done
}

# dtr_check_replica_id: the id is used in host names and generated configs
dtr_check_replica_id() {
  dtr_require_env DTR_REPLICA_ID
  [[ $DTR_REPLICA_ID =~ ^[0-9a-f]{12}$ ]] || dtr_die "DTR_REPLICA_ID '$DTR_REPLICA_ID' is not 12 lower-case hex digits"
}

# dtr_refuse_if_removed: `dtr emergency-repair` made another replica the whole cluster and
# left /ca/tombstone.json in this replica's dtr-ca volume. Its members must never start
# again: with the other stale replicas they could form a second cluster (split brain).
dtr_refuse_if_removed() {
  if [ -e /ca/tombstone.json ]; then
    dtr_log "error: this replica no longer belongs to a cluster: $(tr -d '\n' < /ca/tombstone.json)"
    dtr_die "it must not start again; remove it with: dtr destroy --replica-id ${DTR_REPLICA_ID:-<id>}"
  fi
}

# dtr_check_hosts VAR... : each variable holds host[:port][,host[:port]...] without odd characters
dtr_check_hosts() {
  local v
  for v in "$@"; do
    dtr_require_env "$v"
    [[ ${!v} =~ ^[A-Za-z0-9.-]+(:[0-9]+)?(,[A-Za-z0-9.-]+(:[0-9]+)?)*$ ]] || dtr_die "$v='${!v}' is not a host[:port] list"
  done
}

# dtr_level: LOG_LEVEL as one of debug, info, warn, error, fatal (default info)
dtr_level() {
  case "${LOG_LEVEL:-info}" in
    debug | info | warn | error | fatal) printf '%s\n' "${LOG_LEVEL:-info}" ;;
    warning) echo warn ;;
    *) dtr_log "warning: unknown LOG_LEVEL '${LOG_LEVEL}', using info"; echo info ;;
  esac
}

# dtr_no_proxy HOST... : when the user set a proxy, keep the stack's own traffic off it
# (grpc-go and Go's net/http honour HTTPS_PROXY; curl in dtr-health uses --noproxy).
dtr_no_proxy() {
  if [ -n "${HTTP_PROXY:-}${HTTPS_PROXY:-}${http_proxy:-}${https_proxy:-}" ]; then
    local list
    list=$(IFS=,; echo "localhost,127.0.0.1,::1,$*")
    export NO_PROXY="${NO_PROXY:+$NO_PROXY,}$list" no_proxy="${no_proxy:+$no_proxy,}$list"
  fi
}

# dtr_json_string VALUE: VALUE as a JSON (and YAML) double-quoted string
dtr_json_string() {
  local s=${1//\\/\\\\}
  s=${s//\"/\\\"}
  printf '"%s"' "$s"
}
