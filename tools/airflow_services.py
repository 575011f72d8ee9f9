"""Airflow's long-running components on this machine, the way a deployment runs them.

``tools/bench_scheduler.py`` needs what ``airflow dags test`` skips: an api-server (the REST API
and the Execution API the task runners report to), a scheduler, a dag-processor, a triggerer and,
for the CeleryExecutor, ``airflow celery worker`` processes, all against one PostgreSQL metadata
database. Each component is started in its own process group (``start_new_session``) so that
stopping it also stops the task processes it forked (LocalExecutor workers, Celery pool
children, the api-server's uvicorn workers): nothing is left running after the bench.

Every port is a free one picked here (the api-server, each log server), so the bench never
collides with ``make airflow`` or another engineer's run on the same machine.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

AIRFLOW = Path(sys.executable).parent / "airflow"
TERMINAL = {"success", "failed"}
BENCH_USER = "bench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Component:
    """One started component: its process (the leader of its own process group) and log file."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class Deployment:
    """Environment and processes of one Airflow installation started by the bench."""

    env: dict[str, str]
    home: Path
    api_url: str
    password: str
    components: list[Component] = field(default_factory=list)

    def start(self, name: str, *args: str, extra_env: dict[str, str] | None = None) -> Component:
        log = self.home / "logs" / f"{name}.out"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "wb") as out:  # the child keeps its own descriptor
            proc = subprocess.Popen([str(AIRFLOW), *args], env={**self.env, **(extra_env or {})}, stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        component = Component(name, proc, log)
        self.components.append(component)
        return component

    def check_alive(self) -> None:
        dead = [c for c in self.components if not c.alive()]
        if dead:
            c = dead[0]
            raise RuntimeError(f"airflow {c.name} exited ({c.proc.returncode}); last lines of {c.log}:\n{c.tail()}")

    def stop(self, grace: float = 30.0) -> None:
        """SIGTERM every process group, then SIGKILL what is still there after ``grace`` seconds."""
        for c in self.components:
            _signal_group(c.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for c in self.components:
            try:
                c.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for c in self.components:  # the group too: a leader gone early may leave children
            _signal_group(c.proc.pid, signal.SIGKILL)
            if c.proc.poll() is None:
                c.proc.wait(timeout=10)
        self.components.clear()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def deployment_env(base_env: dict[str, str], home: Path, *, metadata_url: str, executor: str,
                   api_port: int, broker_url: str | None = None, queue: str | None = None,
                   schedules: bool = False, preload: bool = True) -> dict[str, str]:
    """Airflow configuration shared by every component (they must agree on DB, secrets, API)."""
    env = dict(base_env)
    env.update({
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_url,
        "AIRFLOW__CORE__EXECUTOR": executor,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(48),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{BENCH_USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        # The bench's business date is fixed (the generator's day), the clock is not: clock- and
        # asset-driven runs would close "yesterday" in the middle of the measurement. Runs come
        # from the REST API only, unless the caller asks for the DAGs' own schedules.
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "True" if schedules else "False",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
    })
    # The key the connections were imported with (Airflow would otherwise write its own into airflow.cfg).
    env.setdefault("AIRFLOW__CORE__FERNET_KEY", fernet_key())
    if broker_url:
        env["AIRFLOW__CELERY__BROKER_URL"] = broker_url
        env["AIRFLOW__CELERY__RESULT_BACKEND"] = "db+" + metadata_url
        if preload:  # heavy imports once per worker, not once per task (as docker-compose.yaml)
            env["AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS"] = "carefabric_airflow.celery_config.CELERY_CONFIG"
    if queue:
        env["AIRFLOW__OPERATORS__DEFAULT_QUEUE"] = queue
    return env


def fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


@contextmanager
def running_deployment(env: dict[str, str], home: Path, *, workers: int = 0, worker_concurrency: int = 2,
                       queue: str | None = None, start_timeout: float = 300.0) -> Iterator[Deployment]:
    """api-server, scheduler, dag-processor, triggerer (+ ``workers`` Celery workers), stopped after."""
    password = secrets.token_urlsafe(16)
    passwords = home / "passwords.json"
    fd = os.open(passwords, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({BENCH_USER: password}, fh)
    dep = Deployment(env=env, home=home, api_url=env["AIRFLOW__API__BASE_URL"], password=password)
    try:
        dep.start("api-server", "api-server", "--host", "127.0.0.1", "--port", env["AIRFLOW__API__PORT"], "--workers", "1")
        dep.start("scheduler", "scheduler")
        dep.start("dag-processor", "dag-processor")
        dep.start("triggerer", "triggerer")
        for n in range(1, workers + 1):
            dep.start(f"celery-worker-{n}", "celery", "worker", "--concurrency", str(worker_concurrency),
                      "--celery-hostname", f"bench{n}@%h", *(["--queues", queue] if queue else []),
                      extra_env={"AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port())})
        wait_healthy(dep, start_timeout)
        yield dep
    finally:
        dep.stop()


def wait_healthy(dep: Deployment, timeout: float) -> None:
    """Until the api-server answers and reports scheduler, triggerer and dag-processor healthy."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        dep.check_alive()
        try:
            last = httpx.get(f"{dep.api_url}/api/v2/monitor/health", timeout=5).json()
            parts = ("metadatabase", "scheduler", "triggerer", "dag_processor")
            if all((last.get(p) or {}).get("status") == "healthy" for p in parts):
                return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(2)
    raise RuntimeError(f"Airflow components not healthy after {timeout:.0f}s: {last}")


class Api:
    """The REST API calls the bench makes, with a real login (POST /auth/token)."""

    def __init__(self, dep: Deployment) -> None:
        self.url = dep.api_url
        r = httpx.post(f"{self.url}/auth/token", json={"username": BENCH_USER, "password": dep.password}, timeout=30)
        r.raise_for_status()
        self.client = httpx.Client(base_url=f"{self.url}/api/v2", timeout=60,
                                   headers={"Authorization": f"Bearer {r.json()['access_token']}"})

    def close(self) -> None:
        self.client.close()

    def wait_for_dags(self, dag_ids: list[str], dep: Deployment, timeout: float = 300.0) -> None:
        """Until the dag-processor has serialized every DAG (the API knows them)."""
        deadline = time.monotonic() + timeout
        missing = list(dag_ids)
        while time.monotonic() < deadline:
            dep.check_alive()
            missing = [d for d in dag_ids if self.client.get(f"/dags/{d}").status_code != 200]
            if not missing:
                return
            time.sleep(2)
        errors = self.client.get("/importErrors").json() if missing else {}
        raise RuntimeError(f"DAGs not parsed after {timeout:.0f}s: {missing}; import errors: {errors}")

    def dag_ids(self) -> list[str]:
        r = self.client.get("/dags", params={"limit": 1000})
        r.raise_for_status()
        return [d["dag_id"] for d in r.json()["dags"]]

    def wait_idle(self, dep: Deployment, timeout: float) -> list[dict[str, Any]]:
        """Every run of every DAG, once none is queued or running (or ``timeout`` passed)."""
        deadline = time.monotonic() + timeout
        while True:
            runs = self.all_runs()
            if all(r["state"] in TERMINAL for r in runs) or time.monotonic() > deadline:
                return runs
            dep.check_alive()
            time.sleep(2)

    def unpause(self, dag_id: str) -> None:
        r = self.client.patch(f"/dags/{dag_id}", params={"update_mask": "is_paused"}, json={"is_paused": False})
        r.raise_for_status()

    def pause_all(self, dag_ids: list[str]) -> None:
        for dag_id in dag_ids:
            self.client.patch(f"/dags/{dag_id}", params={"update_mask": "is_paused"}, json={"is_paused": True})

    def trigger(self, dag_id: str, conf: dict[str, Any]) -> str:
        r = self.client.post(f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf})
        if r.status_code >= 400:  # the API says why (a DAG the api-server cannot load, a bad conf)
            raise RuntimeError(f"triggering {dag_id}: HTTP {r.status_code}: {r.text[:1000]}")
        return str(r.json()["dag_run_id"])

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        r = self.client.get(f"/dags/{dag_id}/dagRuns/{run_id}")
        r.raise_for_status()
        return dict(r.json())

    def all_runs(self) -> list[dict[str, Any]]:
        r = self.client.get("/dags/~/dagRuns", params={"limit": 1000, "order_by": "id"})
        r.raise_for_status()
        return list(r.json()["dag_runs"])

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        r = self.client.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 1000})
        r.raise_for_status()
        return list(r.json()["task_instances"])

    def failed_tasks(self, dag_id: str, run_id: str) -> list[str]:
        try:
            tis = self.task_instances(dag_id, run_id)
        except httpx.HTTPStatusError as exc:
            return [f"(task instances: HTTP {exc.response.status_code})"]
        return [f"{t['task_id']}[{t.get('map_index', -1)}]={t['state']}" for t in tis if t["state"] not in ("success", "skipped")]
