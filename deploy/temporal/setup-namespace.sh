#!/bin/sh
# One-shot job (temporalio/admin-tools), after the server is healthy: the namespace and
# every custom search attribute the workflows publish. The list below is
# domain/search_attributes.py's ALL (names and types); tests/test_deploy.py fails when the
# two differ, so a new attribute there must be added here too. (Each worker also registers
# them at start, temporal_client.ensure_search_attributes; this job makes the UI's saved
# queries work before the first worker is up.)
set -eu
addr="--address $TEMPORAL_ADDRESS"
ns=${ECOKATSU_TEMPORAL_NAMESPACE:-default}
until temporal operator cluster health $addr; do sleep 2; done
temporal operator namespace describe $addr -n "$ns" >/dev/null 2>&1 \
  || temporal operator namespace create $addr -n "$ns" --retention "${TEMPORAL_RETENTION:-30d}"
# name:type, one per line (search-attributes begin)
SEARCH_ATTRIBUTES="
EcoStage:Keyword
EcoStageEnteredAt:Datetime
EcoReminderCount:Int
EcoNeedsOperator:Bool
"
# (search-attributes end)
existing=$(temporal operator search-attribute list $addr -n "$ns" -o json)
for pair in $SEARCH_ATTRIBUTES; do
  name=${pair%%:*}
  case "$existing" in
    *"\"$name\""*) echo "search attribute $name present" ;;
    *) temporal operator search-attribute create $addr -n "$ns" --name "$name" --type "${pair##*:}" ;;
  esac
done
echo "namespace $ns and search attributes ready"
