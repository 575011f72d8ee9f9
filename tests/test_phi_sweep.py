"""PHI sweep (issue 10): distinctive fake names, ids and dates in every HL7 field and component and
in every 835 element that can carry a person, plus malformed values in the same places, through
the real path (ingest, routing to the billing sandbox, remittance, posting to the ERP sandbox,
the nightly reconciliation and its finance email). None of the injected values may appear
anywhere but the raw message store: not in any other table of the store (exceptions, history,
audit, postings, reconciliation items ...), not in a captured log line, not in any page or API
answer of the console, not in the email, not in the billing or ERP sandbox's database.

The raw store must hold them (else the sweep would prove nothing), and the mutants must have
reached parse errors, held lines, routed lines and posted remittances.

Limits, by design: a value the sender puts in a *code* field (CDM code, department, payer id) is
a code to us; an unknown one is named in its exception so an operator can map it. The sweep's
values are person-shaped (several words, separators, digits and dashes), which no code field
accepts, so those are refused by position; ``CLP01`` is our own claim id and is echoed as one.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import scenario
import sqlalchemy as sa
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from carefabric.interfaces import ehr_ingest, erp_posting, payer_remittance
from carefabric.store.models import Base
from sandbox.runner import SandboxServers

DAY = scenario.BUSINESS_DATE

#: Person-shaped values, none of which occurs in a generated day; each is searched for whole and
#: by its distinctive fragments (a component that slipped through alone is a leak too).
PHI = (
    "QUIXBYWOLF ZANTHIPPA",  # a name, family and given in one field
    "QUIXBYWOLF^ZANTHIPPA^ORLA",  # a name with components
    "MRN Q77310452",  # an MRN as a sender writes it
    "987-65-4329",  # an SSN
    "(555) 014-7788",  # a phone number
    "42 WOLFSKILL LANE",  # an address line
    "DOB 19390817",  # a birth date, labelled
)
MALFORMED = (
    "19390817 QUIX",  # a date field with junk after it
    "1939-08-17 ZANTHIPPA",  # another date format with a name
    "12.5O QUIXBYWOLF",  # an amount with a letter O and a name
    "ZANTHIPPA\\F\\QUIX ORLA",  # an escape sequence inside a name
)
FRAGMENTS = ("QUIXBYWOLF", "ZANTHIPPA", "Q77310452", "987-65-4329", "014-7788", "WOLFSKILL", "19390817",
             "1939-08-17", "QUIXBY", "ZANTHIP", "12.5O")
#: Tables that are the raw message store (the one place PHI may live).
RAW_TABLES = {"raw_messages", "raw_message_versions"}

HL7 = (
    "MSH|^~\\&|EPICCARE|F1|CAREFABRIC|CF01|20240305101500||DFT^P03^DFT_P03|{cid}|P|2.5.1|||AL|NE",
    "EVN|P03|20240305101500|||OPER^SMITH^JOHN",
    "PID|1||E0001^^^EPI^PI~A0000001^^^F1^MR||DOE^JANE^Q^^^^L|MOTHER^MAIDEN|19700101|F|||9 ELM RD^^TOWN^ST^11111"
    "||555-0100^PRN^PH|||S||ACCT1^^^F1^AN|999-00-1111",
    "PV1|1|O|ED^^^F1||||1427005^PATEL^ANIL|||EMR|||||||||V-PHI1|MB||||||||||||||||||||F1|||||20240305000500",
    "NK1|1|DOE^JOHN|SPO|9 ELM RD^^TOWN^ST^11111|555-0101",
    "GT1|1|G001|DOE^JANE^Q||9 ELM RD^^TOWN^ST^11111|555-0100||19700101|F|P/F|SEL|999-00-1111",
    "FT1|1|T1||20240305|20240305|CG|CDM1002^ED VISIT^CDM|ED VISIT||1|625.00|625.00|ED^Emergency|||ED^^^F1"
    "||||1427005|||||99284^ED^C4",
    "IN1|1|MCRAB|PAYER-MEDICARE|MEDICARE||||||||||||DOE^JANE^Q|SEL|19700101|9 ELM RD^^TOWN^ST^11111"
    "||||||||||||||||||MCR000783432",
)


def hl7_mutants() -> Iterator[bytes]:
    """One message per (field, component) with a PHI value there, and one per field with a
    malformed value, for every field of every segment (MSH-1/MSH-2, the separators, excepted)."""
    n = 0
    for s, template in enumerate(HL7):
        fields = template.split("|")
        first = 3 if s == 0 else 1  # MSH-3 onwards (split index 2 is MSH-3)
        for position in range(first - 1 if s == 0 else first, len(fields)):
            if s == 0 and position < 2:
                continue
            components = max(1, len(fields[position].split("^")))
            variants = [(c, PHI[(n + c) % len(PHI)]) for c in range(components)]
            variants.append((None, MALFORMED[n % len(MALFORMED)]))
            for component, value in variants:
                n += 1
                segments = [t.replace("{cid}", f"PHI{n:05d}") for t in HL7]
                parts = segments[s].split("|")
                if component is None:
                    parts[position] = value
                else:
                    comps = parts[position].split("^") if parts[position] else [""]
                    comps[component] = value.replace("^", " ")  # a whole name in one component
                    parts[position] = "^".join(comps)
                segments[s] = "|".join(parts)
                yield ("\r".join(segments) + "\r").encode()


# --------------------------------------------------------------------------- 835


PERSON_SEGMENTS = (  # added to the first claim so every person-carrying NM1 is there
    "NM1*IL*1*DOE*JANE****MI*SUB000111",
    "NM1*74*1*DOE*JANE****C*COR000222",
    "NM1*82*1*PATEL*ANIL****XX*1427005000",
)


def _x12_segments(text: str) -> tuple[list[str], str]:
    return [s.strip("\r\n") for s in text.split("~") if s.strip()], "~"


def x12_mutants(base: str) -> Iterator[str]:
    """Files each carrying one PHI (or malformed) value in one element of a person-carrying
    segment of the first claim (NM1 QC/IL/74/82, REF, DTM, CLP02-CLP09): envelope numbers and the
    trace made unique so none is taken for a re-send of another."""
    segments, _ = _x12_segments(base)
    clp = next(i for i, s in enumerate(segments) if s.startswith("CLP*"))
    nm1 = next(i for i in range(clp, len(segments)) if segments[i].startswith("NM1*QC"))
    segments[nm1 + 1:nm1 + 1] = list(PERSON_SEGMENTS)
    end = next(i for i in range(clp + 1, len(segments)) if segments[i].startswith(("CLP*", "SE*")))
    targets = [i for i in range(clp, end) if segments[i].split("*")[0] in ("CLP", "NM1", "REF", "DTM")]
    n = 0
    for i in targets:
        elements = segments[i].split("*")
        first = 2 if elements[0] == "CLP" else (3 if elements[0] == "NM1" else 2)
        for e in range(first, len(elements)):
            for value in (PHI[n % len(PHI)].replace("^", " "), MALFORMED[n % len(MALFORMED)].replace("\\", "/")):
                n += 1
                mutated = list(segments)
                parts = mutated[i].split("*")
                parts[e] = value
                mutated[i] = "*".join(parts)
                yield _renumber(mutated, n)


def _renumber(segments: list[str], n: int) -> str:
    control = f"{700000000 + n:09d}"
    out = []
    st = 0
    for s in segments:
        tag = s.split("*")[0]
        parts = s.split("*")
        if tag == "ISA":
            parts[13] = control
        elif tag in ("GS", "GE"):
            parts[6 if tag == "GS" else 2] = str(700000000 + n)
        elif tag == "IEA":
            parts[2] = control
        elif tag == "TRN":
            parts[2] = f"PHISWEEP{n:05d}"
        elif tag == "ST":
            st = len(out)
        elif tag == "SE":
            parts[1] = str(len(out) - st + 1)
        out.append("*".join(parts))
    return "~".join(out) + "~"


# --------------------------------------------------------------------------- the sweep


def leaks(text: Any) -> list[str]:
    blob = text if isinstance(text, str) else json.dumps(text, default=str)
    return [f for f in FRAGMENTS if f in blob]


def _context(content: Any) -> list[str]:
    """Where each fragment first shows in a leaking place (for the failure message)."""
    blob = content if isinstance(content, str) else json.dumps(content, default=str)
    spots = []
    for fragment in leaks(blob):
        at = blob.index(fragment)
        spots.append(blob[max(0, at - 90):at + 40])
    return spots[:3]


@pytest.mark.usefixtures("peers", "data_dir")  # emptied peers, the ERP with the day's master
def test_injected_phi_reaches_nothing_but_the_raw_store(
    day_dir: Path, sandbox: SandboxServers, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    hl7 = tmp_path / "phi_sweep.hl7"
    hl7.write_bytes(b"".join(hl7_mutants()))
    base = sorted((day_dir / "sftp" / "PAYER-MEDICARE").glob("*F1*.835"))[0]
    remits = list(x12_mutants(base.read_text()))
    url = f"sqlite:///{tmp_path / 'store.db'}"
    with scenario.migrated_store(url) as engine:
        scenario.seed_store(engine, day_dir)
        ingested = ehr_ingest.ingest_file(hl7, engine, business_date=DAY)
        folder = tmp_path / "sftp" / "PAYER-MEDICARE"
        folder.mkdir(parents=True)
        for n, text in enumerate(remits):
            path = folder / f"era_sweep_{n:04d}.835"
            path.write_text(text)
            payer_remittance.process_file(path, engine, payer_folder="PAYER-MEDICARE", business_date=DAY)
        ehr_ingest.route_charges(engine, scenario.billing_client(sandbox.billing_url))
        erp_posting.post_day(engine, scenario.erp_client(sandbox.erp_url), DAY)
        email = _finance_email(engine, sandbox)
        places = {
            "ingest result": ingested,
            "finance email": email,
            **_store_outside_raw(engine),
            **_console_answers(engine),
            "log lines": [r.getMessage() + (r.exc_text or "") for r in caplog.records],
            "billing and ERP sandbox databases": b"".join(
                p.read_bytes() for p in sandbox.base_dir.glob("*.db")).decode("utf-8", "replace"),
        }
        raw = _raw_store(engine)
        outcomes = _outcomes(engine)
    found = {place: _context(content) for place, content in places.items() if leaks(content)}
    assert found == {}, json.dumps(found, indent=1)[:12000]
    # The sweep reached what it means to test: the values are in the raw store, and the mutants
    # were refused, held, routed and posted.
    assert set(FRAGMENTS) - {"12.5O", "QUIXBY", "ZANTHIP"} <= set(leaks(raw))
    assert {"HL7_PARSE_ERROR"} <= outcomes["reasons"], outcomes
    assert outcomes["routed"] > 0 and outcomes["remittances"] > 0 and outcomes["posted"] > 0, outcomes


def _finance_email(engine: Engine, sandbox: SandboxServers) -> str:
    from carefabric.interfaces.claims_reconciliation import build_report, reconcile_day
    from carefabric.report.finance_email import to_mime

    _, items, totals = reconcile_day(engine, scenario.erp_client(sandbox.erp_url), DAY)
    message = to_mime(build_report(engine, DAY, items, totals), sender="cf@example.org", recipients="fin@example.org")
    return message.as_bytes().decode("utf-8", "replace") + json.dumps(
        [part.get_payload(decode=True).decode("utf-8", "replace") for part in message.walk() if not part.is_multipart()])


def _store_outside_raw(engine: Engine) -> dict[str, list[Any]]:
    """Every row of every table but the raw message store."""
    out: dict[str, list[Any]] = {}
    with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            if table.name not in RAW_TABLES:
                out[f"store table {table.name}"] = [dict(r._mapping) for r in conn.execute(sa.select(table))]
    return out


def _raw_store(engine: Engine) -> str:
    with engine.connect() as conn:
        return json.dumps([dict(r._mapping) for t in RAW_TABLES
                           for r in conn.execute(sa.select(Base.metadata.tables[t]))], default=str)


def _outcomes(engine: Engine) -> dict[str, Any]:
    from carefabric.store.models import Charge, ErpPosting, ExceptionRecord, Remittance

    return {
        "reasons": {e.reason_code for e in scenario.exceptions(engine)},
        "routed": scenario.count(engine, Charge, Charge.billing_charge_id.is_not(None)),
        "remittances": scenario.count(engine, Remittance),
        "posted": scenario.count(engine, ErpPosting, ErpPosting.status == "posted"),
        "exceptions": scenario.count(engine, ExceptionRecord),
    }


def _console_answers(engine: Engine) -> dict[str, str]:
    """Every GET route of the console (pages and API), for every exception, table and trace key
    the store has: the route list comes from the app, so a page added later is swept too."""
    from test_console import bearer_auth

    from carefabric.console import create_app
    from carefabric.store.models import ExceptionRecord

    app = create_app(lambda: engine, authenticate=bearer_auth, csrf_secret=b"s" * 32)
    client = TestClient(app, headers={"Authorization": "Bearer alice"})
    exceptions = scenario.exceptions(engine)
    values: dict[str, list[str]] = {
        "exception_id": [str(e.id) for e in exceptions],
        "table": ["cdm", "departments", "cost_centers", "payers", "facilities", "gl_accounts"],
        "run_id": ["manual__x"],
    }
    keys = sorted({e.record_key for e in exceptions if e.record_key} | {"PHISWEEP00001", "CLM-F1-0000001"})
    out: dict[str, str] = {}
    for route in app.routes:
        if not isinstance(route, APIRoute) or "GET" not in route.methods:
            continue
        names = re.findall(r"\{(\w+)\}", route.path)
        combos = [route.path] if not names else [route.path.replace(f"{{{names[0]}}}", v) for v in values.get(names[0], [])]
        for path in combos:
            queries = [{}] + ([{"key": k} for k in keys] if "trace" in path else []) + (
                [{"status": "all", "page_size": "500"}] if path.endswith("exceptions") else [])
            for params in queries:
                r = client.get(path, params=params)
                assert r.status_code < 500, (path, params, r.status_code)
                out[f"console {path} {params}"] = r.text
    assert ExceptionRecord and len(out) > len(exceptions)
    return out
