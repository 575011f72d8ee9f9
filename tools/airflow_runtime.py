"""Run carefabric's DAGs with a real Airflow on this machine.

One place for what ``make demo``, ``make airflow`` and the end-to-end tests all need: an
``AIRFLOW_HOME`` with its metadata database, the connections and variables of
``airflow_settings.yaml`` loaded into it, and DAG runs executed the way the scheduler would
(``airflow dags test``: one DagRun, every task through the task SDK, in one process).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
SETTINGS_FILE = PROJECT_ROOT / "airflow_settings.yaml"


def airflow_env(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for every Airflow command of one installation (home)."""
    env = dict(os.environ)
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            # `dags test` runs a paused DAG; paused at creation means `make airflow` after `make demo`
            # schedules nothing by itself (an operator unpauses what should run).
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": env.get("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING"),
            "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        }
    )
    env.update(extra or {})
    # OpenLineage events to a file under the data folder (tools/openlineage_sandbox.py); values set win.
    from openlineage_sandbox import sandbox_env

    from carefabric.config import data_dir

    data = Path(env["CAREFABRIC_DATA_DIR"]) if env.get("CAREFABRIC_DATA_DIR") else data_dir()
    for key, value in sandbox_env(data).items():
        env.setdefault(key, value)
    return env


def airflow(env: dict[str, str], *args: str, check: bool = True, capture: bool = True) -> subprocess.CompletedProcess[str]:
    """Run one ``airflow`` CLI command."""
    result = subprocess.run(
        [str(VENV_BIN / "airflow"), *args], env=env, text=True, capture_output=capture, check=False
    )
    if check and result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout or "").splitlines()[-30:])
        raise RuntimeError(f"airflow {' '.join(args)} failed ({result.returncode}):\n{tail}")
    return result


def ensure_metadata_db(env: dict[str, str]) -> None:
    """Create or upgrade the metadata database (idempotent)."""
    airflow(env, "db", "migrate")


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (connections carry passwords), whatever the umask."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an existing file keeps its old mode through O_CREAT
    with os.fdopen(fd, "w") as f:
        f.write(text)


def settings_to_import_files(settings_path: Path, out_dir: Path, sandbox_dir: Path | None = None) -> tuple[Path, Path]:
    """Turn ``airflow_settings.yaml`` into the JSON files ``airflow ... import`` reads.

    When the sandbox has generated its persistent SFTP host key, the SFTP connection gets it as
    ``host_key`` and host key checking on, instead of the yaml's blind trust. A connection whose
    extra names a ``sandbox_password_file`` gets that file's text as its password (the EHR
    client's private key the sandbox generated on first start).
    """
    settings = yaml.safe_load(settings_path.read_text())["airflow"]
    connections: dict[str, Any] = {}
    for conn in settings.get("connections", []):
        extra = dict(conn.get("conn_extra") or {})
        if conn["conn_type"] == "sftp" and sandbox_dir is not None and (sandbox_dir / "sftp_host_key").exists():
            import paramiko

            key = paramiko.RSAKey.from_private_key_file(str(sandbox_dir / "sftp_host_key"))
            extra["host_key"] = f"{key.get_name()} {key.get_base64()}"
            extra["no_host_key_check"] = False
        # A secret the sandbox generated (the EHR client's private key): read from its state folder.
        secret_file = extra.pop("sandbox_password_file", None)
        if secret_file and sandbox_dir is not None and (sandbox_dir / secret_file).exists():
            conn["conn_password"] = (sandbox_dir / secret_file).read_text()
        connections[conn["conn_id"]] = {
            "conn_type": conn["conn_type"],
            "host": conn.get("conn_host"),
            "port": conn.get("conn_port"),
            "login": conn.get("conn_login"),
            "password": conn.get("conn_password"),
            "schema": conn.get("conn_schema"),
            "extra": json.dumps(extra),
        }
    variables = {v["variable_name"]: v["variable_value"] for v in settings.get("variables", [])}
    out_dir.mkdir(parents=True, exist_ok=True)
    conn_file = out_dir / "connections.json"
    var_file = out_dir / "variables.json"
    _write_private(conn_file, json.dumps(connections, indent=2))
    _write_private(var_file, json.dumps(variables, indent=2))
    return conn_file, var_file


def load_settings(env: dict[str, str], sandbox_dir: Path | None = None, overrides: dict[str, dict[str, Any]] | None = None) -> None:
    """Load connections, variables and pools from ``airflow_settings.yaml`` into Airflow."""
    home = Path(env["AIRFLOW_HOME"])
    conn_file, var_file = settings_to_import_files(SETTINGS_FILE, home / "settings", sandbox_dir)
    if overrides:
        conns = json.loads(conn_file.read_text())
        for conn_id, fields in overrides.items():
            conns[conn_id].update(fields)
        _write_private(conn_file, json.dumps(conns, indent=2))
    airflow(env, "connections", "import", "--overwrite", str(conn_file))
    airflow(env, "variables", "import", "-a", "overwrite", str(var_file))
    settings = yaml.safe_load(SETTINGS_FILE.read_text())["airflow"]
    for pool in settings.get("pools", []):
        airflow(env, "pools", "set", pool["pool_name"], str(pool["pool_slot"]), pool.get("pool_description", ""))


def run_dag(env: dict[str, str], dag_id: str, logical_date: str, conf: dict[str, Any] | None = None) -> str:
    """Run one DagRun of ``dag_id`` to completion; return its final state ("success"/"failed").

    One ``airflow dags test`` process a run: ``make demo`` and the benches that quote the CLI's
    figures. Tests run many DagRuns with ``dag_test_runner.DagTestRunner`` (``dag.test()`` in one
    process per Airflow home, states read from the returned DagRun), not this.
    """
    args = ["dags", "test", dag_id, logical_date]
    if conf:
        args += ["-c", json.dumps(conf)]
    # INFO level: the run's final state is only logged there ("DagRun Finished ... state=...").
    # Deadline Alerts off under dags test: Airflow 3.3.2 fails a successful in-process run that has
    # them (see carefabric_airflow.deadlines.close_deadlines); the scheduler path keeps them.
    run_env = dict(env, AIRFLOW__LOGGING__LOGGING_LEVEL="INFO", CAREFABRIC_DEADLINE_ALERTS="off")
    result = airflow(run_env, *args, check=False)
    output = (result.stdout or "") + (result.stderr or "")
    finished = output.split("DagRun Finished")
    state = "success" if len(finished) > 1 and "state=success" in finished[-1].split("\n")[0] else "failed"
    if result.returncode != 0:
        state = "failed"
    log_dir = Path(env["AIRFLOW_HOME"]) / "dag_test_logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    (log_dir / f"{dag_id}_{logical_date}.log").write_text(output)
    return state


def dag_run_confs(env: dict[str, str], dag_id: str, run_type: str | None = None) -> list[dict[str, Any]]:
    """The conf of every run of ``dag_id`` in this installation's metadata DB (SQLite), newest first."""
    import sqlite3

    db = Path(env["AIRFLOW_HOME"]) / "airflow.db"
    query = "SELECT conf FROM dag_run WHERE dag_id = ?" + (" AND run_type = ?" if run_type else "") + " ORDER BY id DESC"
    with sqlite3.connect(db) as conn:
        rows = conn.execute(query, (dag_id, run_type) if run_type else (dag_id,)).fetchall()
    confs = []
    for (conf,) in rows:
        text = conf.decode() if isinstance(conf, bytes) else conf
        confs.append(json.loads(text) if text else {})
    return confs
