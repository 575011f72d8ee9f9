"""A real Airflow API server for console tests: its own AIRFLOW_HOME, metadata DB, SimpleAuthManager
users (viewer, operator, admin with Airflow's generated passwords), the project's plugins and the
``exception_replay`` DAG serialized, serving a given carefabric store.

Started as a subprocess (``airflow api-server``) so the console is tested exactly as Airflow
mounts it, with Airflow's own login, tokens and REST API.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

PROJECT = Path(__file__).resolve().parents[1]
AIRFLOW = Path(sys.executable).parent / "airflow"
USERS = {"viewer": "viewer", "operator": "user", "admin": "admin"}  # user -> SimpleAuthManager role


@dataclass
class Server:
    url: str
    home: Path
    passwords: dict[str, str]

    def token(self, user: str) -> str:
        """A real login: POST /auth/token with the generated password."""
        r = httpx.post(f"{self.url}/auth/token", json={"username": user, "password": self.passwords[user]}, timeout=30)
        r.raise_for_status()
        return r.json()["access_token"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(home: Path, store_url: str, port: int, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:{r}" for u, r in USERS.items()),
        "AIRFLOW__API_AUTH__JWT_SECRET": "carefabric-test-" + "x" * 48,
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "CAREFABRIC_DB_URL": store_url,
        "PATH": f"{AIRFLOW.parent}{os.pathsep}{env.get('PATH', '')}",
    })
    env.update(extra or {})
    return env


@contextmanager
def airflow_api_server(home: Path, store_url: str, *, extra_env: dict[str, str] | None = None,
                       prepare: Callable[[dict[str, str]], None] | None = None,
                       scheduler: bool = False) -> Iterator[Server]:
    """Migrate, serialize the DAGs, start ``airflow api-server`` on a free port; stop it after.

    ``prepare(env)`` runs after the migration (connections, pools, unpausing); ``scheduler`` also
    starts ``airflow scheduler`` (LocalExecutor, tasks through this api-server's execution API),
    so runs triggered through the REST API really run."""
    port = _free_port()
    env = _env(home, store_url, port, extra_env)
    for args in (["db", "migrate"], ["dags", "reserialize"]):
        subprocess.run([str(AIRFLOW), *args], env=env, check=True, capture_output=True, timeout=300)
    if prepare is not None:
        prepare(env)
    log = (home / "api-server.log").open("w")
    proc = subprocess.Popen([str(AIRFLOW), "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    others: list[subprocess.Popen[bytes]] = []
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300  # a loaded 2-core machine: the first start takes minutes
        while True:
            try:
                if httpx.get(f"{url}/api/v2/monitor/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("airflow api-server did not start:\n" + (home / "api-server.log").read_text()[-3000:])
            time.sleep(0.5)
        if scheduler:
            with (home / "scheduler.log").open("w") as sched_log:
                others.append(subprocess.Popen([str(AIRFLOW), "scheduler"], env=env, stdout=sched_log,
                                               stderr=subprocess.STDOUT))
        passwords = json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())
        yield Server(url=url, home=home, passwords=passwords)
    finally:
        for child in [*others, proc]:
            _stop(child)
        log.close()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@contextmanager
def console_day_server(root: Path) -> Iterator[tuple[Server, dict[str, Any]]]:
    """``test_console.build_day``'s store under ``root``, served by a real api-server of its own
    (the console-through-Airflow tests' module fixture)."""
    import pytest
    from test_console import build_day

    with pytest.MonkeyPatch.context() as mp:
        day = build_day(root, mp)
    home = root / "airflow_home"
    home.mkdir()
    with airflow_api_server(home, day["url"]) as srv:
        yield srv, day
