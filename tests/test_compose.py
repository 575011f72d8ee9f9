"""The production compose file: valid for Docker Compose, secrets required, every service checked.

``docker compose config -q`` (or Debian's ``docker-compose``) is the validator where one is
installed; without it those tests skip with the reason. The rules that need no Docker (no secret
with a default, a health check on every long-running service, the production auth manager,
Airflow's metrics) are read from the YAML itself, so they hold on every machine.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

PROJECT = Path(__file__).resolve().parents[1]
COMPOSE = PROJECT / "docker-compose.yaml"
# Every secret the deployment needs; each must make `config` fail when unset.
SECRETS = ("AIRFLOW_FERNET_KEY", "AIRFLOW_SECRET_KEY", "AIRFLOW_JWT_SECRET", "AIRFLOW_DB_PASSWORD",
           "CAREFABRIC_DB_PASSWORD", "KEYCLOAK_DB_PASSWORD", "REDIS_PASSWORD", "KEYCLOAK_ADMIN_PASSWORD",
           "KEYCLOAK_CLIENT_SECRET", "CAREFABRIC_TOKEN_KEY")
ONE_SHOT = {"airflow-init"}  # a job the others wait for (service_completed_successfully)


def compose_command() -> list[str] | None:
    """``docker compose`` (v2 plugin) if it answers, else ``docker-compose``, else None."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


needs_compose = pytest.mark.skipif(
    compose_command() is None,
    reason="neither `docker compose` (plugin) nor `docker-compose` is installed (apt-get install docker-compose)")


def run_config(env_secrets: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in SECRETS and not k.startswith("COMPOSE_")}
    env.update(env_secrets)
    cmd = compose_command()
    assert cmd
    return subprocess.run([*cmd, "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True,
                          env=env, cwd=PROJECT, timeout=120)


def secrets() -> dict[str, str]:
    return {name: f"test-{name.lower().replace('_', '-')}" for name in SECRETS}


def compose() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text()))


@needs_compose
def test_config_is_valid_with_every_secret_set() -> None:
    result = run_config(secrets())
    assert result.returncode == 0, result.stderr


@needs_compose
@pytest.mark.parametrize("missing", ["AIRFLOW_FERNET_KEY", "REDIS_PASSWORD"])
def test_config_refuses_to_render_without_a_secret(missing: str) -> None:
    # one run per secret would cost a second each; the syntax that makes the others required is
    # the same and test_no_secret_has_a_default reads it for every one
    given = {k: v for k, v in secrets().items() if k != missing}
    result = run_config(given)
    assert result.returncode != 0
    assert missing in result.stderr, result.stderr


def test_no_secret_has_a_default() -> None:
    text = COMPOSE.read_text()
    defaulted = re.findall(r"\$\{(\w*(?:PASSWORD|SECRET|KEY)):?-", text)
    assert defaulted == []
    required = set(re.findall(r"\$\{(\w+):\?", text))
    assert required == set(SECRETS)
    # and no password is written out in a connection URL
    assert not re.search(r"://\w+:(?!\$\{)[^@/\s]+@", text)


def test_every_long_running_service_has_a_health_check() -> None:
    services = compose()["services"]
    assert {"airflow-worker", "airflow-triggerer", "airflow-dag-processor", "airflow-scheduler",
            "airflow-apiserver", "postgres", "redis"} <= set(services)
    missing = [name for name, svc in services.items() if name not in ONE_SHOT and not svc.get("healthcheck", {}).get("test")]
    assert missing == []
    for name in ONE_SHOT:  # the others start only once the job has succeeded
        waiting = [n for n, svc in services.items() if (svc.get("depends_on") or {}).get(name, {}).get("condition")
                   == "service_completed_successfully"]
        assert "airflow-scheduler" in waiting and "airflow-worker" in waiting


def test_production_auth_manager_and_airflow_metrics() -> None:
    env = compose()["x-airflow-common"]["environment"]
    assert "SimpleAuthManager" not in env["AIRFLOW__CORE__AUTH_MANAGER"]
    assert env["AIRFLOW__CORE__AUTH_MANAGER"].endswith("KeycloakAuthManager")
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__METRICS__STATSD_ON"] == "true"
    services = compose()["services"]
    assert env["AIRFLOW__METRICS__STATSD_HOST"] in services
    # the auth manager the compose names is importable with our pins (FAB is not)
    module, _, cls = env["AIRFLOW__CORE__AUTH_MANAGER"].rpartition(".")
    assert hasattr(__import__(module, fromlist=[cls]), cls)


def test_files_the_compose_mounts_exist() -> None:
    for svc in compose()["services"].values():
        for volume in svc.get("volumes", []):
            source = str(volume).split(":", 1)[0]
            if source.startswith("./") and source != "./logs":  # Docker creates the log folder
                assert (PROJECT / source).exists(), source
