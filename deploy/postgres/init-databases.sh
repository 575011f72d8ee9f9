#!/usr/bin/env bash
# Runs once, on the first start of the postgres container of docker-compose.yaml (empty data
# volume): the carefabric store and Keycloak each get their own role and database, so neither can
# read Airflow's metadata (connections) nor each other's tables. Passwords come from the
# environment the compose file requires; they are passed as psql variables, never as SQL text.
set -euo pipefail
: "${CAREFABRIC_DB_PASSWORD:?}" "${KEYCLOAK_DB_PASSWORD:?}"
for name in carefabric keycloak; do
  var="$(echo "$name" | tr '[:lower:]' '[:upper:]')_DB_PASSWORD"
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v role="$name" -v password="${!var}" <<'SQL'
CREATE ROLE :"role" LOGIN PASSWORD :'password';
CREATE DATABASE :"role" OWNER :"role";
REVOKE ALL ON DATABASE :"role" FROM PUBLIC;
SQL
done
