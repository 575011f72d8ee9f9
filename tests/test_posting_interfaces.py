"""ERP posting (``carefabric.interfaces.erp_posting``) and exception replay
(``carefabric.interfaces.exception_replay``) against a real store on SQLite and PostgreSQL and the
real billing and ERP sandboxes. "Posted once" is always read from the ERP's own records.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import scenario
from sqlalchemy.engine import Engine

from carefabric.clients.rest import RejectedError
from carefabric.interfaces import ehr_ingest, erp_posting, exception_replay, payer_remittance
from carefabric.store.crosswalks import set_cdm
from carefabric.store.db import session_scope
from carefabric.store.models import Charge, ErpPosting, ExceptionRecord
from sandbox import ERP_TOKEN
from sandbox.runner import SandboxServers

DAY = scenario.BUSINESS_DATE


@pytest.fixture(scope="module")
def truth(day_dir: Path) -> dict[str, Any]:
    return json.loads((day_dir / "ground_truth.json").read_text())


def ingest_and_route(engine: Engine, day_dir: Path, peers: SandboxServers, *, remits: bool = False) -> int:
    """The day's HL7 extracts ingested and routed to billing (and its 835s stored); routed lines."""
    for path in sorted((day_dir / "ehr").glob("*.hl7")):
        ehr_ingest.ingest_file(path, engine, business_date=DAY, validate=False)
    if remits:
        for path in sorted((day_dir / "sftp").glob("*/*.835")):
            payer_remittance.process_file(path, engine, payer_folder=path.parent.name, business_date=DAY)
    return ehr_ingest.route_charges(engine, scenario.billing_client(peers.billing_url))["routed"]


def erp_documents(peers: SandboxServers) -> dict[str, int]:
    counts = scenario.peer_state(peers.erp_url)["counts"]
    return {k: counts[k] for k in ("journal_batches", "journal_lines", "inventory_movements", "cash_receipts")}


def postings(engine: Engine) -> list[ErpPosting]:
    return scenario.rows(engine, ErpPosting, order_by=ErpPosting.id)


# --------------------------------------------------------------------------- post_day


def sources(engine: Engine, status: str | None = None) -> Counter[str]:
    return Counter(p.source for p in postings(engine) if status is None or p.status == status)


def test_post_day_twice_posts_each_document_once(engine: Engine, day_dir: Path, truth: dict[str, Any],
                                                 peers: SandboxServers) -> None:
    assert ingest_and_route(engine, day_dir, peers, remits=True) > 0
    erp = scenario.erp_client(peers.erp_url)

    first = erp_posting.post_day(engine, erp, DAY)
    assert first["built"] == len(first["sent"]) > 0 and set(first["sent"].values()) == {"posted"}
    assert first["remittances_posted"] == truth["counts"]["remit_transactions_posted"]
    after_first = erp_documents(peers)
    assert after_first["cash_receipts"] == truth["counts"]["cash_receipts"]
    journals = scenario.erp_journals(peers.erp_url)
    assert Counter(j["source"] for j in journals) == Counter(j["source"] for j in truth["journals"])
    assert len({j["external_id"] for j in journals}) == len(journals)

    second = erp_posting.post_day(engine, erp, DAY)
    assert (second["built"], second["sent"], second["unsettled"]) == (0, {}, {})
    assert erp_documents(peers) == after_first
    assert {p.status for p in postings(engine)} == {"posted"}

    # what the ERP holds is the generator's ground truth for the day, to the cent
    from sandbox.judge import judge
    verdict = judge(day_dir / "ground_truth.json", peers.erp_url, ERP_TOKEN)
    assert verdict["differences"] == []


def test_a_503_is_looked_up_then_sent_once(engine: Engine, day_dir: Path, peers: SandboxServers) -> None:
    ingest_and_route(engine, day_dir, peers)
    scenario.admin(peers.erp_url, "faults", {"path_prefix": "/api/v1/journal-batches", "method": "POST",
                                             "status": 503, "count": 1, "retry_after": 1})
    erp = scenario.erp_client(peers.erp_url)
    outcome = erp_posting.post_day(engine, erp, DAY, sleep=lambda _: None)
    assert set(outcome["sent"].values()) == {"posted"}
    calls = [(m, p.split("/")[1], s) for m, p, s in erp.rest.attempts_log if "journal-batches" in p]
    # the 503 is never retried blindly: the ERP is asked for the document, then it is sent
    assert calls[0] == ("POST", "journal-batches", 503)
    first_doc = [c for c in calls[1:] if c[0] == "GET"]
    assert first_doc == [("GET", "journal-batches", 404)]
    assert scenario.peer_state(peers.erp_url)["faults_pending"] == []
    charges = scenario.erp_journals(peers.erp_url, source="CHARGES")
    assert len(charges) == 1
    (posting,) = [p for p in postings(engine) if p.source == "CHARGES"]
    assert (posting.status, posting.attempts, posting.erp_document_id) == ("posted", 2, charges[0]["document_id"])
    assert scenario.exceptions(engine, ExceptionRecord.interface == "erp_posting") == []


