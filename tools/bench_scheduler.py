#!/usr/bin/env python3
"""The regional day on Airflow's real scheduler: LocalExecutor and CeleryExecutor, beside ``dags test``.

``make bench``'s ``day`` section runs every DAG with ``airflow dags test`` (one process, tasks one
after another). Production runs a scheduler, a dag-processor, a triggerer and an api-server
against a PostgreSQL metadata database, and executes tasks on LocalExecutor processes or Celery
workers. This tool runs the same generated day that way and reports wall time per DAG and in
total, for each executor asked for:

- ``dagstest``: ``airflow dags test`` per DAG (the figure ``make bench`` reports), same setup;
- ``local``: LocalExecutor;
- ``celery``: CeleryExecutor, Redis at 127.0.0.1:6379 (its own db number and queue) as broker,
  the metadata database as result backend, ``--workers`` (2) ``airflow celery worker`` processes.

Each executor gets a fresh world: its own sandbox peers (free ports), scratch PostgreSQL store and
metadata databases (dropped afterwards unless ``--keep``), AIRFLOW_HOME and data folder; the
generated scenario is shared. DAGs are unpaused and triggered through the REST API in the
scheduler's order, each when the previous one has finished, with ``business_date`` in the conf.
Every run must end green, and the ERP's own records must equal the generator's ground truth
(``sandbox.judge``, as ``tools/dayrun.py`` judges the demo). Everything started is stopped at the
end, process group by process group. A benchmark, not a test: figures depend on the machine's load.
Beside the wall times the report keeps, per DAG, each task's instances, running and queued
seconds from the metadata database (``tasks``), and the CPU seconds the whole deployment used
(``deployment_cpu_s``), which the load does not inflate. Celery workers import carefabric's heavy
modules once at start (``carefabric_airflow.celery_config``; ``--no-preload`` measures without).

    tools/bench_scheduler.py --executor all --encounters 80000 --messages 1000000   # the full day
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench import BUSINESS_DATE  # noqa: E402 - the generator's day, one home

PROJECT = Path(__file__).resolve().parents[1]
PY = sys.executable
EXECUTORS = ("dagstest", "local", "celery")
FULL_DAY = {"messages": 1_000_000, "charge_lines": 300_000, "claims": 50_000}
TARGET_S = 300.0  # the target for the full day on this 2-core machine


def say(text: str) -> None:
    print(text, flush=True)


def _iso(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def _seconds(start: str | None, end: str | None) -> float | None:
    a, b = _iso(start), _iso(end)
    return round((b - a).total_seconds(), 1) if a and b else None


class World:
    """One executor's sandbox peers, store and Airflow home, prepared with the day's data."""

    def __init__(self, root: Path, kind: str, scenario: Path, stack: ExitStack, keep: bool) -> None:
        from bench import scratch_pg

        self.kind = kind
        self.scenario = scenario
        self.base = root / kind
        shutil.rmtree(self.base, ignore_errors=True)
        self.data, self.sandbox_dir = self.base / "data", self.base / "sandbox"
        self.data.mkdir(parents=True)
        tag = f"{kind}_{os.getpid()}"
        self.store_url = stack.enter_context(scratch_pg(f"carefabric_sched_store_{tag}", keep))
        self.metadata_url = stack.enter_context(scratch_pg(f"carefabric_sched_airflow_{tag}", keep))
        from sandbox import DEFAULT_PORTS

        # every peer on a port the OS picks (ready.json says which): no clash with the demo or a test
        self.env = dict(os.environ, SANDBOX_DIR=str(self.sandbox_dir), CAREFABRIC_DATA_DIR=str(self.data),
                        CAREFABRIC_DB_URL=self.store_url, **{var: "0" for _, var in DEFAULT_PORTS.values()})
        self._sandbox("start")
        stack.callback(self._sandbox, "stop")

    def _sandbox(self, *args: str) -> None:
        r = subprocess.run([PY, "-m", "sandbox", *args], env=self.env, capture_output=True, text=True)
        if r.returncode:
            raise RuntimeError(f"sandbox {args[0]} failed: {r.stderr[-2000:]}")

    def load(self, generated: int, messages: int) -> int:
        """Scenario into the peers and the landing folder, store migrated, HL7 topped up; returns padding."""
        from bench import _pad_adt
        from dayrun import DayRun, Peers

        self.peers = Peers.from_ready(self.sandbox_dir)
        self.day = DayRun(self.data, self.peers, BUSINESS_DATE, db_url=self.store_url, log=say)
        saved = dict(os.environ)
        os.environ.update({k: v for k, v in self.env.items() if k.startswith(("CAREFABRIC_", "SANDBOX_"))})
        try:
            self.day.install(self.scenario)
            self.day.prepare_store(self.scenario)
        finally:
            os.environ.clear()
            os.environ.update(saved)
        return _pad_adt(self.scenario, self.data / "landing" / "ehr", messages - generated)

    def airflow_env(self) -> dict[str, str]:
        """AIRFLOW_HOME with the metadata DB migrated and airflow_settings.yaml loaded (peer ports)."""
        from airflow_runtime import airflow_env, ensure_metadata_db, load_settings
        from airflow_services import fernet_key

        extra = {k: v for k, v in self.env.items() if k.startswith(("CAREFABRIC_", "SANDBOX_"))}
        # connections are stored encrypted; every component must read them with the same key
        extra["AIRFLOW__CORE__FERNET_KEY"] = fernet_key()
        if self.kind != "dagstest":
            extra["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = self.metadata_url
        # `dags test` keeps the SQLite metadata DB of `make bench`'s day section, so its figure is
        # that one (Deadline Alerts are left out there: see carefabric_airflow.deadlines).
        import bulk_pull

        aenv = airflow_env(self.base / "airflow_home", extra)
        ensure_metadata_db(aenv)
        # ehr_bulk_export (in dayrun's ORDER) asks the EHR FHIR server this sandbox started, on its free port.
        overrides = {**self.peers.connection_overrides(), **bulk_pull.connection_overrides(self.sandbox_dir)}
        load_settings(aenv, sandbox_dir=self.sandbox_dir, overrides=overrides)
        return aenv

    def verdict(self) -> list[str]:
        """Differences of the ERP (and of the store's exceptions) from the generator's ground truth."""
        from dayrun import judge_faults, store_summary

        from sandbox.judge import judge

        truth = json.loads((self.scenario / "ground_truth.json").read_text())
        truth.pop("after_fix", None)  # no fix is applied here: the held line stays open
        verdict = judge(self.scenario / "ground_truth.json", self.peers.erp_url, "erp-sandbox-token", bank=True)
        return list(verdict["differences"]) + judge_faults(truth, store_summary(self.store_url))


def run_dags_test(world: World, aenv: dict[str, str], order: list[str]) -> dict[str, Any]:
    from airflow_runtime import run_dag

    dags: dict[str, dict[str, Any]] = {}
    t_all, cpu_start = time.perf_counter(), _children_cpu_s()
    for dag_id in order:
        t0 = time.perf_counter()
        state = run_dag(aenv, dag_id, BUSINESS_DATE, {"business_date": BUSINESS_DATE})
        dags[dag_id] = {"state": state, "wall_s": round(time.perf_counter() - t0, 1)}
        say(f"   {dag_id:<24} {state:<8} {dags[dag_id]['wall_s']:7.1f}s")
    return {"dags": dags, "total_s": round(time.perf_counter() - t_all, 1), "other_runs": [],
            "deployment_cpu_s": round(_children_cpu_s() - cpu_start, 1)}


def run_on_scheduler(world: World, aenv: dict[str, str], order: list[str], *, executor: str, workers: int,
                     worker_concurrency: int, redis_db: int, schedules: bool, dag_timeout: float,
                     preload: bool = True) -> dict[str, Any]:
    """Start the components, unpause the DAGs, trigger them in order over REST, wait, collect."""
    from airflow_services import Api, deployment_env, free_port, running_deployment

    queue = f"carefabric_bench_{os.getpid()}" if executor == "CeleryExecutor" else None
    broker = f"redis://127.0.0.1:6379/{redis_db}" if queue else None
    env = deployment_env(aenv, world.base / "airflow_home", metadata_url=world.metadata_url, executor=executor,
                         api_port=free_port(), broker_url=broker, queue=queue, schedules=schedules, preload=preload)
    t_start = time.perf_counter()
    cpu_start = _children_cpu_s()
    try:
        with running_deployment(env, world.base / "airflow_home", workers=workers if queue else 0,
                                worker_concurrency=worker_concurrency, queue=queue) as dep:
            api = Api(dep)
            api.wait_for_dags(order, dep)
            startup_s = round(time.perf_counter() - t_start, 1)
            say(f"   components healthy, DAGs parsed in {startup_s:.0f}s ({', '.join(c.name for c in dep.components)})")
            pids = {c.name: c.proc.pid for c in dep.components}  # process group leaders, all stopped after
            every_dag = api.dag_ids()
            for dag_id in every_dag:  # as in production: exception_replay too, which master data may trigger
                api.unpause(dag_id)
            dags: dict[str, dict[str, Any]] = {}
            t_all = time.perf_counter()
            for dag_id in order:
                dags[dag_id] = _trigger_and_wait(api, dep, dag_id, dag_timeout)
            total = round(time.perf_counter() - t_all, 1)
            mine = {(d, r["run_id"]) for d, r in dags.items()}
            others = [{"dag_id": r["dag_id"], "run_id": r["dag_run_id"], "state": r["state"], "run_type": r.get("run_type")}
                      for r in api.wait_idle(dep, dag_timeout) if (r["dag_id"], r["dag_run_id"]) not in mine]
            api.pause_all(every_dag)
            api.close()
            # did each worker import carefabric's heavy modules once at start (celery_config)?
            preloaded = {c.name: "carefabric preload:" in c.log.read_text(errors="replace")
                         for c in dep.components if c.name.startswith("celery-worker")}
    finally:
        if queue:
            _drop_queue(redis_db, queue)
    # Every component was stopped and waited for: what it and its task processes used on the CPU
    # (a worker that was killed rather than stopped leaves its tasks' share out). Load-independent,
    # unlike wall time: on 2 cores the day cannot take less than half of it.
    cpu_s = round(_children_cpu_s() - cpu_start, 1)
    return {"dags": dags, "total_s": total, "startup_s": startup_s, "other_runs": others, "process_groups": pids,
            "deployment_cpu_s": cpu_s, "workers_preloaded": preloaded}


def _trigger_and_wait(api: Any, dep: Any, dag_id: str, timeout: float) -> dict[str, Any]:
    t0 = time.perf_counter()
    run_id = api.trigger(dag_id, {"business_date": BUSINESS_DATE})
    deadline = time.monotonic() + timeout
    while True:
        run = api.run(dag_id, run_id)
        if run["state"] in ("success", "failed") or time.monotonic() > deadline:
            break
        dep.check_alive()
        time.sleep(1)
    wall = round(time.perf_counter() - t0, 1)
    out = {"state": run["state"], "wall_s": wall, "run_id": run_id,
           "run_s": _seconds(run.get("start_date"), run.get("end_date")),
           "queued_s": _seconds(run.get("queued_at"), run.get("start_date"))}
    if run["state"] != "success":
        out["not_green"] = api.failed_tasks(dag_id, run_id)
    try:
        out["tasks"] = task_profile(api.task_instances(dag_id, run_id))
    except Exception as exc:  # noqa: BLE001 - the profile is extra; the run's state is the verdict
        out["tasks"] = {"error": f"{type(exc).__name__}: {exc}"[:200]}
    say(f"   {dag_id:<24} {run['state']:<8} {wall:7.1f}s (run {out['run_s']}s)"
        + (f"  {out['not_green']}" if run["state"] != "success" else ""))
    return out


def task_profile(tis: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per task: instances, seconds running (sum, max) and waiting queued (sum, max), as the
    metadata database recorded them; where a run's wall time went beyond the work itself."""
    out: dict[str, dict[str, Any]] = {}
    for ti in tis:
        t = out.setdefault(ti["task_id"], {"n": 0, "run_s": 0.0, "max_run_s": 0.0, "queued_s": 0.0, "max_queued_s": 0.0,
                                           "first_start": None, "last_end": None, "hosts": []})
        t["n"] += 1
        run = ti.get("duration") or 0.0
        queued = _seconds(ti.get("queued_when"), ti.get("start_date")) or 0.0
        t["run_s"] = round(t["run_s"] + run, 1)
        t["max_run_s"] = round(max(t["max_run_s"], run), 1)
        t["queued_s"] = round(t["queued_s"] + queued, 1)
        t["max_queued_s"] = round(max(t["max_queued_s"], queued), 1)
        if ti.get("start_date") and (t["first_start"] is None or ti["start_date"] < t["first_start"]):
            t["first_start"] = ti["start_date"]
        if ti.get("end_date") and (t["last_end"] is None or ti["end_date"] > t["last_end"]):
            t["last_end"] = ti["end_date"]
        if ti.get("hostname") and ti["hostname"] not in t["hosts"]:
            t["hosts"].append(ti["hostname"])
    for t in out.values():
        t["span_s"] = _seconds(t.pop("first_start"), t.pop("last_end"))
    return out


def _children_cpu_s() -> float:
    """CPU seconds (user + system) of every descendant this process has reaped so far."""
    import resource

    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _drop_queue(redis_db: int, queue: str) -> None:
    """Remove this run's Celery queue keys (the db number may be shared with other benches)."""
    import redis

    r = redis.Redis(host="127.0.0.1", port=6379, db=redis_db)
    try:
        keys = list(r.scan_iter(match=f"*{queue}*"))
        if keys:
            r.delete(*keys)
        rest = list(r.scan_iter())
        if rest and all(k.startswith(b"_kombu.binding") for k in rest):  # kombu's bookkeeping, no other user
            r.delete(*rest)
    except redis.RedisError as exc:
        say(f"   (could not remove the Celery queue {queue}: {exc})")
    finally:
        r.close()



def run_one(kind: str, root: Path, scenario: Path, counts: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    from dayrun import ORDER

    order = list(ORDER)
    generated = sum(counts["messages"].values())
    say(f"\n== regional day on {kind}")
    with ExitStack() as stack:
        world = World(root, kind, scenario, stack, args.keep)
        t0 = time.perf_counter()
        padded = world.load(generated, max(args.messages or 0, generated))
        aenv = world.airflow_env()
        say(f"   volume: {generated + padded:,} HL7 messages ({padded:,} replicated ADT), {counts['charge_lines']:,} "
            f"charge lines, {counts['claims_remitted']:,} remitted claims; setup {time.perf_counter() - t0:.0f}s")
        if kind == "dagstest":
            result = run_dags_test(world, aenv, order)
        else:
            result = run_on_scheduler(world, aenv, order, executor={"local": "LocalExecutor", "celery": "CeleryExecutor"}[kind],
                                      workers=args.workers, worker_concurrency=args.worker_concurrency,
                                      redis_db=args.redis_db, schedules=args.schedules, dag_timeout=args.dag_timeout,
                                      preload=not args.no_preload)
        differences = [f"DAG {d} ended {r['state']}" for d, r in result["dags"].items() if r["state"] != "success"]
        differences += [f"other run {o['dag_id']} {o['run_id']} ended {o['state']}" for o in result["other_runs"]
                        if o["state"] != "success"]
        differences += world.verdict()
    result.update(executor=kind, hl7_messages=generated + padded, replicated_adt=padded, differences=differences,
                  green=not differences)
    say(f"   total {result['total_s']:.1f}s; " + ("every run green, ERP equals the ground truth" if not differences
                                                  else f"{len(differences)} differences: {differences[:5]}"))
    return result


def run(args: argparse.Namespace, kinds: list[str]) -> dict[str, Any]:
    """Generate the day once, run it on every executor asked for; the report (JSON-able)."""
    from bench import generate

    os.environ.setdefault("CAREFABRIC_SANDBOX", "1")  # the sandbox PHI token key, as `make` sets it
    root = Path(args.work) if args.work else PROJECT / "data" / "bench" / "scheduler"
    root.mkdir(parents=True, exist_ok=True)
    scenario = root / "scenario"
    shutil.rmtree(scenario, ignore_errors=True)
    counts = generate(scenario, args.encounters, facilities=args.facilities, env=dict(os.environ))
    results = {kind: run_one(kind, root, scenario, counts, args) for kind in kinds}
    return {"encounters": args.encounters, "counts": counts, "results": results,
            "full_day": _is_full(results, counts), "load_avg": os.getloadavg()}


def _is_full(results: dict[str, Any], counts: dict[str, Any]) -> bool:
    messages = max((r["hl7_messages"] for r in results.values()), default=0)
    return (messages >= FULL_DAY["messages"] and counts["charge_lines"] >= FULL_DAY["charge_lines"] * 0.9
            and counts["claims_remitted"] >= FULL_DAY["claims"])


def table(report: dict[str, Any]) -> str:
    results = report["results"]
    kinds = list(results)
    dag_ids = list(next(iter(results.values()))["dags"]) if results else []
    lines = ["| DAG | " + " | ".join(kinds) + " |", "|---|" + "---:|" * len(kinds)]
    for dag_id in dag_ids:
        cells = []
        for k in kinds:
            d = results[k]["dags"].get(dag_id, {})
            cells.append(f"{d.get('wall_s', '-')}" + ("" if d.get("state") == "success" else f" ({d.get('state')})"))
        lines.append(f"| {dag_id} | " + " | ".join(cells) + " |")
    lines.append("| **total** | " + " | ".join(f"**{results[k]['total_s']}**" for k in kinds) + " |")
    lines.append("| CPU seconds (all components and tasks) | " + " | ".join(f"{results[k].get('deployment_cpu_s', '-')}" for k in kinds) + " |")
    lines.append("| all runs green, ERP = ground truth | " + " | ".join("yes" if results[k]["green"] else "NO" for k in kinds) + " |")
    return "\n".join(lines)


def section(sizes: dict[str, int], row: Callable[..., Any], details: dict[str, Any], keep: bool = False) -> None:
    """``make bench`` section ``scheduler``: the day's sizes on LocalExecutor and CeleryExecutor."""
    args = parse_args(["--encounters", str(sizes["day_encounters"]), "--messages", str(sizes["day_messages"]),
                       "--executor", "local,celery", *(["--keep"] if keep else [])])
    report = run(args, ["local", "celery"])
    details["scheduler"] = report
    full = report["full_day"]
    for kind, result in report["results"].items():
        for dag_id, d in result["dags"].items():
            row(f"regional day on {kind}: {dag_id}", d["wall_s"], "s", note=d["state"])
        row(f"regional day on {kind}: all DAGs, triggered over REST", result["total_s"], "s",
            target="< 300 s (5 min)" if full else "", met=(result["total_s"] < TARGET_S and result["green"]) if full else None,
            note=f"{result['hl7_messages']:,} HL7 msgs; " + ("green, ERP = ground truth" if result["green"]
                                                             else f"{len(result['differences'])} differences"))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--executor", default="all", help=f"comma-separated: {','.join(EXECUTORS)}, or all")
    p.add_argument("--encounters", type=int, default=20_000, help="generated encounters (80000 ~ the full day)")
    p.add_argument("--facilities", type=int, default=10, help="facilities of the generated day (default 10)")
    p.add_argument("--messages", type=int, default=None,
                   help="top the HL7 volume up to this many messages with replicated ADT (1000000 = the full day)")
    p.add_argument("--workers", type=int, default=2, help="Celery workers (default 2)")
    p.add_argument("--worker-concurrency", type=int, default=2, help="task slots per Celery worker (default 2)")
    p.add_argument("--redis-db", type=int, default=13, help="Redis db number for the Celery broker (default 13)")
    p.add_argument("--schedules", action="store_true",
                   help="keep the DAGs' own schedules and asset triggers on (runs they create are waited for and judged)")
    p.add_argument("--no-preload", action="store_true",
                   help="Celery workers without carefabric_airflow.celery_config (every task imports GX, pandas, pyx12 itself)")
    p.add_argument("--dag-timeout", type=float, default=3600.0, help="seconds to wait for one DAG run")
    p.add_argument("--work", default=None, help="scratch folder (default data/bench/scheduler)")
    p.add_argument("--keep", action="store_true", help="keep the scratch PostgreSQL databases")
    p.add_argument("--json", default=None, help="write the report here (default data/bench/scheduler_<ts>.json)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so every component, peer and scratch database is stopped/dropped
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    kinds = list(EXECUTORS) if args.executor == "all" else [k.strip() for k in args.executor.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in EXECUTORS]
    if unknown:
        raise SystemExit(f"unknown executor(s) {unknown}; choose from {EXECUTORS}")
    started = time.perf_counter()
    load = os.getloadavg()
    report = run(args, kinds)
    report.update(load_avg_start=load, seconds=round(time.perf_counter() - started, 1),
                  command=" ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]))
    say("\n" + table(report))
    out = Path(args.json) if args.json else PROJECT / "data" / "bench" / f"scheduler_{dt.datetime.now():%Y%m%dT%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str))
    say(f"\nload average at start {load[0]:.1f}; took {report['seconds'] / 60:.1f} min; JSON: {out}")
    return 0 if all(r["green"] for r in report["results"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
