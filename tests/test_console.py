"""The operator console (FastAPI, JSON + HTML) against a real store holding a generated day.

The day: the sandbox generator's scenario (3 facilities, injected faults), crosswalks imported,
ERP master data loaded, every HL7/FHIR file ingested and every 835 processed by the real
interfaces; one ERP posting and one reconciliation run are added as rows. The generated MRNs and
patient names are collected from the raw HL7 and must never appear in any response.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from carefabric.console import create_app
from carefabric.console.replay import TriggeredRun
from carefabric.console.security import AuthError, Principal
from carefabric.store.db import get_engine, session_scope, upgrade
from carefabric.store.models import (
    AuditLog,
    Charge,
    CrosswalkHistory,
    ErpPosting,
    ExceptionEvent,
    ExceptionRecord,
    InboundFile,
    PostingContribution,
    ReconciliationItem,
    ReconciliationRun,
)

PROJECT = Path(__file__).resolve().parents[1]
BUSINESS_DATE = dt.date(2026, 11, 23)


# --------------------------------------------------------------------------- the day


def build_day(root: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Generate a small scenario and run it through ingest and remittance into a new store."""
    from carefabric.interfaces import erp_master_data, payer_remittance
    from carefabric.interfaces.ehr_ingest import ingest_file
    from carefabric.store.bulk import upsert
    from carefabric.store.crosswalks import import_csv_dir
    from sandbox.generator import main as generate

    monkeypatch.setenv("CAREFABRIC_DATA_DIR", str(root / "data"))
    scenario = root / "scenario"
    assert generate(["--out", str(scenario), "--encounters", "12", "--facilities", "3",
                     "--date", BUSINESS_DATE.isoformat()]) == 0
    url = f"sqlite:///{root / 'store.db'}"
    upgrade(url)
    engine = get_engine(url)
    try:
        master = json.loads((scenario / "erp_master.json").read_text())
        with session_scope(engine) as s:
            import_csv_dir(s, scenario / "crosswalks", "test-setup")
            for key, items in master.items():
                kind = key.replace("_", "-")
                model, keys = erp_master_data.TABLES[kind]
                upsert(s, model, erp_master_data._rows(kind, items), keys)
        for path in sorted((scenario / "ehr").iterdir()):
            ingest_file(path, engine, business_date=BUSINESS_DATE, validate=False)
        for path in sorted((scenario / "sftp").rglob("*.835"), key=lambda p: ("resend" in p.name, p.name)):
            payer_remittance.process_file(path, engine, payer_folder=path.parent.name, business_date=BUSINESS_DATE)
        truth = json.loads((scenario / "ground_truth.json").read_text())
        missing = next(f for f in truth["faults"] if f["fault"] == "missing_in_billing")["reference"]
        _add_posting_and_reconciliation(engine, missing)
    finally:
        engine.dispose()
    mrns, names = set(), set()
    for path in (scenario / "ehr").glob("*.hl7"):
        for segment in re.split(r"[\r\n]+", path.read_text()):
            fields = segment.split("|")
            if fields[0] != "PID" or len(fields) < 6:
                continue
            for rep in fields[3].split("~"):
                comps = rep.split("^")
                if len(comps) >= 5 and comps[4] == "MR" and comps[0]:
                    mrns.add(comps[0])
            family = fields[5].split("^")[0]
            if len(family) >= 5:
                names.add(family)
    return {"url": url, "scenario": scenario, "mrns": mrns, "names": names, "truth": truth}


