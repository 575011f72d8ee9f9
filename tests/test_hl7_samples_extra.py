"""Fifteen more real public HL7 v2 files (``tests/samples_extra/hl7v2``, sources in SOURCES.md).

Written by interface-engine and library authors, not by us: LF and CRLF line ends, files without
a final terminator, a Java-escaped MSH-2 (``^~\\\\&``), an MSH-2 with three characters, literal
``<cr>`` text and lines wrapped inside fields, OIDs in every HD. Each file's outcome is pinned, and
every field the mapping reads is compared with python-hl7's and hl7apy's reading of the same
message text.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import hl7 as pyhl7
import pytest
from hl7apy.parser import parse_message

from carefabric.hl7 import FileReport, HL7ParseError, iter_messages, parse, to_canonical

EXTRA = Path(__file__).parent / "samples_extra" / "hl7v2"
FILES = sorted(p.name for p in EXTRA.glob("*.hl7"))
NO_TERMINATOR = "last segment has no terminator (accepted: no batch envelope left open)"

# file -> (message type, MSH-10, sender MSH-3|MSH-4, outcome); outcome: skipped, or the error reason
PINNED = {
    "cdc_genv1_case_message0.hl7": ("ORU^R01", "NOT11323693AK012021-02-28T19:00:12.098", "NBS.AK.Prod|AKNBS", "skipped"),
    "cdc_genv1_case_message4.hl7": ("ORU^R01", "123454", "SYSTID1|GADPH", "skipped"),
    "lfh_oru_r01_multiline_short.hl7": ("ORU^R01", "MSGID00231", "WHI_Automation|IBM_Toronto_Lab", "skipped"),
    "lfh_oru_r01_multiline_short_mixed.hl7": ("ORU^R01", "MSGID00231", "WHI_Automation|IBM_Toronto_Lab", "skipped"),
    "python_hl7_rep_sample.hl7": ("ORU^R01", "CNTRL-3456", "GHH LAB|ELAB-3", "skipped"),
    "rethink_bench_adt_a01.hl7": ("ADT^A01", "MSG00001", "ADTAPP|HOSPITAL", "parsed"),
    "rethink_bench_orm_o01.hl7": ("ORM^O01", "MSG00003", "CPOE|HOSPITAL", "skipped"),
    "rethink_bench_oru_r01.hl7": ("ORU^R01", "MSG00002", "LAB|HOSPITAL", "skipped"),
    "rethink_mllp_adt_a01.hl7": ("ADT^A01", "MSG00001", "ADT_APP|FACILITY_A", "parsed"),
    "rethink_mllp_orm_o01.hl7": ("ORM^O01", "MSG00002", "ORDER_APP|FACILITY_A", "skipped"),
    "rethink_mllp_oru_r01.hl7": ("ORU^R01", "MSG00003", "LAB_APP|FACILITY_B", "skipped"),
}
REJECTED = {
    # MSH-2 written '^~\\&' (a Java string escape left in the file): the escape character repeats
    "lfh_adt_a01_multiline.hl7": "MSH-2 encoding characters repeat, are letters or digits, or clash with MSH-1",
    "lfh_sample_unix.hl7": "MSH-2 encoding characters repeat, are letters or digits, or clash with MSH-1",
    "lfh_sample_win.hl7": "MSH-2 encoding characters repeat, are letters or digits, or clash with MSH-1",
    # MSH-2 '^\&' has no repetition character
    "cdc_tst_lab_adt_a03.hl7": ("MSH-2 encoding characters invalid (3 characters): need component, repetition, escape "
                                "and sub-component characters (e.g. ^~\\&)"),
}
UNTERMINATED = {"cdc_genv1_case_message0.hl7", "cdc_tst_lab_adt_a03.hl7", "lfh_oru_r01_multiline_short.hl7",
                "lfh_oru_r01_multiline_short_mixed.hl7", "lfh_sample_unix.hl7", "lfh_sample_win.hl7",
                "rethink_mllp_adt_a01.hl7", "rethink_mllp_orm_o01.hl7", "rethink_mllp_oru_r01.hl7"}


def test_at_least_fifteen_files_each_listed_in_sources_with_its_sha256() -> None:
    assert len(FILES) >= 15 and set(FILES) == set(PINNED) | set(REJECTED)
    sources = (EXTRA / "SOURCES.md").read_text()
    for name in FILES:
        digest = hashlib.sha256((EXTRA / name).read_bytes()).hexdigest()
        row = next((line for line in sources.splitlines() if line.startswith(f"| {name} |")), None)
        assert row is not None, f"{name} missing from SOURCES.md"
        assert digest[:16] in row, f"{name}: sha256 in SOURCES.md differs"
        assert re.search(r"\| (MIT|BSD-3-Clause|Apache-2\.0|CC0-1\.0 / Apache-2\.0) \|", row), name


def _read(name: str) -> tuple[list, FileReport]:
    report = FileReport()
    return list(iter_messages(EXTRA / name, report=report)), report


@pytest.mark.parametrize("name", sorted(PINNED))
def test_pinned_outcome(name: str) -> None:
    raws, report = _read(name)
    assert len(raws) == 1 and report.messages == 1 and report.problems == []
    (raw,) = raws
    assert raw.error is None
    assert (NO_TERMINATOR in raw.warnings) == (name in UNTERMINATED)
    result = to_canonical(parse(raw))
    kind, control_id, sender, outcome = PINNED[name]
    assert (result.message_type, result.control_id, result.sender) == (kind, control_id, sender)
    assert ("skipped" if result.skipped else "parsed") == outcome
    if result.skipped:
        assert result.skipped_reason == f"message type {kind} is not routed by carefabric"


@pytest.mark.parametrize("name", sorted(REJECTED))
def test_rejected_with_a_value_free_reason(name: str) -> None:
    (raw,), report = _read(name)
    assert report.problems == []
    assert (NO_TERMINATOR in raw.warnings) == (name in UNTERMINATED)
    with pytest.raises(HL7ParseError) as info:
        to_canonical(parse(raw))
    assert info.value.reason == REJECTED[name]


def test_adt_samples_become_encounters_with_exact_values() -> None:
    (raw,), _ = _read("rethink_bench_adt_a01.hl7")
    enc = to_canonical(parse(raw)).encounter
    assert (enc.facility, enc.encounter_id, enc.event_type, enc.patient_class, enc.location) == (
        "HOSPITAL", "", "A01", "I", "ICU")
    assert (enc.mrn_phi, enc.patient_name_phi, enc.birth_date_phi) == ("123456", "DOE^JOHN^^^^^L", "19700101")
    assert enc.message_time is not None and enc.message_time.isoformat() == "2025-01-01T08:30:00"
    (raw,), _ = _read("rethink_mllp_adt_a01.hl7")
    result = to_canonical(parse(raw))
    enc = result.encounter
    assert (enc.facility, enc.patient_class, enc.location, enc.mrn_phi) == ("FACILITY_A", "I", "ICU", "12345")
    # PID-3 has no CX-5 type: the first repetition, with a warning naming the field only
    assert "PID-3 has no identifier of type MR; used the first repetition (CX-5 type empty)" in result.warnings


CHECKED = [("MSH", 3), ("MSH", 4), ("MSH", 7), ("MSH", 9), ("MSH", 10), ("MSH", 12), ("PID", 3), ("PID", 5),
           ("PV1", 2), ("PV1", 3), ("PV1", 19), ("PV1", 39)]


@pytest.mark.parametrize("name", sorted(PINNED))
def test_fields_match_python_hl7_and_hl7apy(name: str) -> None:
    """The same framed message text, read by both references: every checked field identical."""
    (raw,), _ = _read(name)
    ours = parse(raw)
    text = raw.text
    ref = pyhl7.parse(text)
    apy = parse_message(text, find_groups=False)
    ec = apy.encoding_chars
    for seg_name, n in CHECKED:
        mine = ours.segment(seg_name)
        ref_segs = [s for s in ref if str(s[0]) == seg_name]
        apy_segs = [c for c in apy.children if c.name == seg_name]
        if mine is None:
            assert not ref_segs and not apy_segs, seg_name
            continue
        theirs = str(ref_segs[0][n]) if n < len(ref_segs[0]) else ""
        assert mine.raw(n) == theirs, f"{name} {seg_name}-{n} vs python-hl7"
        reps = [c for c in apy_segs[0].children if c.name == f"{seg_name}_{n}"]
        assert mine.raw(n) == ec["REPETITION"].join(r.to_er7(ec) for r in reps), f"{name} {seg_name}-{n} vs hl7apy"
    assert ours.control_id == ref["MSH.F10"] == apy.msh.msh_10.to_er7(ec)
    assert ours.message_type == f"{ref['MSH.F9.R1.C1']}^{ref['MSH.F9.R1.C2']}"
