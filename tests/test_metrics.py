"""The metrics endpoint after a small day through the real interfaces, checked against the store.

The day: generated HL7 extracts and 835s ingested, charges routed to the sandbox billing server,
the day posted to the sandbox ERP, the nightly reconciliation run, deadline misses recorded (one
of them re-occurring, one resolved), with the peer calls recorded into the store. Then ``GET
/metrics`` on the console (its authentication in front) is parsed as Prometheus text and every
family is compared with counts the test takes from the store itself, and the ERP calls with the
client's own log of its attempts. The family list is ``METRIC_NAMES``, the one home of it: every
family is exported, and the Grafana dashboard queries each of them and nothing else.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import scenario
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from test_console import bearer_auth

from carefabric.clients.billing import CHARGE_BATCH_SIZE
from carefabric.console import create_app
from carefabric.interfaces.claims_reconciliation import reconcile_day
from carefabric.interfaces.erp_posting import post_day
from carefabric.metrics import METRIC_NAMES
from carefabric.metrics_router import router
from carefabric.nightly_close import record_deadline_miss, resolve_deadline_misses
from carefabric.peer_calls import recording, route_template
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


@dataclass
class Day:
    engine: Engine
    #: (method, path, status) of every ERP attempt, from the client itself.
    erp_attempts: list[tuple[str, str, int]]


def miss(engine: Engine, dag_id: str, day: dt.date) -> None:
    record_deadline_miss(engine, dag_id=dag_id, run_id=f"{dag_id}-{day}", business_date=day,
                         deadline_time=dt.datetime.combine(day + dt.timedelta(days=1), dt.time(6), tzinfo=dt.UTC),
                         deadline_name="email by 06:00")


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Day]:
    base = tmp_path_factory.mktemp("metrics")
    day_dir = base / "day"
    scenario.generate_day(day_dir)
    with pytest.MonkeyPatch.context() as mp, SandboxServers(base / "sandbox") as peers:
        mp.setenv("CAREFABRIC_DATA_DIR", str(base / "data"))
        scenario.reset_peers(peers, day_dir)
        with scenario.migrated_store(f"sqlite:///{base / 'store.db'}") as engine:
            erp = scenario.erp_client(peers.erp_url)
            with recording(engine):  # written to the store when the block ends
                scenario.seed_store(engine, day_dir)
                scenario.ingest_day(engine, day_dir, peers.billing_url)
                post_day(engine, erp, DAY)
                reconcile_day(engine, erp, DAY)
            # The night's close missed twice (one exception, two occurrences), the day before once
            # and late-finished (resolved: still a miss), and another DAG once.
            miss(engine, "claims_reconciliation", DAY)
            miss(engine, "claims_reconciliation", DAY)
            miss(engine, "claims_reconciliation", DAY - dt.timedelta(days=1))
            resolve_deadline_misses(engine, DAY - dt.timedelta(days=1))
            miss(engine, "erp_posting", DAY)
            yield Day(engine, list(erp.rest.attempts_log))


@pytest.fixture(scope="module")
def day_store(day: Day) -> Engine:
    return day.engine


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
        missed = ExceptionRecord.reason_code == "DEADLINE_MISSED"
        misses = dict(s.execute(select(ExceptionRecord.interface, func.sum(ExceptionRecord.attempts)).where(missed)
                                .group_by(ExceptionRecord.interface)).all())
        open_misses = s.scalar(select(func.count()).select_from(ExceptionRecord).where(
            missed, ExceptionRecord.status == "open"))
    assert files > 0 and posted > 0 and routed > 0 and items > 0  # the day really went through
    assert total(found, "carefabric_inbound_files_total") == files
    assert total(found, "carefabric_inbound_files_total", interface="ehr_ingest") == hl7_files
    for interface, n in messages.items():
        assert total(found, "carefabric_messages_total", interface=interface) == n, interface
    assert total(found, "carefabric_outbound_records_total", target="erp", status="posted") == posted
    assert total(found, "carefabric_outbound_records_total", target="billing") == routed
    assert total(found, "carefabric_open_exceptions") == open_exc
    assert total(found, "carefabric_open_exceptions_by_age") == open_exc
    assert total(found, "carefabric_open_exceptions", reason_code="DEADLINE_MISSED") == open_misses == 2
    for dag_id, n in misses.items():
        assert total(found, "carefabric_deadline_misses_total", dag_id=dag_id) == n, dag_id
    assert misses == {"claims_reconciliation": 3, "erp_posting": 1}
    assert total(found, "carefabric_deadline_misses_total") == 4
    assert total(found, "carefabric_reconciliation_items") == items
    assert total(found, "carefabric_reconciliation_variance_cents") == variance
    assert total(found, "carefabric_reconciliation_business_date_seconds") == dt.datetime(
        2024, 3, 5, tzinfo=dt.UTC).timestamp()
    # Every posted charge document has a latency; all of it is in the window (+Inf bucket = count).
    count = total(found, "carefabric_e2e_latency_seconds_count")
    assert count == charge_documents >= 1
    assert total(found, "carefabric_e2e_latency_seconds_sum") > 0
    assert total(found, "carefabric_e2e_latency_seconds_bucket", le="+Inf") == count


def by_labels(found: dict[tuple[str, Any], float], name: str, *keys: str, **where: str) -> Counter[tuple[str, ...]]:
    """The samples of ``name`` matching ``where``, summed by the values of ``keys``."""
    out: Counter[tuple[str, ...]] = Counter()
    for (n, ls), v in found.items():
        labels = dict(ls)
        if n == name and all(labels.get(k) == x for k, x in where.items()):
            out[tuple(labels[k] for k in keys)] += int(v)
    return out


def test_peer_calls_match_the_clients_log_and_the_store(day: Day) -> None:
    found = samples(scrape(day.engine).get("/metrics").text)
    # ERP: every request the client made, by method, route and final status (no faults: no retries).
    expected = Counter((m, route_template(p).replace("{id}", "{external_id}"), str(c)) for m, p, c in day.erp_attempts)
    assert sum(expected.values()) > 0 and any(m == "POST" for m, _, _ in expected)
    assert by_labels(found, "carefabric_peer_requests_total", "method", "route", "code", peer="erp") == expected
    assert not by_labels(found, "carefabric_peer_retries_total", "peer")
    # Billing: the routed charges went in batches of CHARGE_BATCH_SIZE, each one POST answered 200.
    with session_scope(day.engine) as s:
        routed = s.scalar(select(func.count()).select_from(Charge).where(Charge.billing_charge_id.is_not(None)))
        sends = s.scalar(select(func.sum(ErpPosting.attempts)))
    assert by_labels(found, "carefabric_peer_requests_total", "route", "code", peer="billing", method="POST") == {
        ("/charges:batch", "200"): math.ceil(routed / CHARGE_BATCH_SIZE)}
    # The ERP's documents: one POST per send attempt the outbox counted.
    posts = by_labels(found, "carefabric_peer_requests_total", "method", peer="erp")[("POST",)]
    assert posts == sends > 0
    # The histogram counts the same requests, per route; +Inf is the count, time was spent.
    requests_by_route = by_labels(found, "carefabric_peer_requests_total", "peer", "method", "route")
    assert by_labels(found, "carefabric_peer_request_duration_seconds_count", "peer", "method", "route") == requests_by_route
    assert by_labels(found, "carefabric_peer_request_duration_seconds_bucket", "peer", "method", "route",
                     le="+Inf") == requests_by_route
    assert total(found, "carefabric_peer_request_duration_seconds_sum", peer="erp") > 0


def exported_names(text: str) -> dict[str, set[str]]:
    """Family -> the sample names it exports (a family without samples still has its type)."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    return {f.name: {f.name + x for x in suffixes[f.type]} for f in text_string_to_metric_families(text)}


def test_every_family_is_exported(day_store: Engine) -> None:
    exported = exported_names(scrape(day_store).get("/metrics").text)
    assert set(exported) == set(METRIC_NAMES)


def test_grafana_dashboard_queries_every_family_and_only_exported_names(day_store: Engine) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    used = {m for e in exprs for m in re.findall(r"\b(carefabric_[a-z0-9_]+)", e)}
    exported = exported_names(scrape(day_store).get("/metrics").text)
    samples_exported = set().union(*exported.values())
    assert used, "the dashboard queries nothing"
    assert used <= samples_exported, used - samples_exported
    queried = {family for family, names in exported.items() if names & used}
    assert queried == set(METRIC_NAMES), set(METRIC_NAMES) - queried
