"""Whole-DAG runs with ``dag.test()`` in process, one long-lived Python process per Airflow home.

``tools/airflow_runtime.run_dag`` starts ``airflow dags test`` once per DagRun and reads the
run's state from its log output. A business day is ~18 DagRuns, and each CLI start pays again
for the interpreter, Airflow's import, its providers and plugins and the DAG file parse. Here
one process per installation pays that once and runs every DagRun with ``dag.test()`` (what the
CLI calls too): the DAG comes from a ``DagBag`` of the configured dags folder, its state is read
from the returned ``DagRun`` and each task's state from the run's task instances.

Why a process of its own and not the test's: Airflow reads ``AIRFLOW_HOME`` and its metadata DB
URL into module-level settings when it is first imported, and a pytest(-xdist) worker may have
imported it already for another test with another home (or none). The boundary is this child
process: started with the installation's environment (``airflow_runtime.airflow_env``), it
imports Airflow only after that environment is in place, and ends with the test, so tests
stay isolated from each other under ``-n 2``.

Where the subprocess CLI path stays: ``make demo`` and the bench sections that report
``airflow dags test`` figures (``tools/bench.py``, ``tools/bench_scheduler.py``) keep
``airflow_runtime.run_dag``: their numbers are quoted as what the CLI takes, and the demo is
the operator's view of the CLI. Tests use this runner.

Deadline Alerts are left out (``CAREFABRIC_DEADLINE_ALERTS=off``) exactly as for ``dags test``:
in Airflow 3.3.2 ``dag.test()`` itself turns a finished run of a DAG with alerts into a failure
(``DagRun.update_state`` reads the in-process alert objects as ids; see
``carefabric_airflow.deadlines.close_deadlines``); checked in process too, and the same.

Protocol: one JSON request a line on the child's stdin; one JSON answer a line on a pipe of its
own (stdout and stderr carry Airflow's and the tasks' logs, kept in
``$AIRFLOW_HOME/dag_test_logs/dag_test_runner.log``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

#: Airflow 3.3.2's dag.test() fails a successful run of a DAG with Deadline Alerts (module docstring).
RUN_ENV = {"CAREFABRIC_DEADLINE_ALERTS": "off", "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO"}


@dataclass
class DagRunResult:
    """What one ``dag.test()`` returned: the DagRun's state and its task instances' states."""

    dag_id: str
    state: str
    tasks: dict[str, str] = field(default_factory=dict)
    error: str | None = None


class DagTestRunner:
    """One child process running ``dag.test()`` for every DagRun of one Airflow installation.

    Callable like ``airflow_runtime.run_dag`` (``runner(env, dag_id, date, conf) -> state``) so
    ``dayrun.DayRun`` can take it in place of the CLI; ``run`` returns the task states too. The
    child starts at the first run with that run's environment; a use with another
    ``AIRFLOW_HOME`` is refused (one process, one installation).
    """

    def __init__(self) -> None:
        self._proc: subprocess.Popen[str] | None = None
        self._answers: IO[str] | None = None
        self._home: str | None = None
        self.results: list[DagRunResult] = []

    def __enter__(self) -> DagTestRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __call__(self, env: dict[str, str], dag_id: str, logical_date: str, conf: dict[str, Any] | None = None) -> str:
        return self.run(env, dag_id, logical_date, conf).state

    def run(self, env: dict[str, str], dag_id: str, logical_date: str, conf: dict[str, Any] | None = None) -> DagRunResult:
        """Run one DagRun of ``dag_id`` to completion in the child; its state and task states."""
        self._start(env)
        assert self._proc is not None and self._proc.stdin is not None and self._answers is not None
        request = {"dag_id": dag_id, "logical_date": logical_date, "conf": conf or {}}
        self._proc.stdin.write(json.dumps(request) + "\n")
        self._proc.stdin.flush()
        line = self._answers.readline()
        if not line:
            raise RuntimeError(f"dag.test runner ended (exit {self._proc.wait()}); see {self.log_path}")
        result = DagRunResult(**json.loads(line))
        self.results.append(result)
        return result

    @property
    def log_path(self) -> Path:
        return Path(self._home or ".") / "dag_test_logs" / "dag_test_runner.log"

    def _start(self, env: dict[str, str]) -> None:
        if self._proc is not None:
            if env["AIRFLOW_HOME"] != self._home:
                raise ValueError(f"runner serves {self._home}, not {env['AIRFLOW_HOME']}")
            return
        self._home = env["AIRFLOW_HOME"]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        read_fd, write_fd = os.pipe()
        with self.log_path.open("a") as log:
            self._proc = subprocess.Popen(
                [sys.executable, __file__, "--serve", str(write_fd)], env={**env, **RUN_ENV}, text=True,
                stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, pass_fds=(write_fd,),
            )
        os.close(write_fd)
        self._answers = os.fdopen(read_fd, "r")

    def close(self) -> None:
        """End the child (its stdin closes: it finishes the loop and exits)."""
        if self._proc is None:
            return
        assert self._proc.stdin is not None and self._answers is not None
        self._proc.stdin.close()
        try:
            self._proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._answers.close()
        self._proc = None


# --------------------------------------------------------------------------- the child


def _serve(answer_fd: int) -> None:
    """Read requests from stdin until it closes; answer each on ``answer_fd``."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk import timezone
    from airflow.settings import DAGS_FOLDER

    bag = DagBag(dag_folder=DAGS_FOLDER)
    if bag.import_errors:
        print(f"DAG import errors: {bag.import_errors}", file=sys.stderr, flush=True)
    with os.fdopen(answer_fd, "w") as answers:
        for line in sys.stdin:
            request = json.loads(line)
            answers.write(json.dumps(_run_one(bag, request, timezone.parse(request["logical_date"]))) + "\n")
            answers.flush()


def _run_one(bag: Any, request: dict[str, Any], logical_date: Any) -> dict[str, Any]:
    """One ``dag.test()``; a DAG that fails to load or a run that raises is a failed run."""
    import traceback

    dag_id = request["dag_id"]
    dag = bag.dags.get(dag_id)
    if dag is None:
        return {"dag_id": dag_id, "state": "failed", "error": f"no DAG {dag_id}: {bag.import_errors}"}
    try:
        dag_run = dag.test(logical_date=logical_date, run_conf=request["conf"] or None)
    except Exception:  # noqa: BLE001 - the caller judges the run; the traceback goes to the log
        traceback.print_exc()
        return {"dag_id": dag_id, "state": "failed", "error": traceback.format_exc(limit=3)[-2000:]}
    tasks = {ti.task_id + (f"[{ti.map_index}]" if ti.map_index >= 0 else ""): _name(ti.state)
             for ti in dag_run.get_task_instances()}
    print(f"DagRun Finished: dag_id={dag_id}, state={_name(dag_run.state)}, tasks={tasks}", flush=True)
    return {"dag_id": dag_id, "state": _name(dag_run.state), "tasks": tasks}


def _name(state: Any) -> str:
    """A state enum's value ("success"), or "none" for a task instance that never ran."""
    return str(getattr(state, "value", state)).lower()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        _serve(int(sys.argv[2]))
    else:
        sys.exit(f"usage: {sys.argv[0]} --serve ANSWER_FD (started by DagTestRunner)")