def test_closed_period_rejection_is_a_business_exception(engine: Engine, day_dir: Path, peers: SandboxServers) -> None:
    ingest_and_route(engine, day_dir, peers)
    scenario.admin(peers.erp_url, "load", {"periods": [{"period": "2024-03", "status": "closed"}]})
    erp = scenario.erp_client(peers.erp_url)
    with pytest.raises(RejectedError, match="rejected by the ERP"):
        erp_posting.post_day(engine, erp, DAY)
    assert erp_documents(peers) == {"journal_batches": 0, "journal_lines": 0, "inventory_movements": 0,
                                    "cash_receipts": 0}
    rejected = postings(engine)  # CHARGES and SUPPLY journals and the INVENTORY document
    assert rejected and {(p.status, p.error_code) for p in rejected} == {("rejected", "PERIOD_CLOSED")}
    exc = scenario.exceptions(engine, ExceptionRecord.reason_code == "ERP_REJECTED")
    assert {e.record_key for e in exc} == {p.external_id for p in rejected}
    charges_posting = next(p for p in rejected if p.source == "CHARGES")
    charges_exc = next(e for e in exc if e.record_key == charges_posting.external_id)
    assert (charges_exc.kind, charges_exc.record_type, charges_exc.status) == ("business", "posting", "open")
    assert charges_exc.summary == (f"ERP refused CHARGES CF01 {DAY.isoformat()} ({charges_posting.external_id}):"
                                   " PERIOD_CLOSED")
    # the 422 was not retried
    assert {p.kind for p in rejected} == {"journal", "inventory"}
    assert [s for _m, _p, s in erp.rest.attempts_log] == [422] * len(rejected)

    # still closed: the next run rebuilds the same documents, is refused again and fails again
    with pytest.raises(RejectedError):
        erp_posting.post_day(engine, erp, DAY)
    assert len(postings(engine)) == len(rejected)

    # period reopened: the same documents (same external ids) post on the next run
    scenario.admin(peers.erp_url, "load", {"periods": [{"period": "2024-03", "status": "open"}]})
    again = erp_posting.post_day(engine, erp, DAY)
    assert set(again["sent"].values()) == {"posted"}
    assert {p.status for p in postings(engine)} == {"posted"}
    docs = erp_documents(peers)
    assert (docs["journal_batches"], docs["inventory_movements"]) == (len(rejected) - 1, 1)
    resolved = scenario.exceptions(engine, ExceptionRecord.reason_code == "ERP_REJECTED")
    assert {(e.record_key, e.status) for e in resolved} == {(p.external_id, "resolved") for p in rejected}


def test_documents_left_by_a_crash_are_looked_up_not_sent_twice(engine: Engine, peers: SandboxServers) -> None:
    """An ERP without de-duplication: a document whose answer was lost is found, not re-posted."""
    scenario.admin(peers.erp_url, "settings", {"deduplicate": False})
    erp = scenario.erp_client(peers.erp_url)

    def payload(external_id: str, cents: str) -> dict[str, Any]:
        return {"external_id": external_id, "company": "CF01", "journal_date": DAY.isoformat(), "source": "CHARGES",
                "description": "test", "lines": [
                    {"account": "1200", "cost_center": None, "location": None, "facility": "F1", "debit": cents,
                     "credit": "0.00", "memo": None},
                    {"account": "4000", "cost_center": "CC-F1-ED", "location": None, "facility": "F1", "debit": "0.00",
                     "credit": cents, "memo": None}]}

    never_sent = payload("CF-CHARGES-CF01-20240305-crashbefore1", "12.50")
    sent_unrecorded = payload("CF-CHARGES-CF01-20240305-crashafter01", "20.00")
    first_answer = erp.send("journal", sent_unrecorded)  # the send that happened before the crash
    expired = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    with session_scope(engine) as s:
        for body, cents, status in ((never_sent, 1250, "pending"), (sent_unrecorded, 2000, "sending")):
            s.add(ErpPosting(kind="journal", external_id=body["external_id"], source="CHARGES", company="CF01",
                             business_date=DAY, status=status, payload=body, debit_cents=cents,
                             credit_cents=cents, attempts=0 if status == "pending" else 1,
                             claim_token="dead-worker" if status == "sending" else None,
                             lease_until=expired if status == "sending" else None))

    sent = erp_posting.send_outstanding(engine, erp, DAY)
    assert sent == {never_sent["external_id"]: "posted", sent_unrecorded["external_id"]: "found"}
    rows = {p.external_id: p for p in postings(engine)}
    assert {k: (p.status, p.attempts) for k, p in rows.items()} == {
        never_sent["external_id"]: ("posted", 1), sent_unrecorded["external_id"]: ("posted", 2)}
    assert rows[sent_unrecorded["external_id"]].erp_document_id == first_answer.document_id

    journals = scenario.erp_journals(peers.erp_url)
    assert sorted(j["external_id"] for j in journals) == sorted([never_sent["external_id"], sent_unrecorded["external_id"]])
    assert erp_posting.send_outstanding(engine, erp, DAY) == {}
    assert len(scenario.erp_journals(peers.erp_url)) == 2


