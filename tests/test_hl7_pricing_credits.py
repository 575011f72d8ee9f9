"""Issue 9, HL7 v2: DFT lines without amounts priced from the chargemaster (or held alone), and
FT1 credits signed or unsigned, through ``ehr_ingest`` to the billing and ERP sandboxes.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
import scenario
from sqlalchemy.engine import Engine

from carefabric.interfaces import ehr_ingest, exception_replay
from carefabric.interfaces.erp_master_data import resolvable_exceptions
from carefabric.interfaces.erp_posting import post_day
from carefabric.store import crosswalks
from carefabric.store.db import session_scope
from carefabric.store.models import Charge, Encounter, ExceptionRecord
from sandbox import ERP_TOKEN
from sandbox.runner import SandboxServers

DAY = scenario.BUSINESS_DATE
KEY = "EPICCARE|F1"


# Every test starts from emptied peers, the ERP holding the day's master data (conftest ``peers``),
# and the day's seeded store (conftest ``engine``).
pytestmark = pytest.mark.usefixtures("peers")


def dft(control_id: str, *ft1: str) -> bytes:
    """A DFT^P03 at F1; ``ft1`` are the FT1 fields after FT1-5 (type|code|desc|by|qty|ext|unit|dept)."""
    segments = [
        f"MSH|^~\\&|EPICCARE|F1|CAREFABRIC|CF01|20240305101500||DFT^P03^DFT_P03|{control_id}|P|2.5.1",
        "PID|1||M0001^^^F1^MR||DOE^JANE||19700101|F",
        "PV1|1|O|ED^^^F1||||||||||||||||V-PC1|MB||||||||||||||||||||F1",
    ]
    segments += [f"FT1|{n}|T{n}||20240305|20240305|{fields}" for n, fields in enumerate(ft1, 1)]
    return ("\r".join(segments)).encode()  # no final terminator either (issue 9)


def ingest(engine: Engine, tmp_path: Path, name: str, data: bytes) -> dict[str, object]:
    path = tmp_path / name
    path.write_bytes(data)
    return ehr_ingest.ingest_file(path, engine, business_date=DAY, validate=False)


def rows(engine: Engine, control_id: str) -> dict[int, Charge]:
    return {r.line_number: r for r in scenario.rows(engine, Charge, Charge.message_control_id == control_id)}


def test_dft_without_amounts_is_priced_from_the_chargemaster_or_held_alone(
        engine: Engine, tmp_path: Path, sandbox: SandboxServers) -> None:
    billing, erp = scenario.billing_client(sandbox.billing_url), scenario.erp_client(sandbox.erp_url)
    with session_scope(engine) as s:
        crosswalks.set_cdm(s, "CDM1002", "4000", actor="test", price_cents=62500)
    # a Cerner/Epic-style DFT: FT1-11 and FT1-12 empty on lines 1 and 3
    data = dft("PC0001", "CG|CDM1002^ED VISIT^CDM|||2|||ED", "CG|CDM2001^CBC^CDM|||1|40.00||LAB",
               "CG|CDM2002^CMP^CDM|||1|||LAB")
    result = ingest(engine, tmp_path, "unpriced.hl7", data)
    assert (result["messages"], result["encounters"], result["charges"], result["held"]) == (1, 1, 3, 1)
    lines = rows(engine, "PC0001")
    assert [(lines[n].status, lines[n].amount_cents, lines[n].unit_amount_cents, lines[n].priced_from)
            for n in (1, 2, 3)] == [("mapped", 125000, 62500, "cdm"), ("mapped", 4000, None, None),
                                    ("held", 0, None, "pending")]
    assert scenario.count(engine, Encounter, Encounter.message_control_id == "PC0001") == 1
    (held,) = scenario.exceptions(engine)
    assert (held.reason_code, held.record_key) == ("UNPRICED_CHARGE", f"{KEY}|PC0001|3")
    assert held.summary == "line has no amount (FT1-11/FT1-12) and CDM code CDM2002 has no price"
    assert ehr_ingest.route_charges(engine, billing)["routed"] == 2

    # the chargemaster gets its price: erp_master_data finds the line resolvable, replay posts it
    with session_scope(engine) as s:
        crosswalks.set_cdm(s, "CDM2002", "4010", actor="test", price_cents=5500)
    assert resolvable_exceptions(engine) == [held.id]
    exception_replay.replay(engine, billing, erp, exception_ids=[held.id], actor="analyst")
    line = rows(engine, "PC0001")[3]
    assert (line.status, line.amount_cents, line.unit_amount_cents, line.priced_from) == ("routed", 5500, 5500, "cdm")
    billed = {c["line_key"]: c["amount"] for c in scenario.billing_charges(sandbox.billing_url)}
    assert billed == {f"{KEY}|PC0001|1": "1250.00", f"{KEY}|PC0001|2": "40.00", f"{KEY}|PC0001|3": "55.00"}


def test_credits_signed_and_unsigned_post_as_credits(engine: Engine, tmp_path: Path,
                                                     sandbox: SandboxServers) -> None:
    billing, erp = scenario.billing_client(sandbox.billing_url), scenario.erp_client(sandbox.erp_url)
    data = dft("CR0001",
               "CG|CDM1002^ED VISIT^CDM|||1|100.00||ED",  # a charge
               "CD|CDM1002^ED VISIT^CDM|||1|30.00||ED",  # credit, unsigned: the type says so
               "CG|CDM1002^ED VISIT^CDM|||1|-20.00||ED",  # credit, signed amount under CG
               "CD|CDM1002^ED VISIT^CDM|||-1|-10.00||ED",  # credit, signed and typed
               "CG|CDM1002^ED VISIT^CDM|||-1|||ED")  # signed quantity, priced from the chargemaster
    with session_scope(engine) as s:
        crosswalks.set_cdm(s, "CDM1002", "4000", actor="test", price_cents=500)
    ingest(engine, tmp_path, "credits.hl7", data)
    lines = rows(engine, "CR0001")
    assert [(lines[n].quantity, lines[n].amount_cents, lines[n].status) for n in range(1, 6)] == [
        (Decimal(1), 10000, "mapped"), (Decimal(-1), -3000, "mapped"), (Decimal(-1), -2000, "mapped"),
        (Decimal(-1), -1000, "mapped"), (Decimal(-1), -500, "mapped")]
    assert ehr_ingest.route_charges(engine, billing)["routed"] == 5
    billed = sorted(Decimal(c["amount"]) for c in scenario.billing_charges(sandbox.billing_url))
    assert billed == [Decimal("-30.00"), Decimal("-20.00"), Decimal("-10.00"), Decimal("-5.00"), Decimal("100.00")]
    post_day(engine, erp, DAY, sleep=lambda _: None)
    net: dict[str, int] = {}
    for batch in scenario.peer_list(sandbox.erp_url, ERP_TOKEN, "/journal-batches", {"journal_date": DAY.isoformat()}):
        for ln in batch["lines"]:
            net[ln["account"]] = net.get(ln["account"], 0) + int(Decimal(ln["debit"]) * 100) - int(Decimal(ln["credit"]) * 100)
    assert net == {"1200": 3500, "4000": -3500}  # 100 - 30 - 20 - 10 - 5: AR debit, revenue credit
    assert not scenario.exceptions(engine, ExceptionRecord.status == "open")