def _add_posting_and_reconciliation(engine: Any, missing_claim: str) -> None:
    """A posted CHARGES journal carrying two mapped lines, and a reconciliation run with one
    matched charges item and one claim missing in billing."""
    with session_scope(engine) as s:
        lines = list(s.scalars(select(Charge).where(Charge.status == "mapped").order_by(Charge.id).limit(2)))
        posting = ErpPosting(
            kind="journal", external_id="CF-CHARGES-CF01-20261123-abcdef123456", source="CHARGES", company="CF01",
            business_date=BUSINESS_DATE, status="posted", erp_document_id="JE-000042", payload={"lines": []},
            debit_cents=sum(c.amount_cents for c in lines), credit_cents=sum(c.amount_cents for c in lines), attempts=1,
        )
        for c in lines:
            posting.contributions.append(
                PostingContribution(record_type="charge", record_key=c.line_key, account="1200", amount_cents=c.amount_cents)
            )
            posting.contributions.append(
                PostingContribution(record_type="charge", record_key=c.line_key, account=c.revenue_account or "4000",
                                    amount_cents=-c.amount_cents)
            )
        s.add(posting)
        run = ReconciliationRun(business_date=BUSINESS_DATE, run_number=1, status="completed",
                                control_totals={"items_total": 2, "unmatched_total": 1})
        run.items.append(ReconciliationItem(check_name="charges", item_key=f"{BUSINESS_DATE}|{lines[0].cost_center}",
                                            status="matched", ehr_cents=100, billing_cents=100, gl_cents=100))
        run.items.append(ReconciliationItem(check_name="claims", item_key=f"{missing_claim}|PAYER-MEDICARE",
                                            status="missing_in_billing", remit_cents=49848, gl_cents=49848,
                                            variance_cents=49848, reason="not in billing"))
        s.add(run)


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("console_day")
    with pytest.MonkeyPatch.context() as mp:
        return build_day(root, mp)


