"""``ehr_bulk_export`` through a real Airflow run against the sandbox EHR's FHIR server.

One generated day's FHIR resources live only on the EHR server (``install --fhir-bulk``); the
DAG signs its JWT with the key from the ``ehr_fhir`` connection, kicks off a Group export for
the business date, waits in its deferred trigger through 202s with ``Retry-After``, downloads
the NDJSON, ingests it and routes the charges to billing. (A refused client or a failed export
is tested against the same server without Airflow in ``test_fhir_bulk``: one whole-DAG run here.)
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from decimal import Decimal
from pathlib import Path

import pytest
import requests
import scenario
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

import bulk_pull  # noqa: E402
from airflow_runtime import airflow_env, ensure_metadata_db, load_settings  # noqa: E402
from dag_test_runner import DagTestRunner  # noqa: E402
from dayrun import DayRun, Peers  # noqa: E402

from carefabric.store.db import get_engine, session_scope  # noqa: E402
from carefabric.store.models import Charge as ChargeRow  # noqa: E402

pytestmark = [pytest.mark.slow]  # one whole-DAG run (dag.test() in a process of its own) with its own metadata DB

# after the DAGs' start_date (2026-01-01): Airflow creates no task instance for an earlier logical date
DAY = dt.date(2026, 11, 20)
DATE = DAY.isoformat()


def _fhir_charges(scenario_dir: Path) -> dict[str, Decimal]:
    lines = [json.loads(line, parse_float=Decimal) for p in (scenario_dir / "ehr").glob("fhir_*.ndjson")
             for line in p.read_text().splitlines()]
    return {r["identifier"][0]["value"]: r["priceOverride"]["value"] for r in lines if r["resourceType"] == "ChargeItem"}


@pytest.mark.timeout(600)
def test_bulk_export_dag_pulls_the_day_into_the_store_and_billing(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from sandbox.runner import SandboxServers

    data, store = tmp_path / "data", f"sqlite:///{tmp_path / 'store.db'}"
    sandbox_dir = data / "sandbox"
    for name, value in {"CAREFABRIC_DATA_DIR": str(data), "CAREFABRIC_DB_URL": store,
                        "SANDBOX_DIR": str(sandbox_dir)}.items():
        monkeypatch.setenv(name, value)
    scenario_dir = data / "scenario"
    scenario.generate_day(scenario_dir, encounters=40, day=DAY)
    expected = _fhir_charges(scenario_dir)
    assert expected

    with SandboxServers(sandbox_dir) as servers:
        peers = Peers(servers.erp_url, servers.billing_url, servers.sftp_port, servers.smtp_port, sandbox_dir,
                      servers.sftp_root)
        day = DayRun(data=data, peers=peers, business_date=DATE, db_url=store, log=lambda _: None)
        day.sandbox("install", str(scenario_dir), "--erp-url", peers.erp_url, "--billing-url", peers.billing_url,
                    "--sftp-root", str(peers.sftp_root), "--landing-dir", str(data / "landing" / "ehr"),
                    *bulk_pull.install_args(sandbox_dir))
        day.prepare_store(scenario_dir)  # migrations and crosswalks; then what erp_master_data replicates
        engine = get_engine(store)
        scenario.load_master_rows(engine, scenario.erp_master(scenario_dir))
        aenv = airflow_env(data / "airflow_home", {k: v for k, v in day.env.items()
                                                   if k.startswith(("CAREFABRIC_", "SANDBOX_"))})
        ensure_metadata_db(aenv)
        load_settings(aenv, sandbox_dir=sandbox_dir,
                      overrides={**peers.connection_overrides(), **bulk_pull.connection_overrides(sandbox_dir)})
        admin = servers.ehr_fhir_url.rsplit("/fhir", 1)[0]
        requests.post(f"{admin}/_sandbox/settings", json={"polls_before_ready": 2, "retry_after": 1, "status_500_once": True},
                      timeout=10).raise_for_status()

        with DagTestRunner() as runner:
            run = runner.run(aenv, bulk_pull.DAG_ID, DATE, {"business_date": DATE})
        assert run.state == "success", run
        assert set(run.tasks.values()) == {"success"} and len(run.tasks) >= 3, run.tasks

        ehr = requests.get(f"{admin}/_sandbox/state", timeout=10).json()
        [kick] = [e for e in ehr["events"] if e["kind"] == "kick-off"]
        assert kick["group"] == "billing-cohort" and kick["since"].startswith(DATE) and kick["until"]
        [job] = ehr["jobs"].values()
        # one transient 500 (retried), two 202s (Retry-After waited), the manifest
        assert len(job["polls"]) == 4 and job["polls"][3] - job["polls"][2] >= 0.95
        assert sum(e["kind"] == "download" for e in ehr["events"]) == 3
        # the release_export teardown DELETEd the job once its files were down
        assert job["cancelled"] and [e["kind"] for e in ehr["events"]][-1] == "cancel"
        assert not list((data / "landing" / "ehr").glob("*.ndjson"))  # the landing folder: HL7 only

        with session_scope(engine) as s:
            charges = {c.transaction_id: c for c in s.scalars(select(ChargeRow).where(ChargeRow.source == "FHIR"))}
        assert {k: Decimal(c.amount_cents) / 100 for k, c in charges.items()} == expected
        routed = {c.transaction_id for c in charges.values() if c.status == "routed"}
        billed = {c.get("transaction_id") for c in scenario.billing_charges(peers.billing_url, DAY)}
        assert routed and routed <= billed

        engine.dispose()
