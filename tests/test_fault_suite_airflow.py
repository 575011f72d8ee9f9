"""The fault suite through real Airflow runs: the posting DAG killed mid-flight, a rejected replay.

One business day runs through the DAGs with ``airflow dags test`` against the sandbox, the ERP's
external-id de-duplication switched off. Then, the way an operator meets them:

1. the ``erp_posting`` run is killed (SIGKILL to its process group) while the ERP's answer to a
   document it has already committed is in flight; the operator reruns the DAG; it ends green
   and the ERP holds every document once;
2. after the missing CDM entry is added, the ERP refuses the replayed line's CHARGES journal (its
   revenue account is inactive): ``exception_replay`` ends failed, not green, with an
   ``ERP_REJECTED`` exception naming the document; finance activates the account; the next
   ``erp_posting`` run rebuilds the document from its records, posts it and closes the
   exception, and the failure exception of the task that failed closes when it succeeds.

The ERP's own records are then judged against the ground truth (with the fix) to the cent.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

from airflow_runtime import VENV_BIN  # noqa: E402
from dayrun import DayRun, Peers  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.chaos]

BUSINESS_DATE = "2026-11-20"


def _admin(url: str, action: str, body: dict[str, Any]) -> None:
    requests.post(f"{url}/_sandbox/{action}", json=body, timeout=10).raise_for_status()


def _erp_state(url: str) -> dict[str, Any]:
    return requests.get(f"{url}/_sandbox/state", timeout=10).json()


def _documents(url: str) -> int:
    counts = _erp_state(url)["counts"]
    return int(counts["journal_batches"] + counts["inventory_movements"] + counts["cash_receipts"])


def _kill_posting_in_flight(day: DayRun, aenv: dict[str, str]) -> None:
    """Start ``erp_posting`` and SIGKILL it once the ERP committed its second document and is
    holding the answer back."""
    _admin(day.peers.erp_url, "faults", {"path_prefix": "/api/v1/", "method": "POST", "status": 503,
                                         "when": "after_commit", "hang_seconds": 300, "skip": 1})
    conf = json.dumps({"business_date": BUSINESS_DATE})
    run = subprocess.Popen([str(VENV_BIN / "airflow"), "dags", "test", "erp_posting", BUSINESS_DATE, "-c", conf],
                           env=aenv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while not _erp_state(day.peers.erp_url)["faults_fired"]:
        assert run.poll() is None, "erp_posting ended before the fault fired"
        assert time.monotonic() < deadline
        time.sleep(0.2)
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    requests.delete(f"{day.peers.erp_url}/_sandbox/faults", timeout=10).raise_for_status()


@pytest.mark.timeout(1500)
def test_posting_dag_killed_in_flight_and_a_rejected_replay(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sandbox.generator import main as generate
    from sandbox.judge import judge
    from sandbox.runner import SandboxServers

    data = tmp_path / "data"
    sandbox_dir = data / "sandbox"
    store = f"sqlite:///{tmp_path / 'carefabric.db'}"
    for name, value in {"CAREFABRIC_DATA_DIR": str(data), "CAREFABRIC_DB_URL": store, "SANDBOX_DIR": str(sandbox_dir),
                        "AIRFLOW_VAR_CAREFABRIC_OUTBOX_LEASE_SECONDS": "3"}.items():
        monkeypatch.setenv(name, value)
    scenario_dir = data / "scenario"
    assert generate(["--seed", "11", "--encounters", "24", "--facilities", "3", "--days", "1",
                     "--date", BUSINESS_DATE, "--out", str(scenario_dir)]) == 0
    truth = json.loads((scenario_dir / "ground_truth.json").read_text())

    with SandboxServers(sandbox_dir) as servers:
        peers = Peers(servers.erp_url, servers.billing_url, servers.sftp_port, servers.smtp_port, sandbox_dir,
                      servers.sftp_root)
        day = DayRun(data=data, peers=peers, business_date=BUSINESS_DATE, db_url=store, log=lambda _: None)
        day.install(scenario_dir)
        day.prepare_store(scenario_dir)
        aenv = day.prepare_airflow()
        _admin(peers.erp_url, "settings", {"deduplicate": False})
        conf = {"business_date": BUSINESS_DATE}
        for dag_id in ("erp_master_data", "ehr_ingest", "payer_remittance", "billing_sync"):
            assert day.run(aenv, dag_id, conf) == "success", dag_id

        # 1. killed while the ERP's answer to a committed document is in flight; the operator reruns
        before = _documents(peers.erp_url)  # the go-live AR conversion journal the sandbox posted
        _kill_posting_in_flight(day, aenv)
        assert _documents(peers.erp_url) - before == 2
        assert day.run(aenv, "erp_posting", conf, "erp_posting (rerun after kill -9)") == "success"
        assert judge(scenario_dir / "ground_truth.json", peers.erp_url, "erp-sandbox-token")["differences"] == []

        # 2. the replayed line's revenue account is inactive in the ERP: the replay is refused
        fix = truth["after_fix"]["crosswalk"]
        master = json.loads((scenario_dir / "erp_master.json").read_text())
        inactive = [{**a, "active": a["account"] != fix["revenue_account"]} for a in master["gl_accounts"]]
        _admin(peers.erp_url, "load", {"gl_accounts": inactive})
        from carefabric.store.crosswalks import set_cdm
        from carefabric.store.db import get_engine, session_scope

        engine = get_engine(store)
        with session_scope(engine) as session:
            set_cdm(session, fix["cdm_code"], fix["revenue_account"], erp_item=fix.get("erp_item"),
                    procedure_code=fix.get("procedure_code"), description=fix.get("description"), actor="test")
        replay = {"reason_code": "UNKNOWN_CDM", "actor": "test"}
        assert day.run(aenv, "exception_replay", replay, "exception_replay (refused)") == "failed"
        rejected = _exceptions(engine, "ERP_REJECTED")
        assert [(e["status"], e["record_type"]) for e in rejected] == [("open", "posting")]
        assert "INACTIVE_ACCOUNT" in rejected[0]["summary"] and "CHARGES" in rejected[0]["summary"]

        _admin(peers.erp_url, "load", {"gl_accounts": master["gl_accounts"]})  # finance activates it
        assert day.run(aenv, "erp_posting", conf, "erp_posting (after the fix)") == "success"
        assert [e["status"] for e in _exceptions(engine, "ERP_REJECTED")] == ["resolved"]
        verdict = judge(scenario_dir / "ground_truth.json", peers.erp_url, "erp-sandbox-token", after_fix=True)
        assert verdict["differences"] == []
        # the failure exceptions the notifier opened for the killed run's tasks closed on success
        still_open = [e for e in _exceptions(engine, None) if e["record_type"] == "task" and e["status"] == "open"
                      and e["interface"] == "erp_posting"]
        assert still_open == []
        engine.dispose()


def _exceptions(engine: Any, reason: str | None) -> list[dict[str, Any]]:
    from sqlalchemy import select

    from carefabric.store.db import session_scope
    from carefabric.store.models import ExceptionRecord

    with session_scope(engine) as s:
        query = select(ExceptionRecord)
        if reason:
            query = query.where(ExceptionRecord.reason_code == reason)
        return [{"status": e.status, "record_type": e.record_type, "summary": e.summary, "interface": e.interface}
                for e in s.scalars(query)]
