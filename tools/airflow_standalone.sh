#!/usr/bin/env bash
# `make airflow`: the Airflow UI (api-server, scheduler, dag-processor, triggerer) against the sandbox.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
export PATH="$PWD/.venv/bin:$PATH"  # standalone starts its components as `airflow ...` subprocesses
export AIRFLOW_HOME="${AIRFLOW_HOME:-$PWD/data/airflow_home}"
$PY -m sandbox start
$PY tools/airflow_ui_setup.py
echo "Airflow UI: http://localhost:8080  (user admin; password printed by Airflow in"
echo "  $AIRFLOW_HOME/simple_auth_manager_passwords.json.generated once it has started)"
export AIRFLOW__CORE__DAGS_FOLDER="$PWD/dags" AIRFLOW__CORE__PLUGINS_FOLDER="$PWD/plugins" AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="admin:admin"
( sleep 25; f="$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"; [ -f "$f" ] && echo "admin login: $(cat "$f")" ) &
exec .venv/bin/airflow standalone
