"""The scheduler bench at a tiny scale: a real day on the CeleryExecutor, judged, and cleaned up.

``tools/bench_scheduler.py`` is a benchmark (its figures are in docs/PERFORMANCE.md); this test
holds the tool itself to what the figures claim: with a scheduler, dag-processor, triggerer,
api-server and two Celery workers on PostgreSQL and Redis, every DAG triggered over the REST API
ends green and the ERP equals the ground truth, and afterwards no component, process group or
scratch database is left behind. No timing is asserted.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import psycopg2
import pytest

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT / "tools"))

from dayrun import ORDER  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(1500)]


def _answers(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.skipif(not _answers(6379), reason="Redis is not listening on 127.0.0.1:6379 (the Celery broker)")
def test_celery_day_is_green_judged_and_leaves_nothing_running(tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    proc = subprocess.Popen(
        [sys.executable, str(PROJECT / "tools" / "bench_scheduler.py"), "--executor", "celery", "--encounters", "30", "--facilities", "2",
         "--work", str(tmp_path / "work"), "--json", str(report_path)],
        cwd=PROJECT, env=dict(os.environ, CAREFABRIC_SANDBOX="1"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output, _ = proc.communicate(timeout=1400)
    assert proc.returncode == 0, output[-4000:]

    result = json.loads(report_path.read_text())["results"]["celery"]
    assert list(result["dags"]) == list(ORDER)
    assert {d: r["state"] for d, r in result["dags"].items()} == {d: "success" for d in ORDER}
    assert result["differences"] == [] and result["green"] is True
    # runs the bench did not trigger (a replay master data hands on) are green too, and none came from the clock
    assert [o for o in result["other_runs"] if o["state"] != "success" or o["run_type"] == "scheduled"] == []
    # a real deployment ran: the components, two workers among them, were separate process groups
    groups = result["process_groups"]
    assert {"api-server", "scheduler", "dag-processor", "triggerer", "celery-worker-1", "celery-worker-2"} <= set(groups)
    # each worker imported GX, pandas, pyx12 and the interfaces once at start (carefabric_airflow.celery_config)
    assert result["workers_preloaded"] == {"celery-worker-1": True, "celery-worker-2": True}
    for pgid in groups.values():
        with pytest.raises(ProcessLookupError):
            os.killpg(pgid, 0)  # nothing of the group is left
    with psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres") as conn, conn.cursor() as cur:
        cur.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (f"carefabric_sched_%_{proc.pid}",))
        assert cur.fetchall() == []
    import redis

    assert list(redis.Redis(host="127.0.0.1", port=6379, db=13).scan_iter(match=f"*carefabric_bench_{proc.pid}*")) == []
