#!/usr/bin/env bash
# `make airflow`: the Airflow UI (api-server, scheduler, dag-processor, triggerer) against the sandbox.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
export PATH="$PWD/.venv/bin:$PATH"  # standalone starts its components as `airflow ...` subprocesses
export AIRFLOW_HOME="${AIRFLOW_HOME:-$PWD/data/airflow_home}"
export CAREFABRIC_SANDBOX="${CAREFABRIC_SANDBOX:-1}"  # the sandbox PHI token key is allowed here only
# Everything created from here on (store, metadata DB, connections file, generated passwords) is
# owner-only; files an older run left world-readable are tightened too.
umask 077
mkdir -p "$AIRFLOW_HOME"
chmod -R go-rwx "$AIRFLOW_HOME" data/*.db 2>/dev/null || true
# Listen on this machine only unless told otherwise (AIRFLOW_HOST=0.0.0.0 make airflow).
export AIRFLOW__API__HOST="${AIRFLOW_HOST:-127.0.0.1}" AIRFLOW__API__PORT="${AIRFLOW_PORT:-8080}"
$PY -m sandbox start
$PY tools/airflow_ui_setup.py
echo "Airflow UI: http://$AIRFLOW__API__HOST:$AIRFLOW__API__PORT  (users admin, operator, viewer; passwords"
echo "  printed by Airflow in $AIRFLOW_HOME/simple_auth_manager_passwords.json.generated, mode 0600)"
# OpenLineage events of every task and run, one JSON line each, in data/lineage/openlineage.jsonl
eval "$($PY tools/openlineage_sandbox.py "${CAREFABRIC_DATA_DIR:-$PWD/data}")"
export AIRFLOW__CORE__DAGS_FOLDER="$PWD/dags" AIRFLOW__CORE__PLUGINS_FOLDER="$PWD/plugins" AIRFLOW__CORE__LOAD_EXAMPLES=False
# Console roles (see README): viewer reads; operator (Airflow role USER: may trigger DAG runs) acts.
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS:-admin:admin,operator:user,viewer:viewer}"
( sleep 25; f="$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"; [ -f "$f" ] && chmod 600 "$f" && echo "logins: $(cat "$f")" ) &
exec .venv/bin/airflow standalone
