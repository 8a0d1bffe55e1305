#!/bin/sh
# One-shot job (temporalio/admin-tools), before the server starts: create the Temporal
# server's two databases if missing and bring their schemas to this image's version.
# Idempotent: run it again after upgrading the images (update-schema applies what is new).
set -eu
tool() {
  temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -p "${DB_PORT:-5432}" \
    -u "$POSTGRES_USER" --pw "$POSTGRES_PWD" "$@"
}
for db in "$DBNAME:temporal" "$VISIBILITY_DBNAME:visibility"; do
  name=${db%%:*}
  schema=/etc/temporal/schema/postgresql/v12/${db##*:}/versioned
  tool --db "$name" create || true   # "already exists" on every run after the first
  tool --db "$name" setup-schema -v 0.0 || true   # no-op once the version table exists
  tool --db "$name" update-schema -d "$schema"
done
echo "Temporal schemas are current"
