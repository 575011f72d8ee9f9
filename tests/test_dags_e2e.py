"""Whole-DAG tests: one business day through every DAG with real Airflow and real peers.

The sandbox peers run on free loopback ports; each DAG runs with ``dag.test()`` (every task
through the task SDK) in one Airflow process of the test's own (``tools/dag_test_runner.py``)
against a fresh Airflow metadata DB, on SQLite and on PostgreSQL for the integration store.
The day is judged against the generator's ground truth from the ERP's own records: every
journal, inventory movement and cash receipt to the cent, every injected fault as
its exception or reconciliation item, nothing posted twice on a rerun, the transient ERP 503
retried and posted once, and the held line posted after its crosswalk fix and replay.
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

from dag_test_runner import DagTestRunner  # noqa: E402
from dayrun import DayRun, Peers, run_day  # noqa: E402

BUSINESS_DATE = "2026-11-20"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty store database for one whole-day run."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'carefabric.db'}"
        return
    base = request.getfixturevalue("pg_scratch_url")  # skips (or fails in CI) without PostgreSQL
    import sqlalchemy as sa

    name = f"cf_e2e_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(base.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"), {"n": name})
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@pytest.mark.slow
def test_business_day_through_every_dag(tmp_path: Path, store_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from sandbox.generator import main as generate
    from sandbox.runner import SandboxServers

    data = tmp_path / "data"
    sandbox_dir = data / "sandbox"
    monkeypatch.setenv("CAREFABRIC_DATA_DIR", str(data))
    monkeypatch.setenv("CAREFABRIC_DB_URL", store_db)
    monkeypatch.setenv("SANDBOX_DIR", str(sandbox_dir))
    scenario = data / "scenario"
    assert generate(["--seed", "7", "--encounters", "24", "--facilities", "3", "--days", "1",
                     "--date", BUSINESS_DATE, "--out", str(scenario)]) == 0

    with SandboxServers(sandbox_dir) as servers, DagTestRunner() as runner:
        peers = Peers(servers.erp_url, servers.billing_url, servers.sftp_port, servers.smtp_port, sandbox_dir,
                      servers.sftp_root)
        day = DayRun(data=data, peers=peers, business_date=BUSINESS_DATE, db_url=store_db, log=lambda _: None,
                     runner=runner)
        report = run_day(day, scenario)
        peer_databases = [(sandbox_dir / "erp.db").read_bytes(), (sandbox_dir / "billing.db").read_bytes()]

    (tmp_path / "report.json").write_text(json.dumps(report, indent=2, default=str))
    assert report["differences_from_ground_truth"] == []
    assert set(report["dag_states"].values()) == {"success"}
    # ... and every task of every run, from the runs' own task instances
    assert len(runner.results) == len(report["dag_states"])
    assert {(r.dag_id, t, s) for r in runner.results for t, s in r.tasks.items() if s not in ("success", "skipped")} == set()
    # Rerun: the peers' own records did not change.
    assert report["peers_after_rerun"] == report["peers_after_first_pass"]
    # The armed 503 was consumed (the post was retried) and every journal balances.
    assert report["erp_faults_pending"] == []
    assert report["journals"]["debits"] == report["journals"]["credits"] > 0
    # The held line was replayed after its crosswalk fix, and an email went to finance.
    assert any(e["reason"] == "UNKNOWN_CDM" and e["status"] == "replayed" for e in report["exceptions"])
    assert report["email"] and Path(report["email"]).read_bytes().count(b"Content-Type: text/csv") == 1

    # The close's checkpoint built the night's Data Docs (tests/test_quality_data_docs.py reads the pages).
    assert (data / "gx" / "data_docs" / "days" / f"{BUSINESS_DATE}.html").is_file()

    # No PHI outside the raw message store: not in the email, the peers' databases, exceptions or logs.
    phi = _phi_values(scenario)
    assert len(phi) > 20
    places = {
        "finance email": Path(report["email"]).read_bytes(),
        "ERP and billing databases": b"".join(peer_databases),
        "exception summaries": json.dumps(report["exceptions"]).encode(),
        "Airflow task logs": b"".join(p.read_bytes() for p in (data / "airflow_home").rglob("*.log")),
        "Data Docs and GX results": b"".join(p.read_bytes() for p in (data / "gx").rglob("*") if p.is_file()),
        "OpenLineage events": (data / "lineage" / "openlineage.jsonl").read_bytes(),
    }
    # Every interface's tasks sent START and COMPLETE with their datasets (tests/test_lineage.py).
    from test_lineage import check_day_lineage

    check_day_lineage(data, store_db)
    for place, content in places.items():
        leaked = sorted(v for v in phi if v.encode() in content)
        assert not leaked, f"PHI in {place}: {leaked[:3]}"


def _phi_values(scenario: Path) -> set[str]:
    """MRNs and family names the generated HL7 carries in PID-3 and PID-5."""
    from carefabric.hl7 import iter_messages, parse

    values: set[str] = set()
    for path in (scenario / "ehr").glob("*.hl7"):
        for raw in iter_messages(path):
            try:
                pid = parse(raw).segment("PID")
            except Exception:  # noqa: BLE001 - the injected malformed message has no usable PID
                continue
            if pid is None:
                continue
            for rep in range(1, len(pid.repetitions(3)) + 1):
                if pid.get(3, 5, repetition=rep) == "MR":
                    values.add(pid.get(3, 1, repetition=rep))
            family = pid.get(5, 1)
            if len(family) >= 5:
                values.add(family)
    return values
