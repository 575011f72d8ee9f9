"""No value from an HL7 message reaches the exception queue, its history or the logs (issue 10).

A sender that shifts fields can put a patient's name, MRN, SSN or phone number into any field.
Every field of every segment of a mappable DFT^P03 is replaced, one at a time, by each of a set
of PHI-looking values; the mutants go through ``ehr_ingest`` as one file (GX validation on), the
lines are routed to the billing sandbox, and then no exception summary, detail, record key or
event note, no raw-message reason, no file detail and no captured log line may contain any of
the values or their components.

Limit, by design: a single code-shaped token (``FLORES`` alone in FT1-7) is indistinguishable
from a CDM code and is echoed as one (``CDM code FLORES has no crosswalk entry``); the values
below are what a shifted PID-5, PID-3, PID-19 or PID-13 looks like, and never code-shaped.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import scenario
from sqlalchemy.engine import Engine

from carefabric.interfaces import ehr_ingest
from carefabric.store.models import ExceptionEvent, ExceptionRecord, InboundFile, RawMessage
from sandbox.runner import SandboxServers

PHI_VALUES = (
    "FLORES ELIZABETH M00340524",  # the example: name and MRN in one field
    "FLORES ELIZABETH^MARIA JOSE",  # PID-5 shape, components with spaces
    "123-45-6789",  # SSN
    "(555) 555-0199",  # phone
    "1 MAIN ST APT 4^^SPRINGFIELD",  # address
    "MRN M00340524 DOB 19610412",
)
FRAGMENTS = ("FLORES", "ELIZABETH", "MARIA JOSE", "M00340524", "123-45-6789", "555-0199", "MAIN ST",
             "SPRINGFIELD", "19610412")

BASE = (
    "MSH|^~\\&|EPICCARE|F1|CAREFABRIC|CF01|20240305101500||DFT^P03^DFT_P03|{cid}|P|2.5.1|||AL|NE",
    "EVN|P03|20240305101500",
    "PID|1||E0001^^^EPI^PI~A0000001^^^F1^MR||DOE^JANE^Q||19700101|F|||9 ELM RD^^TOWN^ST^11111",
    "PV1|1|O|ED^^^F1||||1427005^PATEL^ANIL|||EMR|||||||||V-PHI1|MB||||||||||||||||||||F1|||||20240305000500",
    "FT1|1|T1||20240305|20240305|CG|CDM1002^ED VISIT^CDM|ED VISIT||1|625.00|625.00|ED^Emergency|||ED^^^F1||||1427005|||||99284^ED^C4",
    "FT1|2|T2||20240305|20240305|CD|CDM2001^CBC^CDM|CBC||1|40.00|40.00|LAB^Laboratory|||LAB^^^F1||||1427005|||||85025^CBC^C4",
    "IN1|1|MCRAB|PAYER-MEDICARE|MEDICARE||||||||||||||||||||||||||||||||MCR000783432",
)


def mutants() -> Iterator[bytes]:
    """The base message with one field replaced by one PHI value, for every field and value."""
    number = 0
    for s, template in enumerate(BASE):
        fields = template.split("|")
        # MSH-1 is the separator between 'MSH' and MSH-2; MSH-n is split index n - 1.
        positions = range(0, len(fields)) if s == 0 else range(1, len(fields))
        for position in positions:
            for value in PHI_VALUES:
                number += 1
                cid = f"PHI{number:05d}"
                segments = [t.replace("{cid}", cid) for t in BASE]
                parts = segments[s].split("|")
                if s == 0 and position == 0:
                    segments[0] = "MSH" + value + "|".join(parts[1:])[0:0] + segments[0][3:]
                else:
                    parts[position] = value
                    segments[s] = "|".join(parts)
                yield ("\r".join(segments) + "\r").encode()


def _leaks(text: str | None) -> list[str]:
    return [f for f in FRAGMENTS if text and f in text]


def test_no_value_from_the_message_reaches_exceptions_events_or_logs(
    engine: Engine, tmp_path: Path, sandbox: SandboxServers, caplog: pytest.LogCaptureFixture,
) -> None:
    scenario.admin(sandbox.billing_url, "reset")
    path = tmp_path / "phi_mutants.hl7"
    data = list(mutants())
    path.write_bytes(b"".join(data))
    caplog.set_level(logging.DEBUG)
    result = ehr_ingest.ingest_file(path, engine, business_date=scenario.BUSINESS_DATE)
    ehr_ingest.route_charges(engine, scenario.billing_client(sandbox.billing_url))
    _assert_no_phi(engine, result, caplog)
    # the mutants did reach every kind of outcome the test means to cover
    reasons = {e.reason_code for e in scenario.exceptions(engine)}
    assert "HL7_PARSE_ERROR" in reasons  # code fields holding PHI: the message is refused, value-free
    # a value in MSH-1 leaves no MSH boundary: that mutant joins the message before it
    assert len(data) - len(PHI_VALUES) <= result["messages"] <= len(data)
    assert result["message_errors"] > 0 and result["skipped"] > 0


def _assert_no_phi(engine: Engine, result: dict[str, object], caplog: pytest.LogCaptureFixture) -> None:
    found: list[tuple[str, list[str]]] = []
    for exc in scenario.exceptions(engine):
        for name, text in (("summary", exc.summary), ("detail", json.dumps(exc.detail)), ("record_key", exc.record_key)):
            if _leaks(text):
                found.append((f"exception {exc.reason_code} {name}: {text}", _leaks(text)))
    for event in scenario.rows(engine, ExceptionEvent):
        if _leaks(event.note):
            found.append((f"event {event.action}: {event.note}", _leaks(event.note)))
    for msg in scenario.rows(engine, RawMessage):
        if _leaks(msg.error):
            found.append((f"raw message error: {msg.error}", _leaks(msg.error)))
    for file in scenario.rows(engine, InboundFile):
        if _leaks(file.detail):
            found.append((f"file detail: {file.detail}", _leaks(file.detail)))
    if _leaks(json.dumps(result)):
        found.append(("ingest result", _leaks(json.dumps(result))))
    for record in caplog.records:
        text = record.getMessage()
        if _leaks(text):
            found.append((f"log {record.name}: {text[:200]}", _leaks(text)))
    assert found == [], "\n".join(f"{where} {frags}" for where, frags in found)
    assert scenario.count(engine, ExceptionRecord) > 0
