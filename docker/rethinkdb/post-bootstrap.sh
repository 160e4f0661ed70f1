#!/bin/bash
# Patroni's post_bootstrap: runs once, on the member that initialised the cluster, with the
# superuser connection string as $1. Creates the roles (LOGIN, no password: they log in with
# client certificates), their databases and the notary schemas (owned by the notary roles).
set -euo pipefail
conn=$1
psql=(psql -X -q -v ON_ERROR_STOP=1)
"${psql[@]}" -d "$conn" <<'SQL'
CREATE ROLE dtr LOGIN;
CREATE ROLE notaryserver LOGIN;
CREATE ROLE notarysigner LOGIN;
CREATE DATABASE dtr OWNER dtr;
CREATE DATABASE notaryserver OWNER notaryserver;
CREATE DATABASE notarysigner OWNER notarysigner;
REVOKE ALL ON DATABASE dtr, notaryserver, notarysigner FROM PUBLIC;
SQL
# the schema objects belong to the role the service logs in as
for db in notaryserver notarysigner; do
  "${psql[@]}" -d "$conn" -c "\\connect $db" -c "SET ROLE $db" -f "/usr/local/share/dtr/sql/$db.sql"
done
