#!/bin/bash
# nginx of replica $DTR_REPLICA_ID: renders /etc/nginx/dtr.conf.template (replica id, the
# host's HTTPS port for redirects, LOG_LEVEL) and runs nginx in the foreground.
set -euo pipefail
. /usr/local/lib/dtr/lib.sh

dtr_check_replica_id
dtr_refuse_if_removed
dtr_require_env DTR_HTTPS_PORT
[[ $DTR_HTTPS_PORT =~ ^[0-9]+$ ]] || dtr_die "DTR_HTTPS_PORT '$DTR_HTTPS_PORT' is not a port number"
dtr_require_files /ca/ca.pem /ca/external/cert.pem /ca/external/key.pem /ca/external/ca.pem \
  /ca/nginx/cert.pem /ca/nginx/key.pem
https_suffix=":$DTR_HTTPS_PORT"
[ "$DTR_HTTPS_PORT" = 443 ] && https_suffix=
case "$(dtr_level)" in
  fatal) level=crit ;;
  *) level=$(dtr_level) ;;
esac

sed -e "s/@REPLICA_ID@/$DTR_REPLICA_ID/g" -e "s/@HTTPS_SUFFIX@/$https_suffix/g" \
  -e "s/@ERROR_LOG_LEVEL@/$level/g" /etc/nginx/dtr.conf.template > /run/dtr/nginx.conf
exec nginx -c /run/dtr/nginx.conf -e stderr -g 'daemon off;' "$@"
