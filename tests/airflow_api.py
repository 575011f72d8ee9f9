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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

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


def _env(home: Path, store_url: str, port: int) -> dict[str, str]:
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
    return env


@contextmanager
def airflow_api_server(home: Path, store_url: str) -> Iterator[Server]:
    """Migrate, serialize the DAGs, start ``airflow api-server`` on a free port; stop it after."""
    port = _free_port()
    env = _env(home, store_url, port)
    for args in (["db", "migrate"], ["dags", "reserialize"]):
        subprocess.run([str(AIRFLOW), *args], env=env, check=True, capture_output=True, timeout=300)
    log = (home / "api-server.log").open("w")
    proc = subprocess.Popen([str(AIRFLOW), "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/api/v2/monitor/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("airflow api-server did not start:\n" + (home / "api-server.log").read_text()[-3000:])
            time.sleep(0.5)
        passwords = json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())
        yield Server(url=url, home=home, passwords=passwords)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