# --------------------------------------------------------------------------- replay


def test_replay_after_a_cdm_fix_posts_just_that_line_once(engine: Engine, day_dir: Path, truth: dict[str, Any],
                                                          peers: SandboxServers) -> None:
    ingest_and_route(engine, day_dir, peers)
    erp = scenario.erp_client(peers.erp_url)
    billing = scenario.billing_client(peers.billing_url)
    erp_posting.post_day(engine, erp, DAY)
    before = {j["external_id"] for j in scenario.erp_journals(peers.erp_url)}
    billing_before = len(scenario.billing_charges(peers.billing_url))

    fix = truth["after_fix"]["crosswalk"]
    (exc,) = scenario.exceptions(engine, ExceptionRecord.reason_code == "UNKNOWN_CDM")
    (line,) = scenario.rows(engine, Charge, Charge.line_key == exc.record_key)
    assert (line.status, line.cdm_code) == ("held", fix["cdm_code"])
    assert exception_replay.select_exceptions(engine, reason_code="UNKNOWN_CDM") == [exc.id]
    with session_scope(engine) as s:
        set_cdm(s, fix["cdm_code"], fix["revenue_account"], erp_item=fix["erp_item"],
                procedure_code=fix["procedure_code"], description=fix["description"], actor="test")

    result = exception_replay.replay(engine, billing, erp, exception_ids=[exc.id], actor="test")
    assert (result["mapped"], result["still_held"], result["routed"]["routed"]) == (1, {}, 1)
    (replayed,) = scenario.exceptions(engine, ExceptionRecord.id == exc.id)
    assert replayed.status == "replayed"
    (line,) = scenario.rows(engine, Charge, Charge.line_key == exc.record_key)
    assert (line.status, line.revenue_account, line.cost_center) == ("routed", "4010", "CC-F1-LAB")

    new = [j for j in scenario.erp_journals(peers.erp_url) if j["external_id"] not in before]
    assert len(new) == 1 and new[0]["source"] == "CHARGES"
    lines = sorted((ln["account"], ln["cost_center"], ln["facility"], ln["debit"], ln["credit"]) for ln in new[0]["lines"])
    expected = sorted((ln["account"], ln["cost_center"], ln["facility"], ln["debit"], ln["credit"])
                      for ln in truth["after_fix"]["journals"][0]["lines"])
    assert lines == expected == [("1200", None, "F1", "45.00", "0.00"), ("4010", "CC-F1-LAB", "F1", "0.00", "45.00")]
    remote = [c for c in scenario.billing_charges(peers.billing_url) if c["line_key"] == exc.record_key]
    assert len(remote) == 1 and len(scenario.billing_charges(peers.billing_url)) == billing_before + 1

    # a second replay changes nothing anywhere
    state = erp_documents(peers)
    assert exception_replay.select_exceptions(engine, reason_code="UNKNOWN_CDM") == []
    again = exception_replay.replay(engine, billing, erp, exception_ids=[exc.id], actor="test")
    assert erp_documents(peers) == state
    assert len(scenario.billing_charges(peers.billing_url)) == billing_before + 1
    assert again["posted"] == {}
    (line,) = scenario.rows(engine, Charge, Charge.line_key == exc.record_key)
    assert line.status == "routed"
    assert scenario.exceptions(engine, ExceptionRecord.id == exc.id)[0].status == "replayed"
    assert scenario.count(engine, ExceptionRecord, ExceptionRecord.record_key == exc.record_key) == 1


def test_replay_that_still_does_not_map_keeps_the_exception_open(engine: Engine, day_dir: Path,
                                                                 peers: SandboxServers) -> None:
    ingest_and_route(engine, day_dir, peers)
    (exc,) = scenario.exceptions(engine, ExceptionRecord.reason_code == "UNKNOWN_CDM")
    result = exception_replay.replay(engine, scenario.billing_client(peers.billing_url),
                                     scenario.erp_client(peers.erp_url), exception_ids=[exc.id], actor="test")
    assert (result["mapped"], result["still_held"]) == (0, {"UNKNOWN_CDM": 1})
    (still,) = scenario.exceptions(engine, ExceptionRecord.id == exc.id)
    assert (still.status, still.attempts) == ("open", 2)
    assert erp_documents(peers)["journal_batches"] == 0
    assert scenario.rows(engine, Charge, Charge.line_key == exc.record_key)[0].status == "held"
