"""HL7 messages re-sent under an MSH-10 already stored (issue 7), through ``ehr_ingest`` and
``exception_replay`` against the real billing and ERP sandboxes, on SQLite and PostgreSQL.

Policy (docs/CONTRACTS.md): an identical re-send is skipped silently; a different one is kept as
a new version and held as ``CONFLICTING_RESEND``; nothing from it routes or posts until a person
discards it (the original stands) or replays it (accepted as a correction: the lines in effect
are reversed under their own keys, the new version's lines post under versioned keys).
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
import scenario
from sqlalchemy.engine import Engine

from carefabric.console import actions
from carefabric.interfaces import ehr_ingest, exception_replay
from carefabric.interfaces.erp_posting import post_day
from carefabric.store.db import session_scope
from carefabric.store.models import Charge, ExceptionEvent, ExceptionRecord, RawMessage, SupplyUsage
from carefabric.store.models.ingest import RawMessageVersion
from sandbox import ERP_TOKEN
from sandbox.runner import SandboxServers

DAY = scenario.BUSINESS_DATE
SENDER = "EPICCARE|F1"
REASON = "CONFLICTING_RESEND"


# Every test starts from emptied peers, the ERP holding the day's master data (conftest ``peers``),
# and the day's seeded store (conftest ``engine``).
pytestmark = pytest.mark.usefixtures("peers")


def dft(control_id: str, *lines: tuple[str, str, str]) -> bytes:
    """A DFT^P03 of encounter V-RS1 at F1; lines are (CDM code, department, FT1-11 amount)."""
    segments = [
        f"MSH|^~\\&|EPICCARE|F1|CAREFABRIC|CF01|20240305101500||DFT^P03^DFT_P03|{control_id}|P|2.5.1",
        "EVN|P03|20240305101500",
        "PID|1||M00340524^^^F1^MR||FLORES^ELIZABETH^M||19610412|F",
        "PV1|1|O|ED^^^F1||||||||||||||||V-RS1|MB||||||||||||||||||||F1",
    ]
    for n, (cdm, dept, amount) in enumerate(lines, 1):
        segments.append(f"FT1|{n}|T-{control_id}-{n}||20240305|20240305|CG|{cdm}^X^CDM|||1|{amount}||{dept}")
    return ("\r".join(segments) + "\r").encode()


ORIGINAL = (("CDM1002", "ED", "625.00"), ("CDM2001", "LAB", "40.00"))
CORRECTED = (("CDM1002", "ED", "600.00"), ("CDM2001", "LAB", "40.00"), ("CDM2002", "LAB", "55.00"))


def ingest(engine: Engine, tmp_path: Path, name: str, *messages: bytes, crlf: bool = False) -> dict[str, object]:
    """One file; ``crlf`` writes other bytes (a new file, not a re-drop) holding the same messages."""
    path = tmp_path / name
    data = b"".join(messages)
    path.write_bytes(data.replace(b"\r", b"\r\n") if crlf else data)
    return ehr_ingest.ingest_file(path, engine, business_date=DAY, validate=False)


def lines_of(engine: Engine, control_id: str) -> dict[str, int]:
    rows = scenario.rows(engine, Charge, Charge.message_control_id == control_id, order_by=Charge.id)
    return {r.line_key: r.amount_cents for r in rows}


def billing_amounts(sandbox: SandboxServers) -> dict[str, int]:
    return {c["line_key"]: int(Decimal(c["amount"]) * 100) for c in scenario.billing_charges(sandbox.billing_url)}


def ledger_net(sandbox: SandboxServers, account: str) -> int:
    """Debits minus credits on ``account`` over every CHARGES journal the ERP holds for the day."""
    total = 0
    for batch in scenario.erp_journals(sandbox.erp_url, DAY, "CHARGES"):
        full = scenario.peer_list(sandbox.erp_url, ERP_TOKEN, "/journal-batches", {"journal_date": DAY.isoformat()})
        lines = batch.get("lines") or next(b for b in full if b["external_id"] == batch["external_id"])["lines"]
        total += sum(int(Decimal(ln["debit"]) * 100) - int(Decimal(ln["credit"]) * 100)
                     for ln in lines if ln["account"] == account)
    return total


def test_identical_resend_is_silent_and_a_different_one_is_held(engine: Engine, tmp_path: Path,
                                                                sandbox: SandboxServers) -> None:
    billing = scenario.billing_client(sandbox.billing_url)
    ingest(engine, tmp_path, "a.hl7", dft("RS0001", *ORIGINAL))
    assert ehr_ingest.route_charges(engine, billing)["routed"] == 2
    before = lines_of(engine, "RS0001")
    assert before == {f"{SENDER}|RS0001|1": 62500, f"{SENDER}|RS0001|2": 4000}

    same = ingest(engine, tmp_path, "b.hl7", dft("RS0001", *ORIGINAL), crlf=True)
    assert same["resent"] == 1 and same["charges"] == 0
    assert scenario.exceptions(engine) == [] and scenario.count(engine, RawMessageVersion) == 0

    changed = ingest(engine, tmp_path, "c.hl7", dft("RS0001", *CORRECTED))
    assert changed["resent"] == 1
    (exc,) = scenario.exceptions(engine)
    (version,) = scenario.rows(engine, RawMessageVersion)
    (original,) = scenario.rows(engine, RawMessage, RawMessage.control_id == "RS0001")
    assert (exc.reason_code, exc.kind, exc.record_type, exc.status) == (REASON, "business", "message_version", "open")
    assert exc.record_key == f"{SENDER}|RS0001|DFT^P03|v2" and exc.message_id == original.id
    assert exc.detail == {"version_id": version.id, "version": 2, "message_type": "DFT^P03", "control_id": "RS0001",
                          "file_id": version.file_id, "position": 1, "lines_in_effect": 2,
                          "amount_in_effect_cents": 66500, "new_lines": 3, "new_amount_cents": 69500}
    assert (version.message_id, version.version, version.status, version.business_date) == (original.id, 2, "held", DAY)
    assert version.payload == dft("RS0001", *CORRECTED).decode().rstrip("\r")
    assert original.payload == dft("RS0001", *ORIGINAL).decode().rstrip("\r")  # the original stands
    # nothing from the held version is written, routed or posted
    assert lines_of(engine, "RS0001") == before
    assert ehr_ingest.route_charges(engine, billing)["routed"] == 0
    assert sorted(billing_amounts(sandbox)) == sorted(before)

    # the same correction again: one version, one exception, one occurrence
    ingest(engine, tmp_path, "d.hl7", dft("RS0001", *CORRECTED), crlf=True)
    assert scenario.count(engine, RawMessageVersion) == 1
    (again,) = scenario.exceptions(engine)
    assert (again.id, again.attempts) == (exc.id, 1)


def test_a_key_repeated_inside_one_file_keeps_the_first_and_holds_the_second(engine: Engine, tmp_path: Path) -> None:
    result = ingest(engine, tmp_path, "both.hl7", dft("RS0002", *ORIGINAL), dft("RS0002", *ORIGINAL),
                    dft("RS0002", *CORRECTED))
    assert (result["messages"], result["resent"], result["charges"]) == (3, 2, 2)
    assert lines_of(engine, "RS0002") == {f"{SENDER}|RS0002|1": 62500, f"{SENDER}|RS0002|2": 4000}
    (version,) = scenario.rows(engine, RawMessageVersion)
    assert (version.version, version.position, version.status) == (2, 3, "held")
    (exc,) = scenario.exceptions(engine)
    assert exc.reason_code == REASON and exc.detail["new_amount_cents"] == 69500


def test_accepted_correction_reverses_the_original_and_posts_the_new_lines(engine: Engine, tmp_path: Path,
                                                                          sandbox: SandboxServers) -> None:
    billing, erp = scenario.billing_client(sandbox.billing_url), scenario.erp_client(sandbox.erp_url)
    ingest(engine, tmp_path, "a.hl7", dft("RS0003", *ORIGINAL))
    ehr_ingest.route_charges(engine, billing)
    post_day(engine, erp, DAY, sleep=lambda _: None)
    assert ledger_net(sandbox, "1200") == 66500

    ingest(engine, tmp_path, "c.hl7", dft("RS0003", *CORRECTED))
    (exc,) = scenario.exceptions(engine, ExceptionRecord.reason_code == REASON)
    result = exception_replay.replay(engine, billing, erp, exception_ids=[exc.id], actor="analyst")
    assert result["corrections"] == 1 and result["routed"]["routed"] == 5

    key = f"{SENDER}|RS0003"
    expected = {
        f"{key}|1": 62500, f"{key}|2": 4000,  # the original, as billed
        f"{key}|1~rev2": -62500, f"{key}|2~rev2": -4000,  # reversal credits, their own keys
        f"{key}|1~v2": 60000, f"{key}|2~v2": 4000, f"{key}|3~v2": 5500,  # the correction
    }
    assert lines_of(engine, "RS0003") == expected
    assert billing_amounts(sandbox) == expected  # billing holds original + reversal + new lines
    assert sum(expected.values()) == 69500
    rows = {r.line_key: r for r in scenario.rows(engine, Charge)}
    assert rows[f"{key}|1~rev2"].reversal_of == f"{key}|1" and rows[f"{key}|1~rev2"].transaction_type == "CD"
    assert all(r.status == "routed" and r.message_version in (None, 2) for r in rows.values())
    # the ERP's CHARGES journals net to the corrected total: AR debited 695.00, revenue credited
    assert ledger_net(sandbox, "1200") == 69500
    assert ledger_net(sandbox, "4000") + ledger_net(sandbox, "4010") == -69500
    (version,) = scenario.rows(engine, RawMessageVersion)
    assert (version.status, version.decided_by) == ("accepted", "analyst")
    (closed,) = scenario.exceptions(engine, ExceptionRecord.reason_code == REASON)
    events = scenario.rows(engine, ExceptionEvent, ExceptionEvent.exception_id == closed.id, order_by=ExceptionEvent.id)
    assert closed.status == "replayed" and "2 lines reversed, 3 new lines" in (events[-1].note or "")

    # a replay of the same exception, or a rerun of routing and posting, changes nothing
    assert exception_replay.replay(engine, billing, erp, exception_ids=[exc.id], actor="analyst")["corrections"] == 0
    assert ehr_ingest.route_charges(engine, billing)["routed"] == 0
    post_day(engine, erp, DAY, sleep=lambda _: None)
    assert billing_amounts(sandbox) == expected and ledger_net(sandbox, "1200") == 69500


def test_a_third_version_reverses_the_second_not_the_original(engine: Engine, tmp_path: Path,
                                                              sandbox: SandboxServers) -> None:
    billing, erp = scenario.billing_client(sandbox.billing_url), scenario.erp_client(sandbox.erp_url)
    ingest(engine, tmp_path, "a.hl7", dft("RS0004", ("CDM1002", "ED", "625.00")))
    ehr_ingest.route_charges(engine, billing)
    ingest(engine, tmp_path, "b.hl7", dft("RS0004", ("CDM1002", "ED", "600.00")))
    (first,) = scenario.exceptions(engine, ExceptionRecord.reason_code == REASON)
    exception_replay.replay(engine, billing, erp, exception_ids=[first.id], actor="analyst")
    ingest(engine, tmp_path, "c.hl7", dft("RS0004", ("CDM1002", "ED", "610.00")))
    second = scenario.exceptions(engine, ExceptionRecord.reason_code == REASON, ExceptionRecord.status == "open")
    assert [e.detail["version"] for e in second] == [3] and second[0].detail["amount_in_effect_cents"] == 60000
    exception_replay.replay(engine, billing, erp, exception_ids=[second[0].id], actor="analyst")
    key = f"{SENDER}|RS0004|1"
    assert lines_of(engine, "RS0004") == {key: 62500, f"{key}~rev2": -62500, f"{key}~v2": 60000,
                                          f"{key}~v2~rev3": -60000, f"{key}~v3": 61000}
    assert sum(billing_amounts(sandbox).values()) == 61000


def test_discarded_resend_keeps_the_original(engine: Engine, tmp_path: Path, sandbox: SandboxServers) -> None:
    billing, erp = scenario.billing_client(sandbox.billing_url), scenario.erp_client(sandbox.erp_url)
    ingest(engine, tmp_path, "a.hl7", dft("RS0005", *ORIGINAL))
    ehr_ingest.route_charges(engine, billing)
    ingest(engine, tmp_path, "c.hl7", dft("RS0005", *CORRECTED))
    (exc,) = scenario.exceptions(engine, ExceptionRecord.reason_code == REASON)
    with session_scope(engine) as s:
        actions.discard(s, exc.id, actor="analyst", note="EHR confirmed the original amounts")
    (version,) = scenario.rows(engine, RawMessageVersion)
    assert (version.status, version.decided_by) == ("discarded", "analyst")
    assert exception_replay.replay(engine, billing, erp, exception_ids=[exc.id], actor="analyst")["corrections"] == 0
    assert lines_of(engine, "RS0005") == {f"{SENDER}|RS0005|1": 62500, f"{SENDER}|RS0005|2": 4000}
    assert billing_amounts(sandbox) == lines_of(engine, "RS0005")


def test_correction_of_a_supply_line_returns_the_inventory(engine: Engine, tmp_path: Path, day_dir: Path,
                                                           sandbox: SandboxServers) -> None:
    supply = next(line.split(",")[0] for line in (day_dir / "crosswalks" / "cdm.csv").read_text().splitlines()[1:]
                  if line.split(",")[3])
    billing, erp = scenario.billing_client(sandbox.billing_url), scenario.erp_client(sandbox.erp_url)
    ingest(engine, tmp_path, "a.hl7", dft("RS0006", (supply, "ED", "30.00")))
    ingest(engine, tmp_path, "b.hl7", dft("RS0006", (supply, "ED", "60.00")))
    (exc,) = scenario.exceptions(engine, ExceptionRecord.reason_code == REASON)
    exception_replay.replay(engine, billing, erp, exception_ids=[exc.id], actor="analyst")
    used = {u.line_key: u.quantity for u in scenario.rows(engine, SupplyUsage)}
    key = f"{SENDER}|RS0006|1"
    assert used == {key: 1, f"{key}~rev2": -1, f"{key}~v2": 1}


def test_the_operator_actions_offer_and_run_the_decision(engine: Engine, tmp_path: Path,
                                                         sandbox: SandboxServers) -> None:
    """``carefabric exceptions replay`` / the console's replay: the dry run names the exception as
    replayable; with clients (what the exception_replay DAG does) it is accepted."""
    billing, erp = scenario.billing_client(sandbox.billing_url), scenario.erp_client(sandbox.erp_url)
    ingest(engine, tmp_path, "a.hl7", dft("RS0007", ("CDM1002", "ED", "625.00")))
    ehr_ingest.route_charges(engine, billing)
    ingest(engine, tmp_path, "b.hl7", dft("RS0007", ("CDM1002", "ED", "600.00")))
    (exc,) = scenario.exceptions(engine, ExceptionRecord.reason_code == REASON)
    dry = actions.replay(engine, reason_code=REASON, actor="analyst")
    assert dry["mode"] == "dag" and dry["exception_ids"] == [exc.id]

    def replayer(eng: Engine, ids: list[int], actor: str) -> dict[str, object]:
        return exception_replay.replay(eng, billing, erp, exception_ids=ids, actor=actor)

    done = actions.replay(engine, exception_ids=[exc.id], actor="analyst", replayer=replayer)
    assert done["mode"] == "replayed" and done["result"]["corrections"] == 1
    key = f"{SENDER}|RS0007|1"
    assert billing_amounts(sandbox) == {key: 62500, f"{key}~rev2": -62500, f"{key}~v2": 60000}
