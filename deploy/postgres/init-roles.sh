#!/bin/sh
# Run once by the postgres image when its data directory is first initialised
# (/docker-entrypoint-initdb.d), as the superuser. Two roles that cannot reach each
# other's data: the Temporal server's (it creates its own two databases in the setup job)
# and the store's (one database, which only it may connect to).
# The suite runs this same file against PostgreSQL (tests/test_deploy.py).
set -eu
: "${TEMPORAL_DB_USER:=temporal}" "${ECOKATSU_DB_USER:=eco}" "${ECOKATSU_DB_NAME:=ecokatsu}"
psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname postgres \
  -v temporal_user="$TEMPORAL_DB_USER" -v temporal_pw="$TEMPORAL_DB_PASSWORD" \
  -v store_user="$ECOKATSU_DB_USER" -v store_pw="$ECOKATSU_DB_PASSWORD" \
  -v store_db="$ECOKATSU_DB_NAME" <<'SQL'
CREATE ROLE :"temporal_user" LOGIN CREATEDB PASSWORD :'temporal_pw';
CREATE ROLE :"store_user" LOGIN PASSWORD :'store_pw';
CREATE DATABASE :"store_db" OWNER :"store_user";
REVOKE ALL ON DATABASE :"store_db" FROM PUBLIC;
SQL