@pytest.fixture
def store(day: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """A private copy of the day's store for one test (actions write to it)."""
    source = Path(day["url"].removeprefix("sqlite:///"))
    target = tmp_path / "store.db"
    shutil.copyfile(source, target)
    return {**day, "url": f"sqlite:///{target}"}


#: The host's authentication, reduced to a table (the real one, Airflow's, is exercised in
#: tests/test_console_airflow.py): "Bearer <name>" is that user; alice acts, victor only reads.
USERS = {"alice": (True, True), "victor": (True, False), "nobody": (False, False)}


async def bearer_auth(request: Any) -> Principal:
    name = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    if name not in USERS:
        raise AuthError(401, "log in first")
    return Principal(name=name, can_read=USERS[name][0], can_act=USERS[name][1], credential=name, ambient=False)


def make_client(store: dict[str, Any], user: str = "alice", **kwargs: Any) -> tuple[TestClient, Any]:
    engine = get_engine(store["url"])
    app = create_app(lambda: engine, authenticate=bearer_auth, csrf_secret=b"s" * 32, **kwargs)
    return TestClient(app, headers={"Authorization": f"Bearer {user}"}), engine


@pytest.fixture
def client(store: dict[str, Any]) -> Any:
    c, engine = make_client(store)
    yield c
    engine.dispose()


def scalar(store: dict[str, Any], stmt: Any) -> Any:
    engine = get_engine(store["url"])
    try:
        with session_scope(engine) as s:
            return s.scalar(stmt)
    finally:
        engine.dispose()


def open_exception_id(client: TestClient, reason: str) -> int:
    items = client.get("/api/exceptions", params={"status": "open", "reason_code": reason}).json()["items"]
    assert items, reason
    return items[0]["id"]


# --------------------------------------------------------------------------- health


def test_health_counts_files_exceptions_postings_and_reconciliation(client: TestClient, store: dict[str, Any]) -> None:
    today = dt.datetime.now(dt.UTC).date()
    body = client.get("/api/health", params={"day": today.isoformat()}).json()
    by_name = {i["interface"]: i for i in body["interfaces"]}
    assert list(by_name)[:7] == ["ehr_ingest", "payer_remittance", "billing_sync", "erp_posting",
                                 "claims_reconciliation", "exception_replay", "erp_master_data"]

    ehr_paths = list((store["scenario"] / "ehr").iterdir())
    ehr_files = len(ehr_paths)
    ehr = by_name["ehr_ingest"]
    assert ehr["files"]["today"] == {
        "received": ehr_files, "processed": ehr_files, "rejected": 0, "duplicate": 0
    }
    assert ehr["files"]["total"]["received"] == ehr_files
    assert ehr["files"]["last_file_name"] in {p.name for p in (store["scenario"] / "ehr").iterdir()}

    # 835s: the resend is the same bytes (no new file row); unbalanced + unknown payer are rejected.
    distinct_835 = len(list((store["scenario"] / "sftp").rglob("*.835"))) - 1
    remit = by_name["payer_remittance"]
    assert remit["files"]["today"]["received"] == distinct_835
    assert remit["files"]["today"]["rejected"] == 2
    assert remit["files"]["today"]["processed"] == distinct_835 - 2
    assert remit["state"] == "failing"
    assert remit["exceptions"]["by_reason"] == {"DUPLICATE_INTERCHANGE": 1, "REMIT_UNBALANCED": 1, "UNKNOWN_PAYER": 1}

    held = scalar(store, select(func.count()).select_from(Charge).where(Charge.status == "held"))
    assert ehr["exceptions"]["by_reason"]["UNKNOWN_CDM"] == 1
    assert ehr["exceptions"]["by_reason"]["HL7_PARSE_ERROR"] == 1  # the malformed message (an empty FHIR export is fine)
    assert ehr["exceptions"]["by_reason"]["UNKNOWN_CDM"] + ehr["exceptions"]["by_reason"]["INACTIVE_COST_CENTER"] == held
    assert ehr["exceptions"]["business"] == ehr["exceptions"]["open"] == held + 1
    assert ehr["exceptions"]["transient"] == 0
    assert ehr["state"] == "attention"
    total_open = scalar(store, select(func.count()).select_from(ExceptionRecord).where(ExceptionRecord.status == "open"))
    assert body["exceptions"]["open"] == total_open == held + 1 + 3

    posting = by_name["erp_posting"]["last_posting"]
    assert posting["status"] == "posted" and posting["erp_document_id"] == "JE-000042"
    run = by_name["claims_reconciliation"]["last_run"]
    assert run["business_date"] == BUSINESS_DATE.isoformat() and run["unmatched"] == 1 and run["items"] == 2
    assert by_name["claims_reconciliation"]["state"] == "attention"
    assert by_name["erp_master_data"]["master_rows"]["cost_centers"] > 0
    assert by_name["billing_sync"]["state"] == "idle"

    # Another day: nothing received that day, totals unchanged.
    other = client.get("/api/health", params={"day": (today - dt.timedelta(days=3)).isoformat()}).json()
    ehr_other = next(i for i in other["interfaces"] if i["interface"] == "ehr_ingest")
    assert ehr_other["files"]["today"]["received"] == 0 and ehr_other["files"]["total"]["received"] == ehr_files

    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "payer_remittance" in page.text and "JE-000042" in page.text and "REMIT_UNBALANCED" in page.text
    assert "2 items" in page.text and "1 unmatched" in page.text and "built-in method" not in page.text


# --------------------------------------------------------------------------- exceptions


def test_exception_filters_and_paging(client: TestClient, store: dict[str, Any]) -> None:
    everything = client.get("/api/exceptions").json()
    total = scalar(store, select(func.count()).select_from(ExceptionRecord))
    assert everything["total"] == total
    ids = [e["id"] for e in everything["items"]]
    assert ids == sorted(ids, reverse=True)

    remit = client.get("/api/exceptions", params={"interface": "payer_remittance"}).json()
    assert remit["total"] == 3 and {e["interface"] for e in remit["items"]} == {"payer_remittance"}
    cdm = client.get("/api/exceptions", params={"reason_code": "UNKNOWN_CDM", "status": "open"}).json()
    assert cdm["total"] == 1 and cdm["items"][0]["record_type"] == "charge"
    assert client.get("/api/exceptions", params={"status": "discarded"}).json()["total"] == 0
    assert client.get("/api/exceptions", params={"kind": "transient"}).json()["total"] == 0

    first = client.get("/api/exceptions", params={"page_size": 3, "page": 1}).json()
    second = client.get("/api/exceptions", params={"page_size": 3, "page": 2}).json()
    assert len(first["items"]) == 3 and first["pages"] == -(-total // 3)
    assert not {e["id"] for e in first["items"]} & {e["id"] for e in second["items"]}
    assert client.get("/api/exceptions", params={"page_size": 0}).status_code == 400

    html = client.get("/exceptions", params={"reason_code": "UNKNOWN_CDM"})
    assert html.status_code == 200 and "UNKNOWN_CDM" in html.text and "CDM code" in html.text
    detail = client.get(f"/api/exceptions/{cdm['items'][0]['id']}").json()
    assert detail["events"][0]["action"] == "opened" and detail["trace_key"] == detail["record_key"]
    assert detail["replay_command"].startswith("airflow dags trigger exception_replay --conf '")
    assert client.get("/api/exceptions/999999").status_code == 404
    assert client.get("/exceptions/999999").status_code == 404


def test_discard_requires_a_note_and_is_audited_as_the_user(client: TestClient, store: dict[str, Any]) -> None:
    exc_id = open_exception_id(client, "REMIT_UNBALANCED")
    for body in ({}, {"note": ""}, {"note": "   "}):
        r = client.post(f"/api/exceptions/{exc_id}/discard", json=body)
        assert r.status_code == 400 and "note" in r.json()["detail"]
    assert client.post(f"/api/exceptions/{exc_id}/discard").status_code == 400
    assert client.get(f"/api/exceptions/{exc_id}").json()["status"] == "open"
    # A body naming someone else is refused: the actor is never the client's to say.
    forged = client.post(f"/api/exceptions/{exc_id}/discard", json={"note": "x", "actor": "mallory"})
    assert forged.status_code == 400

    r = client.post(f"/api/exceptions/{exc_id}/discard?actor=mallory", json={"note": "payer resent a corrected file"},
                    headers={"X-Carefabric-Actor": "mallory"})
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "discarded" and body["closed_at"]
    assert body["events"][-1] == {**body["events"][-1], "action": "discarded", "actor": "alice",
                                  "note": "payer resent a corrected file"}
    assert body["audit"][-1]["actor"] == "alice" and body["audit"][-1]["action"] == "exception.discard"
    assert scalar(store, select(func.count()).select_from(AuditLog).where(
        AuditLog.action == "exception.discard", AuditLog.actor == "alice")) == 1
    assert scalar(store, select(func.count()).select_from(AuditLog).where(AuditLog.actor == "mallory")) == 0
    assert scalar(store, select(func.count()).select_from(ExceptionEvent).where(
        ExceptionEvent.exception_id == exc_id, ExceptionEvent.action == "discarded")) == 1

    again = client.post(f"/api/exceptions/{exc_id}/discard", json={"note": "twice"})
    assert again.status_code == 409

    # The HTML form: a note is the only free text; a smuggled actor field changes nothing.
    other = open_exception_id(client, "UNKNOWN_PAYER")
    form = client.post(f"/exceptions/{other}/discard", data={"note": "test payer", "actor": "mallory"},
                       follow_redirects=False)
    assert form.status_code == 303 and form.headers["location"].startswith(f"/exceptions/{other}?msg=")
    assert client.get(f"/api/exceptions/{other}").json()["events"][-1]["actor"] == "alice"
    assert client.post(f"/exceptions/{other}/discard", data={"note": "x"}).status_code == 409


def test_read_only_user_sees_but_cannot_act(store: dict[str, Any]) -> None:
    client, engine = make_client(store, user="victor")
    try:
        exc_id = open_exception_id(client, "DUPLICATE_INTERCHANGE")
        page = client.get(f"/exceptions/{exc_id}")
        assert page.status_code == 200 and "Mark resolved" not in page.text and "victor" in page.text
        r = client.post(f"/api/exceptions/{exc_id}/resolve")
        assert r.status_code == 403 and "may view but not act" in r.json()["detail"]
        assert client.put("/api/crosswalks/cdm", json={"values": {"cdm_code": "X1", "revenue_account": "4010"}}).status_code == 403
        assert client.get(f"/api/exceptions/{exc_id}").json()["status"] == "open"
        stranger = TestClient(client.app)
        assert stranger.get("/api/exceptions").status_code == 401 and stranger.get("/").status_code == 401
        assert TestClient(client.app, headers={"Authorization": "Bearer nobody"}).get("/").status_code == 403
    finally:
        engine.dispose()


def test_bulk_resolve_with_one_note(client: TestClient, store: dict[str, Any]) -> None:
    ids = [e["id"] for e in client.get("/api/exceptions", params={"status": "open", "interface": "payer_remittance"}).json()["items"]]
    assert len(ids) == 3
    r = client.post("/api/bulk/resolve", json={"exception_ids": [*ids, 999999], "note": "payer called"})
    assert r.status_code == 200 and sorted(r.json()["done"]) == sorted(ids) and "999999" in r.json()["failed"]
    for exc_id in ids:
        last = client.get(f"/api/exceptions/{exc_id}").json()["events"][-1]
        assert last["actor"] == "alice" and last["note"] == "payer called"


class RecordingTrigger:
    """Stands in for Airflow's REST API (tests/test_console_airflow.py uses the real one)."""

    def __init__(self, run: Any = None) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.run = run

    def trigger(self, principal: Principal, conf: dict[str, Any]) -> TriggeredRun:
        self.calls.append((principal.name, conf))
        if self.run:
            self.run(conf)
        return TriggeredRun("exception_replay", f"manual__{len(self.calls)}", "queued", "http://airflow/dags/x", conf)

    def status(self, principal: Principal, run_id: str) -> TriggeredRun:
        return TriggeredRun("exception_replay", run_id, "success", "http://airflow/dags/x", {})


def test_replay_triggers_the_dag_as_the_user_only_where_it_means_something(store: dict[str, Any]) -> None:
    trigger = RecordingTrigger()
    client, engine = make_client(store, trigger=trigger)
    try:
        exc_id = open_exception_id(client, "UNKNOWN_CDM")
        r = client.post("/api/replay", json={"exception_ids": [exc_id]})
        body = r.json()
        assert r.status_code == 200 and body["mode"] == "triggered" and body["exception_ids"] == [exc_id]
        assert body["still_held"] == {"UNKNOWN_CDM": [exc_id]} and body["run"]["url"] == "http://airflow/dags/x"
        assert trigger.calls == [("alice", {"exception_ids": [exc_id]})]
        assert client.get(f"/api/exceptions/{exc_id}").json()["status"] == "open"
        assert scalar(store, select(func.count()).select_from(AuditLog).where(
            AuditLog.action == "exception.replay_requested", AuditLog.actor == "alice")) == 1

        bulk = client.post("/api/replay", json={"reason_code": "INACTIVE_COST_CENTER", "business_date_from": "2026-11-01"})
        assert bulk.json()["mode"] == "triggered" and trigger.calls[-1][1]["exception_ids"]
        by_reason = client.post("/api/replay", json={"reason_code": "INACTIVE_COST_CENTER"}).json()
        assert trigger.calls[-1][1] == {"exception_ids": [], "reason_code": "INACTIVE_COST_CENTER"} and by_reason["run"]
        none = client.post("/api/replay", json={"reason_code": "INACTIVE_COST_CENTER", "business_date_to": "2001-01-01"})
        assert none.json()["mode"] == "none"

        parse_error = open_exception_id(client, "HL7_PARSE_ERROR")
        assert client.get(f"/api/exceptions/{parse_error}").json()["replayable"] is False
        refused = client.post("/api/replay", json={"exception_ids": [parse_error]})
        assert refused.status_code == 400 and "can be replayed" in refused.json()["detail"]
        assert client.post("/api/replay", json={"reason_code": "DUPLICATE_INTERCHANGE"}).status_code == 400
        assert "Replay</button>" not in client.get(f"/exceptions/{parse_error}").text
        assert client.post("/api/replay", json={}).status_code == 400
        assert client.get("/api/replay/runs/manual__1").json()["state"] == "success"
        page = client.post(f"/exceptions/{exc_id}/replay")
        assert page.status_code == 200 and 'href="http://airflow/dags/x"' in page.text
    finally:
        engine.dispose()


def test_set_cdm_offers_replay_and_the_run_maps_the_line(store: dict[str, Any]) -> None:
    from carefabric.interfaces.exception_replay import remap_charges

    holder: dict[str, Any] = {}
    trigger = RecordingTrigger(run=lambda conf: remap_charges(holder["engine"], conf["exception_ids"], actor="alice"))
    client, engine = make_client(store, trigger=trigger)
    holder["engine"] = engine
    try:
        fault = next(f for f in store["truth"]["faults"] if f["fault"] == "unknown_cdm")
        code = fault["reference"]
        exc_id = open_exception_id(client, "UNKNOWN_CDM")

        bad = client.put("/api/crosswalks/cdm", json={"values": {"cdm_code": code, "revenue_account": "9999"}})
        assert bad.status_code == 400 and "9999" in bad.json()["detail"]
        assert client.put("/api/crosswalks/cdm", json={"values": {"cdm_code": code, "colour": "x"}}).status_code == 400
        r = client.put("/api/crosswalks/cdm", json={"values": {"cdm_code": code, "revenue_account": "4010",
                                                                "description": "HBA1C"}})
        assert r.status_code == 200 and r.json()["version"] == 1 and r.json()["changed_by"] == "alice"
        assert r.json()["newly_mappable_exceptions"] == [exc_id]
        history = client.get("/api/crosswalks/cdm/history", params={"key": code}).json()
        assert history[0]["changed_by"] == "alice" and history[0]["after"]["revenue_account"] == "4010"
        assert {"field": "revenue_account", "before": None, "after": "4010"} in history[0]["changes"]
        assert scalar(store, select(func.count()).select_from(AuditLog).where(
            AuditLog.action == "crosswalk.set", AuditLog.actor == "alice")) == 1

        result = client.post("/api/replay", json={"exception_ids": [exc_id]}).json()
        assert result["mode"] == "triggered" and trigger.calls == [("alice", {"exception_ids": [exc_id]})]
        assert client.get(f"/api/exceptions/{exc_id}").json()["status"] == "replayed"
        line_key = client.get(f"/api/exceptions/{exc_id}").json()["record_key"]
        charge = client.get("/api/trace", params={"key": line_key}).json()["charges"][0]
        assert charge["status"] == "mapped" and charge["revenue_account"] == "4010"
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- trace


def test_trace_of_a_held_line_shows_its_message_file_and_exception(client: TestClient, store: dict[str, Any]) -> None:
    exc_id = open_exception_id(client, "INACTIVE_COST_CENTER")
    line_key = client.get(f"/api/exceptions/{exc_id}").json()["record_key"]
    t = client.get("/api/trace", params={"key": line_key}).json()
    assert t["found"] and t["matched_as"] == ["line_key"]
    assert [c["line_key"] for c in t["charges"]] == [line_key] and t["charges"][0]["status"] == "held"
    assert t["charges"][0]["cost_center"] is None and t["charges"][0]["billing_charge_id"] is None
    assert len(t["messages"]) == 1 and t["messages"][0]["control_id"] == line_key.split("|")[-2]
    assert "payload" not in t["messages"][0]
    assert len(t["files"]) == 1 and t["files"][0]["interface"] == "ehr_ingest"
    assert [e["id"] for e in t["exceptions"]] == [exc_id] and t["postings"] == []

    html = client.get("/trace", params={"key": line_key})
    assert html.status_code == 200 and f">{exc_id}</a>" in html.text and "INACTIVE_COST_CENTER" in html.text


def test_trace_of_a_posted_line_and_of_its_message_file_and_claim(client: TestClient, store: dict[str, Any]) -> None:
    engine = get_engine(store["url"])
    with session_scope(engine) as s:
        line_key = s.scalars(select(PostingContribution.record_key).order_by(PostingContribution.id)).first()
        charge = s.scalars(select(Charge).where(Charge.line_key == line_key)).one()
        file_name = s.scalars(select(InboundFile.name).where(InboundFile.interface == "ehr_ingest")).first()
    engine.dispose()
    t = client.get("/api/trace", params={"key": line_key}).json()
    assert [p["erp_document_id"] for p in t["postings"]] == ["JE-000042"]
    assert {c["account"] for c in t["postings"][0]["contributions"]} == {"1200", charge.revenue_account}
    assert [r["status"] for r in t["reconciliation"]] == ["matched"]

    by_message = client.get("/api/trace", params={"key": charge.message_control_id}).json()
    assert "message_control_id" in by_message["matched_as"] and line_key in {c["line_key"] for c in by_message["charges"]}

    by_file = client.get("/api/trace", params={"key": file_name}).json()
    assert by_file["matched_as"] == ["file"] and len(by_file["messages"]) > 1

    fault = next(f for f in store["truth"]["faults"] if f["fault"] == "missing_in_billing")
    claim = client.get("/api/trace", params={"key": fault["reference"]}).json()
    assert claim["matched_as"] == ["claim_id"] and claim["billing_claims"] == []
    assert [r["status"] for r in claim["reconciliation"]] == ["missing_in_billing"]
    assert [c["claim_id"] for c in claim["claims"]] == [fault["reference"]]
    assert [f["name"] for f in claim["files"]] == [fault["details"]["file"]]
    assert claim["files"][0]["interface"] == "payer_remittance"

    dup = next(f for f in store["truth"]["faults"] if f["fault"] == "duplicate_interchange")
    by_resend = client.get("/api/trace", params={"key": dup["reference"]}).json()
    assert "DUPLICATE_INTERCHANGE" in {e["reason_code"] for e in by_resend["exceptions"]}

    missing = client.get("/api/trace", params={"key": "no-such-thing"}).json()
    assert missing["found"] is False and missing["matched_as"] == []
    assert client.get("/api/trace", params={"key": "  "}).status_code == 400


# --------------------------------------------------------------------------- crosswalks


def test_crosswalk_pages_and_forms_for_every_crosswalk(client: TestClient, store: dict[str, Any]) -> None:
    overview = client.get("/api/crosswalks").json()
    assert set(overview) == {"departments", "cdm", "payers", "facilities"} and overview["cdm"]["rows"] > 0
    cdm = client.get("/api/crosswalks/cdm").json()
    assert cdm["key"] == ["cdm_code"] and all(r["version"] == 1 and r["changed_by"] == "test-setup" for r in cdm["rows"])
    assert client.get("/api/crosswalks/nope").status_code == 404
    r = client.post("/crosswalks/cdm", data={"cdm_code": "CDM9901", "revenue_account": "4010", "actor": "erin"})
    assert r.status_code == 400  # no such column: the actor is never a form field
    r = client.post("/crosswalks/cdm", data={"cdm_code": "CDM9901", "revenue_account": "4010"})
    assert r.status_code == 200 and "CDM9901" in r.text and "version 1" in r.text
    assert scalar(store, select(func.count()).select_from(CrosswalkHistory).where(CrosswalkHistory.key == "CDM9901")) == 1
    dept = client.get("/api/crosswalks/departments").json()["rows"][0]
    payer = client.get("/api/crosswalks/payers").json()["rows"][0]
    for table, values in (("departments", {"facility": dept["facility"], "department": dept["department"],
                                           "cost_center": dept["cost_center"]}),
                          ("payers", {"x12_payer_id": "NEWPAYER", "erp_payer_id": payer["erp_payer_id"]})):
        assert client.post(f"/crosswalks/{table}", data=values).status_code == 200
        assert client.get("/crosswalks", params={"table": table, "edit": "|".join(values[k] for k in
                          client.get(f"/api/crosswalks/{table}").json()["key"])}).status_code == 200
    audit = client.get("/audit")
    assert audit.status_code == 200 and "cdm:CDM9901 set to version 1: cdm_code=CDM9901, revenue_account=4010" in audit.text
    assert "{&#39;" not in audit.text and "{'" not in audit.text


# --------------------------------------------------------------------------- PHI and plugin


def test_no_mrn_name_or_raw_payload_in_any_response(client: TestClient, store: dict[str, Any]) -> None:
    assert store["mrns"], "the generated HL7 should carry MRNs (PID-3 type MR)"
    texts: list[str] = []

    def get(path: str, **params: Any) -> Any:
        r = client.get(path, params=params)
        assert r.status_code == 200, (path, r.text[:300])
        texts.append(r.text)
        return r

    get("/api/health")
    get("/")
    listing = get("/api/exceptions", page_size=500).json()
    get("/exceptions", status="")
    keys: set[str] = set()
    for e in listing["items"]:
        detail = get(f"/api/exceptions/{e['id']}").json()
        get(f"/exceptions/{e['id']}")
        keys.add(detail["trace_key"])
    engine = get_engine(store["url"])
    with session_scope(engine) as s:
        keys |= set(s.scalars(select(InboundFile.name)))
        keys |= set(s.scalars(select(Charge.message_control_id).limit(20)))
        keys |= set(s.scalars(select(Charge.line_key).limit(20)))
    engine.dispose()
    keys |= {"CLM-F3-0000014", "CLM-F1-0000001"}
    for key in sorted(keys):
        get("/api/trace", key=key)
        get("/trace", key=key)
    for table in ("cdm", "departments", "payers", "facilities"):
        get(f"/api/crosswalks/{table}")
        get("/crosswalks", table=table)
    get("/api/audit")
    get("/audit")

    everything = "\n".join(texts)
    for mrn in store["mrns"]:
        assert mrn not in everything
    for name in store["names"]:
        assert name not in everything
    for marker in ("PID|", "MSH|", "FT1|", "NM1*QC", "ISA*", '"payload"', "patient_token", "encounter_id"):
        assert marker not in everything


def test_bad_input_gets_a_short_400_or_404_never_a_500(client: TestClient) -> None:
    cases = {
        "/api/exceptions/99999999999999999999": 400, "/exceptions/99999999999999999999": 400,
        "/api/exceptions/0": 400, "/api/exceptions/abc": 400, "/api/exceptions?page=abc": 400,
        "/api/exceptions?page=99999999999999999999": 400, "/api/exceptions?page=500": 404,
        "/api/exceptions?page_size=100000": 400, "/api/exceptions?sort=bogus": 400,
        "/api/exceptions?date_from=2026-13-45": 400, "/api/exceptions?min_amount=1e300": 400,
        "/api/audit?limit=-1": 400, "/api/audit?limit=5000": 400, "/audit?limit=0": 400,
        "/api/health?day=99999-01-01": 400, "/?day=not-a-date": 400,
        "/api/crosswalks/cdm/history?limit=99999999999999999999": 400, "/api/trace?key=" + "x" * 300: 400,
        "/exceptions/999999": 404, "/api/crosswalks/nope": 404,
    }
    for path, status in cases.items():
        r = client.get(path)
        assert r.status_code == status, (path, r.status_code, r.text[:200])
        assert len(r.text) < 5000 and "Traceback" not in r.text
        if path.startswith("/api"):
            assert len(r.json()["detail"]) <= 300
    assert len(client.get("/api/audit", params={"limit": 1000}).json()) <= 1000
    assert client.post("/api/bulk/discard", json={"exception_ids": [2**40], "note": "x"}).status_code == 400
