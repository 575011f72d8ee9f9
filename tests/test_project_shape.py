"""The project's promises about its own shape: production compose, Airflow settings, commands."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))


def test_compose_describes_the_production_shape() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())
    services = compose["services"]
    for name in ("postgres", "redis", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
                 "airflow-triggerer", "airflow-worker", "airflow-init"):
        assert name in services, name
    env = services["airflow-scheduler"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql")
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
    assert services["airflow-worker"]["command"] == "celery worker"
    assert env["CAREFABRIC_DB_URL"].startswith("postgresql")


def test_airflow_settings_cover_every_peer(tmp_path: Path) -> None:
    from airflow_runtime import SETTINGS_FILE, settings_to_import_files

    conn_file, var_file = settings_to_import_files(SETTINGS_FILE, tmp_path)
    connections = json.loads(conn_file.read_text())
    assert {"payer_sftp", "billing_api", "erp_api", "finance_smtp"} <= set(connections)
    assert connections["payer_sftp"]["conn_type"] == "sftp"
    assert json.loads(var_file.read_text())["carefabric_posting_mode"] in ("summary", "detail")


def test_sftp_host_key_is_pinned_once_the_sandbox_has_one(tmp_path: Path) -> None:
    import paramiko
    from airflow_runtime import SETTINGS_FILE, settings_to_import_files

    key = paramiko.RSAKey.generate(2048)
    key.write_private_key_file(str(tmp_path / "sftp_host_key"))
    conn_file, _ = settings_to_import_files(SETTINGS_FILE, tmp_path / "out", sandbox_dir=tmp_path)
    extra = json.loads(json.loads(conn_file.read_text())["payer_sftp"]["extra"])
    assert extra["host_key"] == f"ssh-rsa {key.get_base64()}"
    assert extra["no_host_key_check"] is False


def test_readme_and_ci_keep_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci
    makefile = (ROOT / "Makefile").read_text()
    assert "demo:" in makefile and "test:" in makefile and "bench:" in makefile
