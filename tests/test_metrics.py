"""The metrics endpoint after a small day through the real interfaces, checked against the store.

The day: generated HL7 extracts and 835s ingested, charges routed to the sandbox billing server,
the day posted to the sandbox ERP, the nightly reconciliation run, one deadline miss recorded.
Then ``GET /metrics`` on the console (its authentication in front) is parsed as Prometheus text
and every family is compared with counts the test takes from the store itself. The Grafana
dashboard must query only exported names.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import scenario
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from test_console import bearer_auth

from carefabric.console import create_app
from carefabric.interfaces.claims_reconciliation import reconcile_day
from carefabric.interfaces.erp_posting import post_day
from carefabric.metrics import METRIC_NAMES
from carefabric.metrics_router import router
from carefabric.nightly_close import record_deadline_miss
from carefabric.store.db import session_scope
from carefabric.store.models import (
    Charge,
    ErpPosting,
    ExceptionRecord,
    InboundFile,
    PostingRecord,
    RawMessage,
    ReconciliationItem,
    ReconciliationRun,
)
from sandbox.runner import SandboxServers

DAY = scenario.BUSINESS_DATE
DASHBOARD = Path(__file__).resolve().parents[1] / "docs" / "grafana" / "carefabric.json"


@pytest.fixture(scope="module")
def day_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    base = tmp_path_factory.mktemp("metrics")
    day_dir = base / "day"
    scenario.generate_day(day_dir)
    with pytest.MonkeyPatch.context() as mp, SandboxServers(base / "sandbox") as peers:
        mp.setenv("CAREFABRIC_DATA_DIR", str(base / "data"))
        scenario.reset_peers(peers, day_dir)
        with scenario.migrated_store(f"sqlite:///{base / 'store.db'}") as engine:
            scenario.seed_store(engine, day_dir)
            scenario.ingest_day(engine, day_dir, peers.billing_url)
            erp = scenario.erp_client(peers.erp_url)
            post_day(engine, erp, DAY)
            reconcile_day(engine, erp, DAY)
            record_deadline_miss(engine, dag_id="claims_reconciliation", run_id="r1", business_date=DAY,
                                 deadline_time=dt.datetime(2024, 3, 6, 6, tzinfo=dt.UTC), deadline_name="email by 06:00")
            yield engine


def scrape(engine: Engine, user: str = "victor") -> TestClient:
    app = create_app(lambda: engine, authenticate=bearer_auth, csrf_secret=b"s" * 32)
    app.include_router(router)
    return TestClient(app, headers={"Authorization": f"Bearer {user}"})


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def total(found: dict[tuple[str, Any], float], name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in found.items() if n == name and all(dict(ls).get(k) == x for k, x in labels.items()))


def test_metrics_need_a_login(day_store: Engine) -> None:
    client = scrape(day_store)
    assert client.get("/metrics", headers={"Authorization": ""}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer nobody"}).status_code in (401, 403)


def test_scrape_after_a_day_matches_the_store(day_store: Engine) -> None:
    response = scrape(day_store).get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found = samples(response.text)
    with session_scope(day_store) as s:
        files = s.scalar(select(func.count()).select_from(InboundFile))
        hl7_files = s.scalar(select(func.count()).select_from(InboundFile).where(InboundFile.interface == "ehr_ingest"))
        messages = dict(s.execute(select(RawMessage.interface, func.count()).group_by(RawMessage.interface)).all())
        posted = s.scalar(select(func.count()).select_from(ErpPosting).where(ErpPosting.status == "posted"))
        charge_documents = s.scalar(select(func.count(func.distinct(PostingRecord.posting_id))).join(ErpPosting).where(
            PostingRecord.record_type == "charge", ErpPosting.status == "posted"))
        routed = s.scalar(select(func.count()).select_from(Charge).where(Charge.billing_charge_id.is_not(None)))
        open_exc = s.scalar(select(func.count()).select_from(ExceptionRecord).where(ExceptionRecord.status == "open"))
        run = s.scalars(select(ReconciliationRun).order_by(ReconciliationRun.id.desc())).first()
        items = s.scalar(select(func.count()).select_from(ReconciliationItem).where(ReconciliationItem.run_id == run.id))
        variance = s.scalar(select(func.sum(func.abs(ReconciliationItem.variance_cents)))
                            .where(ReconciliationItem.run_id == run.id)) or 0
    assert files > 0 and posted > 0 and routed > 0 and items > 0  # the day really went through
    assert total(found, "carefabric_inbound_files_total") == files
    assert total(found, "carefabric_inbound_files_total", interface="ehr_ingest") == hl7_files
    for interface, n in messages.items():
        assert total(found, "carefabric_messages_total", interface=interface) == n, interface
    assert total(found, "carefabric_outbound_records_total", target="erp", status="posted") == posted
    assert total(found, "carefabric_outbound_records_total", target="billing") == routed
    assert total(found, "carefabric_open_exceptions") == open_exc
    assert total(found, "carefabric_open_exceptions_by_age") == open_exc
    assert total(found, "carefabric_open_exceptions", reason_code="DEADLINE_MISSED") == 1
    assert total(found, "carefabric_deadline_misses_total", dag_id="claims_reconciliation") == 1
    assert total(found, "carefabric_reconciliation_items") == items
    assert total(found, "carefabric_reconciliation_variance_cents") == variance
    assert total(found, "carefabric_reconciliation_business_date_seconds") == dt.datetime(
        2024, 3, 5, tzinfo=dt.UTC).timestamp()
    # Every posted charge document has a latency; all of it is in the window (+Inf bucket = count).
    count = total(found, "carefabric_e2e_latency_seconds_count")
    assert count == charge_documents >= 1
    assert total(found, "carefabric_e2e_latency_seconds_sum") > 0
    assert total(found, "carefabric_e2e_latency_seconds_bucket", le="+Inf") == count


def test_grafana_dashboard_queries_only_exported_metrics(day_store: Engine) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    used = {m for e in exprs for m in re.findall(r"\b(carefabric_[a-z0-9_]+)", e)}
    exported = {n for (n, _) in samples(scrape(day_store).get("/metrics").text)}
    exported |= {f"{n}_bucket" for n in METRIC_NAMES} | {f"{n}_total" for n in METRIC_NAMES}  # families empty today
    assert used, "the dashboard queries nothing"
    assert used <= exported, used - exported
    assert {n.removesuffix("_total") for n in used} >= {"carefabric_inbound_files", "carefabric_e2e_latency_seconds_bucket",
                                                        "carefabric_open_exceptions", "carefabric_deadline_misses",
                                                        "carefabric_reconciliation_variance_cents"}
