"""carefabric.hl7: streaming framing, lazy parsing and canonical mapping of HL7 v2.

Every field the mapping reads is cross-checked against two independent readers, hl7apy and
python-hl7, on the real samples and on messages built here (escapes, repetitions, custom
delimiters, MLLP, batch envelopes, ``\\n`` and ``\\r\\n`` line ends). The samples pin what they
yield. Speed is not asserted here (machines differ): ``python -m carefabric_bench.hl7_reader``.
"""

from __future__ import annotations

import datetime as dt
import io
import tracemalloc
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path

import hl7 as pyhl7
import pytest
from hl7apy.parser import parse_message

from carefabric import phi
from carefabric.hl7 import (
    CanonicalResult,
    Delimiters,
    FileReport,
    HL7ParseError,
    RawMessage,
    escape,
    iter_messages,
    parse,
    parse_datetime,
    parse_number,
    to_canonical,
    unescape,
)

STD = Delimiters()
ODD = Delimiters("#", "$", "*", "/", "%")  # every delimiter replaced

# --------------------------------------------------------------------------- builders
# Written in the standard delimiters; ``in_delims`` rewrites a whole message for another set.


def seg(name: str, values: dict[int, str]) -> str:
    """A segment with SEG-n = values[n]."""
    fields = [""] * (max(values) + 1)
    for n, v in values.items():
        fields[n] = v
    return name + "|" + "|".join(fields[1:])


def msh(
    msg_type: str,
    control_id: str,
    *,
    app: str = "EPIC",
    facility: str = "F1",
    time: str = "20240301083000",
    version: str = "2.5",
    charset: str = "",
) -> str:
    fields = [app, facility, "CAREFABRIC", "CF", time, "", msg_type, control_id, "P", version]
    if charset:
        fields += ["", "", "AL", "NE", "", charset]
    return "MSH|^~\\&|" + "|".join(fields)


def pid(mrns: str = "MRN001^^^F1^MR", name: str = "DOE^JANE^Q", dob: str = "19800101") -> str:
    return seg("PID", {1: "1", 3: mrns, 5: name, 7: dob, 8: "F"})


def pv1(
    visit: str = "V1001", *, facility: str = "", patient_class: str = "I", extra: dict | None = None
) -> str:
    values = {1: "1", 2: patient_class, 3: "MEDSURG^101^A^F1", 10: "MED", 19: visit, 20: "BLUE"}
    if facility:
        values[39] = facility
    values.update(extra or {})
    return seg("PV1", values)


def ft1(
    set_id: str,
    cdm: str,
    *,
    qty: str = "1",
    ext: str = "",
    unit: str = "",
    txn_type: str = "CG",
    date: str = "20240301",
    dept: str = "LAB",
    txn_id: str = "",
    proc: str = "",
    mods: str = "",
) -> str:
    values = {1: set_id, 2: txn_id, 4: date, 6: txn_type, 7: cdm, 10: qty, 11: ext, 12: unit, 13: dept}
    if proc:
        values[25] = proc
    if mods:
        values[26] = mods
    return seg("FT1", values)


def message(*segments: str) -> str:
    return "\r".join(segments)


def in_delims(text: str, d: Delimiters) -> str:
    """The same message written with other delimiters (escape letters are unchanged)."""
    return text.translate(
        str.maketrans("|^~\\&", d.field + d.component + d.repetition + d.escape + d.subcomponent)
    )


def frame(messages: Iterable[str], *, line_end: str = "\r", mllp: bool = False, batch: bool = False) -> bytes:
    """A file: optional FHS/BHS envelope, optional MLLP bytes, any segment terminator."""
    msgs = list(messages)
    out = []
    if batch:
        out.append("FHS|^~\\&|EPIC|F1|||20240301090000||f1_20240301.hl7|nightly|FILE-77" + line_end)
        out.append("BHS|^~\\&|EPIC|F1|||20240301090000||batch-a||BATCH-1" + line_end)
    for m in msgs:
        body = line_end.join(m.split("\r")) + line_end
        out.append("\x0b" + body + "\x1c\r" if mllp else body)
    if batch:
        out.append(f"BTS|{len(msgs)}" + line_end)
        out.append("FTS|1" + line_end)
    return "".join(out).encode("utf-8")


def read_all(data: bytes, **kw) -> tuple[list[RawMessage], FileReport]:
    report = FileReport()
    return list(iter_messages(io.BytesIO(data), report=report, **kw)), report


# --------------------------------------------------------------------------- generated messages

DFT_BASIC = message(
    msh("DFT^P03", "DFT0001"),
    seg("EVN", {1: "P03", 2: "20240301083000"}),
    pid(mrns="SSN123^^^SSA^SS~MRN4711^^^F1&1.2.3&ISO^MR~ENC9^^^F1^VN", name="O\\S\\BRIEN^JOHN"),
    pv1("V2001", facility="F2", extra={44: "20240229100000", 45: "20240302120000-0500"}),
    ft1(
        "1",
        "CDM1001^Room and board",
        qty="1",
        ext="1250.00^USD",
        unit="1250.00",
        dept="MEDSURG",
        txn_id="T1",
        proc="99213",
        mods="25~59",
    ),
    ft1("2", "CDM2001^Gauze", qty="2", unit="4.25", dept="MEDSURG", txn_id="T2"),
    ft1("3", "CDM3001^Lab panel", qty="1", ext="80.00", unit="80.00", txn_type="CD", txn_id="T3"),
    ft1("4", "CDM2001^Gauze", qty="-1", unit="4.25", dept="MEDSURG", txn_id="T4"),
)

DFT_ESCAPES = message(
    msh("DFT^P03", "DFT\\T\\0002"),
    pid(mrns="A\\F\\B^^^F1^MR", name="M\\X41\\RTIN\\R\\X^ANN\\.br\\MARIE^\\E\\"),
    pv1("V\\S\\2002"),
    ft1(
        "1",
        "CDM\\S\\9^Desc \\F\\ with \\T\\ and \\R\\",
        qty="3",
        ext="12.50&USD",
        unit="4.1666",
        dept="D\\E\\PT",
        txn_id="T\\T\\1^SYS",
        proc="J1100^^HCPCS",
        mods="RT~LT~",
    ),
    ft1("", "CDM4001", qty="", ext="", unit="7.00", date="202403011530"),
)

ADT_A01 = message(
    msh("ADT^A01^ADT_A01", "ADT0003", charset="UNICODE UTF-8"),
    seg("EVN", {1: "A01", 2: "20240301080000"}),
    pid(mrns="MRN5^^^F1^MR", name="MÜLLER^JÖRG", dob="19501231"),
    pv1("V3003", extra={44: "20240301075500", 45: ""}),
    seg("IN1", {1: "1", 2: "PLAN-GOLD^Gold plan", 3: "PAYER-ACME^^^X12"}),
)

ADT_A08_NO_EVENT = message(
    msh("ADT", "ADT0004"),
    seg("EVN", {1: "A08", 2: "20240301080000"}),
    pid(mrns="MRN6^^^F1^MR"),
    pv1("V3004", patient_class="E"),
)

GENERATED = {
    "dft_basic": DFT_BASIC,
    "dft_escapes": DFT_ESCAPES,
    "adt_a01": ADT_A01,
    "adt_a08_event_in_evn": ADT_A08_NO_EVENT,
}

FT1_FIELDS = (1, 2, 4, 6, 7, 10, 11, 12, 13, 25, 26)
CHECKED = [("MSH", 9), ("MSH", 10), ("PID", 3), ("PV1", 19)]


# --------------------------------------------------------------------------- reference cross-check


def _apy_segments(apy_msg, name: str) -> list:
    return [c for c in apy_msg.children if c.name == name]


def _apy_raw(apy_seg, n: int, d: Delimiters, ec: dict) -> str:
    reps = [c for c in apy_seg.children if c.name == f"{apy_seg.name}_{n}"]
    return d.repetition.join(r.to_er7(ec) for r in reps)


def _ref(ref, key: str) -> str:
    """python-hl7 accessor, '' where it raises for a component a simple value does not have."""
    try:
        return ref[key]
    except IndexError:
        return ""


def crosscheck(text: str, d: Delimiters, mine: CanonicalResult, parsed) -> None:
    """Every field the mapping reads, as hl7apy and python-hl7 see it, against ours."""
    apy = parse_message(text, find_groups=False)
    ec = apy.encoding_chars
    assert ec["FIELD"] == d.field and ec["COMPONENT"] == d.component and ec["ESCAPE"] == d.escape
    ref = pyhl7.parse(text)

    # raw field text: ours = hl7apy = python-hl7
    for name, n in CHECKED + [("FT1", n) for n in FT1_FIELDS]:
        ours = parsed.segments_named(name)
        theirs_apy = _apy_segments(apy, name)
        theirs_py = ref.segments(name) if name in {s[0][0] for s in ref} else []
        assert len(ours) == len(theirs_apy) == len(theirs_py), name
        for k, seg_ in enumerate(ours):
            raw = seg_.raw(n)
            assert raw == _apy_raw(theirs_apy[k], n, d, ec), f"{name}-{n} #{k + 1} vs hl7apy"
            assert raw == (str(theirs_py[k][n]) if n < len(theirs_py[k]) else ""), f"{name}-{n} vs python-hl7"

    # decoded values the canonical record holds
    code, event = _ref(ref, "MSH.F9.R1.C1"), _ref(ref, "MSH.F9.R1.C2")
    if event:
        assert mine.message_type == f"{code}^{event}"
    assert mine.control_id == _ref(ref, "MSH.F10.R1.C1")
    assert mine.sender == f"{_ref(ref, 'MSH.F3.R1.C1')}|{_ref(ref, 'MSH.F4.R1.C1')}"
    enc = mine.encounter
    assert enc is not None
    assert enc.encounter_id == _ref(ref, "PV1.F19.R1.C1")
    # PID-3: the repetition whose CX-5 is MR, found through hl7apy's own objects
    pid3 = _apy_segments(apy, "PID")[0].pid_3
    mr = [r for r in pid3 if r.cx_5.to_er7(ec) == "MR"]
    expected_mrn_raw = (mr[0] if mr else pid3[0]).cx_1.to_er7(ec)
    assert enc.mrn_phi == ref.unescape(expected_mrn_raw)
    assert enc.patient_token == phi.token(enc.mrn_phi, kind="mrn")
    # PID-5: python-hl7 decodes \.br\ to \r, we to \n (documented in escapes.py)
    comps = [ref[f"PID.F5.R1.C{i}"] for i in range(1, len(ref.segment("PID")[5][0]) + 1)]
    assert enc.patient_name_phi == "^".join(comps).rstrip("^").replace("\r", "\n")
    facility = _ref(ref, "PV1.F39.R1.C1") or _ref(ref, "MSH.F4.R1.C1")
    assert enc.facility == facility

    ft1s = _apy_segments(apy, "FT1")
    assert len(mine.charges) == len(ft1s)
    for k, (charge, a) in enumerate(zip(mine.charges, ft1s, strict=True), 1):
        key = "FT1" if k == 1 else f"FT1{k}"
        assert charge.cdm_code == _ref(ref, f"{key}.F7.R1.C1")
        assert charge.transaction_type == _ref(ref, f"{key}.F6.R1.C1")
        assert (charge.transaction_id or "") == _ref(ref, f"{key}.F2.R1.C1")
        assert (charge.department or "") == _ref(ref, f"{key}.F13.R1.C1")
        assert (charge.procedure_code or "") == _ref(ref, f"{key}.F25.R1.C1")
        set_id = a.ft1_1.to_er7(ec)
        assert charge.line_number == (int(set_id) if set_id else k)
        # FT1-4 transaction date (DR in 2.5: component 1)
        assert charge.transaction_date == parse_datetime(a.ft1_4.children[0].to_er7(ec)[:8]).date()
        mods = [r.to_er7(ec).split(d.component)[0] for r in a.children if r.name == "FT1_26"]
        assert list(charge.modifiers) == [ref.unescape(m) for m in mods if m]
        # amounts: hl7apy's CP component 1 (first sub-component), quantity, unit
        qty_raw = a.ft1_10.to_er7(ec)
        qty = Decimal(qty_raw) if qty_raw else Decimal(1)
        unit_raw = a.ft1_12.to_er7(ec).split(d.component)[0].split(d.subcomponent)[0]
        unit = Decimal(unit_raw) if unit_raw else None
        ext_raw = a.ft1_11.to_er7(ec).split(d.component)[0].split(d.subcomponent)[0]
        ext = Decimal(ext_raw) if ext_raw else qty * unit
        assert charge.unit_amount == unit
        reversal = charge.transaction_type == "CD" or qty < 0 or ext < 0
        assert charge.extended_amount == (-abs(ext) if reversal else ext)
        assert charge.quantity == (-abs(qty) if reversal else qty)


@pytest.mark.parametrize("d", [STD, ODD], ids=["standard", "custom-delimiters"])
@pytest.mark.parametrize("name", sorted(GENERATED))
def test_generated_messages_match_hl7apy_and_python_hl7(name: str, d: Delimiters, tmp_path: Path) -> None:
    text = in_delims(GENERATED[name], d)
    path = tmp_path / "m.hl7"
    path.write_bytes(text.encode("utf-8") + b"\r")
    (raw,) = list(iter_messages(path))
    parsed = parse(raw)
    assert parsed.delims[:5] == d[:5]
    result = to_canonical(parsed)
    assert result.skipped_reason is None
    crosscheck(text, d, result, parsed)


@pytest.mark.parametrize("sample", ["hl7_normative_oru_r01.hl7", "vinah_batch_adt_a04.hl7"])
def test_samples_match_hl7apy_and_python_hl7(samples_dir: Path, sample: str) -> None:
    path = samples_dir / "hl7v2" / sample
    # the references get the message the simple way: split, drop envelope segments
    lines = [s for s in path.read_bytes().decode("ascii").split("\r") if s]
    text = "\r".join(s for s in lines if s[:3] not in ("FHS", "BHS", "BTS", "FTS"))
    apy = parse_message(text, find_groups=False)
    ec = apy.encoding_chars
    ref = pyhl7.parse(text)
    (raw,) = list(iter_messages(path))
    msg = parse(raw)
    assert raw.text == text
    for name, n in CHECKED:
        ours = msg.segment(name)
        theirs = _apy_segments(apy, name)
        if ours is None:
            assert not theirs
            continue
        assert ours.raw(n) == _apy_raw(theirs[0], n, STD, ec)
        ref_seg = ref.segment(name)
        assert ours.raw(n) == (str(ref_seg[n]) if n < len(ref_seg) else "")
    assert msg.control_id == ref["MSH.F10"] == apy.msh.msh_10.to_er7(ec)
    assert msg.message_type == f"{ref['MSH.F9.R1.C1']}^{ref['MSH.F9.R1.C2']}"


# --------------------------------------------------------------------------- samples pinned


def test_sample_oru_r01_is_one_skipped_message(samples_dir: Path) -> None:
    report = FileReport()
    raws = list(iter_messages(samples_dir / "hl7v2" / "hl7_normative_oru_r01.hl7", report=report))
    assert len(raws) == 1 and report.messages == 1 and not report.problems
    assert raws[0].envelope is None and raws[0].offset == 0 and raws[0].warnings == []
    result = to_canonical(parse(raws[0]))
    assert result.message_type == "ORU^R01"
    assert result.control_id == "CNTRL-3456"
    assert result.sender == "GHH LAB|ELAB-3"
    assert result.version == "2.4"
    assert result.skipped and "ORU^R01" in result.skipped_reason
    assert result.encounter is None and result.charges == []


def test_sample_vinah_batch_adt_a04(samples_dir: Path) -> None:
    path = samples_dir / "hl7v2" / "vinah_batch_adt_a04.hl7"
    report = FileReport()
    (raw,) = list(iter_messages(path, report=report))
    assert report.messages == 1 and report.batches == 1 and report.problems == []
    env = raw.envelope
    assert env is not None
    assert env.file_sending_facility == "ABCHS" and env.file_comment == "abchs20070101123401.hl7"
    assert env.batch_control_id == "abchs20070101123401-1"
    assert path.read_bytes()[raw.offset : raw.offset + 3] == b"MSH"
    msg = parse(raw)
    assert msg.version == "2.5"
    result = to_canonical(msg)
    assert (result.message_type, result.control_id, result.version) == ("ADT^A04", "12334456778890", "2.5")
    assert result.sender == "|ABCHS"
    enc = result.encounter
    assert enc is not None
    assert enc.encounter_id == ""  # no visit number: kept, with a warning (see canonical.py)
    assert enc.event_type == "A04" and enc.patient_class == "O" and enc.facility == "ABCHS"
    assert enc.mrn_phi == "0000112234"
    assert enc.patient_token == phi.token("0000112234", kind="mrn")
    assert enc.message_time == dt.datetime(2007, 1, 1, 11, 29, 51)
    assert any("CX-5 type A)" in w for w in result.warnings)
    assert any("PV1-19" in w for w in result.warnings)
    assert result.charges == []


# --------------------------------------------------------------------------- canonical rules


def _canon(text: str) -> CanonicalResult:
    return to_canonical(parse(text))


def test_dft_charges_amounts_signs_and_defaults() -> None:
    result = _canon(DFT_BASIC)
    assert result.message_type == "DFT^P03" and result.control_id == "DFT0001"
    enc = result.encounter
    assert enc.facility == "F2"  # PV1-39 wins over MSH-4
    assert enc.mrn_phi == "MRN4711"  # the MR repetition, not the first
    assert enc.admit_time == dt.datetime(2024, 2, 29, 10, 0)
    assert enc.discharge_time == dt.datetime(2024, 3, 2, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    c1, c2, c3, c4 = result.charges
    assert (c1.extended_amount, c1.quantity, c1.unit_amount) == (Decimal("1250.00"), 1, Decimal("1250.00"))
    assert c1.modifiers == ("25", "59") and c1.procedure_code == "99213"
    assert c2.extended_amount == Decimal("8.50")  # empty FT1-11 = 2 x 4.25
    assert (c3.transaction_type, c3.quantity, c3.extended_amount) == ("CD", -1, Decimal("-80.00"))
    assert (c4.quantity, c4.extended_amount, c4.unit_amount) == (-1, Decimal("-4.25"), Decimal("4.25"))
    assert [c.line_key for c in result.charges] == [f"EPIC|F1|DFT0001|{n}" for n in (1, 2, 3, 4)]
    assert all(c.encounter_id == "V2001" and c.patient_token == enc.patient_token for c in result.charges)
    assert result.warnings == []


def test_escapes_are_decoded_when_read() -> None:
    result = _canon(DFT_ESCAPES)
    assert result.control_id == "DFT&0002"
    enc = result.encounter
    assert enc.encounter_id == "V^2002" and enc.mrn_phi == "A|B"
    assert enc.patient_name_phi == "MARTIN~X^ANN\nMARIE^\\"
    c1, c2 = result.charges
    assert c1.cdm_code == "CDM^9" and c1.department == "D\\PT" and c1.transaction_id == "T&1"
    assert c1.extended_amount == Decimal("12.50")  # CP with MO sub-components: 12.50&USD
    assert any("FT1 1: FT1-11 differs" in w for w in result.warnings)
    assert c1.modifiers == ("RT", "LT") and c1.procedure_code == "J1100"
    assert c2.line_number == 2 and c2.quantity == 1 and c2.extended_amount == Decimal("7.00")
    assert c2.transaction_date == dt.date(2024, 3, 1)
    # the raw text is untouched until read
    assert parse(DFT_ESCAPES).segment("PV1").raw(19) == "V\\S\\2002"


def test_adt_without_event_in_msh_takes_evn_1() -> None:
    result = _canon(ADT_A08_NO_EVENT)
    assert result.message_type == "ADT^A08" and result.encounter.event_type == "A08"
    assert any("EVN-1" in w for w in result.warnings)


def test_adt_a01_insurance_and_unicode() -> None:
    result = _canon(ADT_A01)
    enc = result.encounter
    assert result.message_type == "ADT^A01"
    assert enc.insurance_plan == "PLAN-GOLD" and enc.insurance_company == "PAYER-ACME"
    assert enc.patient_name_phi == "MÜLLER^JÖRG" and enc.birth_date_phi == "19501231"
    assert enc.discharge_time is None and enc.admit_time == dt.datetime(2024, 3, 1, 7, 55)


@pytest.mark.parametrize("event", ["A01", "A03", "A04", "A08", "A11", "A13"])
def test_routed_adt_events(event: str) -> None:
    result = _canon(message(msh(f"ADT^{event}", "C1"), pid(), pv1()))
    assert result.skipped_reason is None and result.encounter.event_type == event


@pytest.mark.parametrize("msg_type", ["ADT^A02", "ORU^R01", "ACK", "DFT^P11", "SIU^S12"])
def test_unrouted_types_are_skipped_not_errors(msg_type: str) -> None:
    result = _canon(message(msh(msg_type, "C2"), pid(), pv1()))
    assert result.skipped and msg_type in result.skipped_reason and result.encounter is None


def test_adt_without_visit_number_keeps_encounter_with_warning() -> None:
    result = _canon(message(msh("ADT^A04", "C3"), pid(), pv1("")))
    assert result.encounter.encounter_id == "" and any("PV1-19" in w for w in result.warnings)


def test_cg_with_opposite_signs_is_a_reversal_with_warning() -> None:
    result = _canon(
        message(msh("DFT^P03", "C4"), pid(), pv1(), ft1("1", "CDM1", qty="-2", ext="10.00", unit="5.00"))
    )
    (c,) = result.charges
    assert (c.quantity, c.extended_amount) == (-2, Decimal("-10.00"))
    assert any("opposite signs" in w for w in result.warnings)


def test_payments_keep_their_sign() -> None:
    result = _canon(message(msh("DFT^P03", "C5"), pid(), pv1(), ft1("1", "PAY", ext="-20.00", txn_type="PY")))
    assert result.charges[0].extended_amount == Decimal("-20.00") and result.charges[0].quantity == 1


def test_mrn_falls_back_to_first_identifier_with_warning() -> None:
    result = _canon(message(msh("ADT^A08", "C6"), pid(mrns="111^^^X^PI~222^^^Y^SS"), pv1()))
    assert result.encounter.mrn_phi == "111" and any("CX-5 type PI)" in w for w in result.warnings)


@pytest.mark.parametrize(
    ("segment", "reason"),
    [
        (ft1("1", "CDM1", ext="12,50"), "FT1-11 extended amount is not an HL7 number"),
        (ft1("1", "CDM1", ext="1e3"), "FT1 1: FT1-11 extended amount is not an HL7 number"),
        (ft1("1", "CDM1", qty="two", unit="1"), "FT1-10 quantity is not an HL7 number"),
        (ft1("1", "CDM1", unit="NaN"), "FT1-12 unit amount is not an HL7 number"),
        (ft1("1", "CDM1", ext="1", date="20240231"), "FT1-4 transaction date is not a valid date"),
        (ft1("1", "CDM1", ext="1", date="2024031"), "FT1-4 transaction date is not an HL7 date"),
        (ft1("1", "CDM1", ext="1", date=""), "FT1-4 transaction date is missing"),
        (ft1("1", "", ext="1"), "FT1-7 transaction code (CDM) is missing"),
        (ft1("1", "CDM1", ext="1", txn_type=""), "FT1-6 transaction type is missing"),
        (ft1("x", "CDM1", ext="1"), "FT1-1 set id is not a positive integer"),
        (ft1("1", "CDM1", ext="1") + "\r" + ft1("1", "CDM2", ext="2"), "set id repeats"),
    ],
)
def test_bad_ft1_is_a_parse_error_with_reason_and_control_id(segment: str, reason: str) -> None:
    with pytest.raises(HL7ParseError) as info:
        _canon(message(msh("DFT^P03", "BAD1"), pid(), pv1(), segment))
    assert reason in info.value.reason
    assert info.value.control_id == "BAD1"
    assert "\n" not in str(info.value)


def test_dft_without_visit_number_is_an_error() -> None:
    with pytest.raises(HL7ParseError, match="PV1-19 visit number") as info:
        _canon(message(msh("DFT^P03", "BAD2"), pid(), pv1(""), ft1("1", "CDM1", ext="1")))
    assert info.value.control_id == "BAD2"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (message(msh("ADT^A01", "BAD3", time="2024-03-01"), pid(), pv1()), "MSH-7 message time"),
        (message(msh("ADT^A01", "BAD4"), pid(), pv1(extra={44: "202403011"})), "PV1-44 admit time"),
        (message(msh("ADT^A03", "BAD5"), pid(), pv1(extra={45: "20241301"})), "PV1-45 discharge time"),
    ],
)
def test_bad_dates_are_errors(text: str, reason: str) -> None:
    with pytest.raises(HL7ParseError, match=reason):
        _canon(text)


# --------------------------------------------------------------------------- parse errors


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty message"),
        ("\r\n", "empty message"),
        ("PID|1||X", "no MSH segment"),
        ("MSH|^~\\&|A", "MSH too short"),
        ("MSH|^~\\&|A|B|C|D|20240101", "MSH too short"),
        ("MSH|^~\\&|A|B|C|D|20240101||ADT^A01", "MSH too short"),
        ("MSH|^~\\&|A|B|C|D|20240101|||C1|P|2.5", "missing MSH-9 message type"),
        ("MSH|^~\\&|A|B|C|D|20240101||^A01|C1|P|2.5", "missing MSH-9 message type"),
        ("MSH|^~\\&|A|B|C|D|20240101||ADT^A01||P|2.5", "missing MSH-10"),
        ("MSH|^~|A|B|C|D|20240101||ADT^A01|C1|P|2.5", "MSH-2 encoding characters"),
        ("MSH|^^\\&|A|B|C|D|20240101||ADT^A01|C1|P|2.5", "MSH-2 encoding characters"),
        ("MSHA^~\\&AaAbAcAd", "MSH-1 field separator"),
        (message(msh("ADT^A01", "C1"), "PI"), "segment 2 is truncated: its id has 2 of 3 characters"),
        (message(msh("ADT^A01", "C1"), pid(), "PV1|1|I", "F"), "segment 4 is truncated"),
        (message(msh("ADT^A01", "C1"), "P@D|1"), "invalid segment id"),
        (message(msh("ADT^A01", "C1"), "BHS|^~\\&"), "batch envelope segment BHS"),
    ],
)
def test_parse_errors(text: str, reason: str) -> None:
    with pytest.raises(HL7ParseError) as info:
        parse(text)
    assert reason in info.value.reason


def test_wrong_delimiters_are_named() -> None:
    # MSH declares '#' but the other segments were written with '|'
    text = in_delims(msh("ADT^A01", "WD1"), ODD) + "\r" + pid() + "\r" + pv1()
    with pytest.raises(HL7ParseError, match="wrong delimiters") as info:
        parse(text)
    assert info.value.control_id == "WD1"


def test_blank_lines_between_segments_are_ignored() -> None:
    msg = parse(msh("ADT^A01", "C1") + "\r\r  \r" + pid() + "\n\n" + pv1() + "\r")
    assert [s.name for s in msg] == ["MSH", "PID", "PV1"]


def test_message_accessors() -> None:
    msg = parse(DFT_BASIC)
    msh_ = msg.msh
    assert msh_.raw(1) == "|" and msh_.raw(2) == "^~\\&" and msh_.get(9, 2) == "P03"
    assert msg.get("PID", 3, 1, repetition=2) == "MRN4711"
    assert msg.get("PID", 3, 4, 2, repetition=2) == "1.2.3"
    assert msg.get("PID", 3, 1, repetition=9) == "" and msg.get("ZZZ", 1) == ""
    assert msg.segment("PID").repetitions(3)[2] == "ENC9^^^F1^VN"
    assert msg.segment("PID").components(5) == ["O^BRIEN", "JOHN"]
    assert len(msg.segments_named("FT1")) == 4
    assert msg.get("FT1", 11, 2) == "USD"


# --------------------------------------------------------------------------- escapes, datatypes


@pytest.mark.parametrize(
    ("raw", "decoded"),
    [
        ("plain", "plain"),
        ("a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f", "a|b^c&d~e\\f"),
        ("\\X41\\\\X4243\\", "ABC"),
        ("\\XC3A9\\", "é"),
        ("line1\\.br\\line2", "line1\nline2"),
        ("\\H\\bold\\N\\", "bold"),
        ("C:\\temp", "C:\\temp"),  # lone escape kept verbatim
        ("\\Zcustom\\", "\\Zcustom\\"),  # unknown sequence kept
        ("\\XZZ\\", "\\XZZ\\"),
    ],
)
def test_unescape(raw: str, decoded: str) -> None:
    assert unescape(raw) == decoded


def test_unescape_matches_python_hl7_for_delimiter_escapes() -> None:
    value = "A\\F\\B\\S\\C\\T\\D\\R\\E\\E\\\\X41\\"
    ref = pyhl7.parse(message(msh("ADT^A01", "C1"), seg("NTE", {3: value})))
    assert unescape(value) == ref.unescape(value)
    odd = in_delims(value, ODD)
    assert unescape(odd, ODD) == "A#B$C%D*E/A"
    assert unescape(escape("x|y^z&w~v\\u", STD)) == "x|y^z&w~v\\u"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("20240301", dt.datetime(2024, 3, 1)),
        ("202403011230", dt.datetime(2024, 3, 1, 12, 30)),
        ("20240301123045", dt.datetime(2024, 3, 1, 12, 30, 45)),
        ("20240301123045.1234", dt.datetime(2024, 3, 1, 12, 30, 45, 123400)),
        (
            "20240301123045+0130",
            dt.datetime(2024, 3, 1, 12, 30, 45, tzinfo=dt.timezone(dt.timedelta(hours=1.5))),
        ),
        ("20240229-0500", dt.datetime(2024, 2, 29, tzinfo=dt.timezone(dt.timedelta(hours=-5)))),
    ],
)
def test_parse_datetime(text: str, expected: dt.datetime) -> None:
    assert parse_datetime(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2024",
        "202403",
        "2024030112",
        "20240301T1230",
        "20241301",
        "20230229",
        "20240301123045+2500",
        "20240301 ",
        "2024030112304",
        "20240301123045.12345",
    ],
)
def test_parse_datetime_is_strict(text: str) -> None:
    with pytest.raises(ValueError):
        parse_datetime(text)


@pytest.mark.parametrize("text", ["1", "-1.5", "+2", ".5", "12."])
def test_parse_number(text: str) -> None:
    assert parse_number(text) == Decimal(text)


@pytest.mark.parametrize("text", ["1e3", "1,000", "NaN", "Infinity", "1_000", "", "- 1", "0x10"])
def test_parse_number_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_number(text)


# --------------------------------------------------------------------------- framing

ALL = [DFT_BASIC, ADT_A01, DFT_ESCAPES]


@pytest.mark.parametrize("line_end", ["\r", "\n", "\r\n"], ids=["CR", "LF", "CRLF"])
@pytest.mark.parametrize("mllp", [False, True], ids=["plain", "mllp"])
@pytest.mark.parametrize("batch", [False, True], ids=["bare", "batch"])
@pytest.mark.parametrize("chunk_size", [64, 97, 1 << 20])
def test_framing_variants_yield_the_same_messages(
    line_end: str, mllp: bool, batch: bool, chunk_size: int
) -> None:
    data = frame(ALL, line_end=line_end, mllp=mllp, batch=batch)
    raws, report = read_all(data, chunk_size=chunk_size)
    assert [r.text for r in raws] == ALL
    assert [r.index for r in raws] == [0, 1, 2]
    assert report.problems == [] and report.messages == 3
    for r in raws:
        assert data[r.offset : r.offset + 3] == b"MSH"
        assert r.warnings == [] and r.error is None
        if batch:
            assert r.envelope.file_control_id == "FILE-77" and r.envelope.batch_control_id == "BATCH-1"
            assert r.envelope.file_name == "f1_20240301.hl7" and r.envelope.batch_name == "batch-a"
        else:
            assert r.envelope is None
    assert [to_canonical(parse(r)).control_id for r in raws] == ["DFT0001", "ADT0003", "DFT&0002"]


def test_custom_delimiters_in_a_batch_file() -> None:
    data = frame([in_delims(m, ODD) for m in ALL], batch=True)
    raws, report = read_all(data)
    results = [to_canonical(parse(r)) for r in raws]
    assert [r.control_id for r in results] == ["DFT0001", "ADT0003", "DFT%0002"]  # \T\ is now '%'
    assert results[0].charges[0].extended_amount == Decimal("1250.00")


def test_source_may_be_path_str_or_binary_file(tmp_path: Path) -> None:
    path = tmp_path / "f.hl7"
    path.write_bytes(frame(ALL))
    with open(path, "rb") as fh:
        from_fh = [r.text for r in iter_messages(fh)]
    assert (
        [r.text for r in iter_messages(path)] == [r.text for r in iter_messages(str(path))] == from_fh == ALL
    )


def test_bom_and_junk_before_first_segment() -> None:
    raws, report = read_all(b"\xef\xbb\xbf" + frame(ALL[:1]))
    assert raws[0].offset == 3 and report.problems == []
    raws, report = read_all(b"garbage line\r" + frame(ALL[:1]))
    assert len(raws) == 1 and "before the first segment were ignored" in report.problems[0]


def test_batch_counts_are_checked() -> None:
    data = frame(ALL, batch=True).replace(b"BTS|3", b"BTS|5")
    raws, report = read_all(data)
    assert len(raws) == 3 and any("BTS-1 says 5 messages" in p for p in report.problems)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty file (0 bytes)"),
        (b"\r\n\r\n  \n", "only 7 bytes of whitespace"),
        (b"ISA*00*          *00*~GS*HP~", "not an HL7 v2 file"),
        ("MSH|^~\\&|A".encode("utf-16"), "NUL bytes (UTF-16"),
        (b"FHS|^~\\&|A\rBHS|^~\\&|A\rBTS|0\rFTS|1\r", "batch envelope holds no message"),
    ],
)
def test_files_without_messages_give_a_clear_reason(data: bytes, reason: str) -> None:
    raws, report = read_all(data)
    assert raws == [] and report.messages == 0
    assert reason in report.empty_reason


def test_truncated_batch_marks_the_cut_message() -> None:
    data = frame(ALL, batch=True)
    cut = data[: data.rindex(b"FT1|") + 12]  # inside the last FT1 of the last message: no BTS/FTS
    raws, report = read_all(cut)
    assert [r.error for r in raws[:2]] == [None, None]
    assert "truncated" in raws[2].error
    assert [to_canonical(parse(r)).control_id for r in raws[:2]] == ["DFT0001", "ADT0003"]
    with pytest.raises(HL7ParseError, match="truncated") as info:
        parse(raws[2])
    assert info.value.control_id == "DFT\\T\\0002"  # raw MSH-10: the message never parsed


def test_multi_message_file_without_final_terminator_is_accepted() -> None:
    """Issue 9: the last segment of a bare file may lack its terminator, alone or after others."""
    data = frame(ALL).rstrip(b"\r\n")
    raws, report = read_all(data)
    assert len(raws) == 3 and [r.error for r in raws] == [None, None, None]
    assert any("no terminator" in w for w in raws[2].warnings) and report.problems == []
    whole = [to_canonical(parse(r)) for r in read_all(frame(ALL))[0]]
    got = [to_canonical(parse(r)) for r in raws]  # the same records as the terminated file
    assert [(g.encounter, g.charges) for g in got] == [(w.encounter, w.charges) for w in whole]


def test_truncated_batch_after_a_whole_message_warns() -> None:
    data = frame(ALL, batch=True)
    cut = data[: data.index(b"BTS")]
    raws, report = read_all(cut)
    assert raws[-1].error is None and any("without BTS/FTS" in w for w in raws[-1].warnings)
    assert any("may be truncated" in p for p in report.problems)


def test_mllp_start_without_end_is_an_error() -> None:
    data = frame(ALL[:2], mllp=True)
    raws, _ = read_all(data[: -len(b"\x1c\r")])
    assert raws[0].error is None and "MLLP" in raws[1].error


def test_single_message_without_final_terminator_is_accepted() -> None:
    raws, report = read_all(DFT_BASIC.encode())
    (raw,) = raws
    assert raw.error is None and any("no terminator" in w for w in raw.warnings)
    result = to_canonical(parse(raw))
    assert len(result.charges) == 4 and result.warnings == raw.warnings


def test_non_utf8_bytes_fall_back_to_cp1252_with_warning() -> None:
    text = message(msh("ADT^A01", "ENC1"), pid(name="M\xfcLLER^\u201cJO\u201d"), pv1())
    data = text.encode("cp1252") + b"\r" + frame([ADT_A01])
    raws, _ = read_all(data)
    assert raws[0].encoding == "cp1252" and "not valid UTF-8" in raws[0].warnings[0]
    result = to_canonical(parse(raws[0]))
    assert result.encounter.patient_name_phi == "M\xfcLLER^\u201cJO\u201d"
    assert "not valid UTF-8" in result.warnings[0]
    assert raws[1].encoding == "utf-8" and raws[1].warnings == []  # the neighbour is unaffected


def test_bytes_undefined_in_cp1252_fall_back_to_latin1() -> None:
    text = message(msh("ADT^A01", "ENC2"), pid(name="X\x81Y"), pv1())
    raws, _ = read_all(text.encode("latin-1") + b"\r")
    assert raws[0].encoding == "latin-1" and parse(raws[0]).get("PID", 5) == "X\x81Y"


def test_msh18_character_set_is_honoured() -> None:
    text = message(msh("ADT^A01", "ENC3", charset="8859/1"), pid(name="M\xfcLLER"), pv1())
    raws, _ = read_all(text.encode("latin-1") + b"\r")
    assert raws[0].encoding == "latin-1" and raws[0].warnings == []
    assert to_canonical(parse(raws[0])).encounter.patient_name_phi == "M\xfcLLER"
    text = message(msh("ADT^A01", "ENC4", charset="NOPE-1"), pid(), pv1())
    raws, _ = read_all(text.encode() + b"\r")
    assert raws[0].warnings[0] == "MSH-18 character set unknown; decoded as UTF-8"
    text = message(msh("ADT^A01", "ENC5", charset="UNICODE UTF-16"), pid(), pv1())
    raws, _ = read_all(text.encode() + b"\r")
    assert "UTF-16 is not supported" in raws[0].error


def test_nul_bytes_make_the_message_unusable_not_the_file() -> None:
    bad = message(msh("ADT^A01", "NUL1"), pid(name="A\x00B"), pv1())
    raws, _ = read_all(frame([bad, ADT_A01]))
    assert "NUL bytes" in raws[0].error and raws[1].error is None
    with pytest.raises(HL7ParseError, match="NUL") as info:
        parse(raws[0])
    assert info.value.control_id == "NUL1"


def test_oversized_unit_is_reported_and_skipped() -> None:
    huge = message(msh("ADT^A01", "BIG"), pid(), pv1(), "NTE|1||" + "x" * 5000)
    raws, report = read_all(frame([huge, ADT_A01]), chunk_size=256, max_message_bytes=1024)
    assert "exceeds" in raws[0].error
    assert raws[-1].text == ADT_A01


class _ReadOnlyInChunks(io.RawIOBase):
    """A stream that fails the test if anyone tries to read it whole."""

    def __init__(self, path: Path) -> None:
        self._fh = open(path, "rb")  # noqa: SIM115 - closed in close()
        self.largest = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        assert size is not None and size > 0, "read() of the whole stream"
        self.largest = max(self.largest, size)
        return self._fh.read(size)

    def close(self) -> None:
        self._fh.close()
        super().close()


def test_fifty_megabyte_file_streams_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.hl7"
    block = frame(ALL * 100, batch=False)
    with open(path, "wb") as fh:
        fh.write(b"FHS|^~\\&|EPIC|F1\rBHS|^~\\&|EPIC|F1\r")
        written = 0
        while written < 50_000_000:
            fh.write(block)
            written += len(block)
        fh.write(b"BTS|0\rFTS|1\r")
    assert path.stat().st_size >= 50_000_000
    stream = _ReadOnlyInChunks(path)
    report = FileReport()
    tracemalloc.start()
    try:
        count = charges = 0
        for raw in iter_messages(stream, report=report):
            count += 1
            if count % 50 == 1:
                charges += len(to_canonical(parse(raw)).charges)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        stream.close()
    assert count == report.messages and count > 50_000
    assert charges > 0 and stream.largest == 1 << 20
    assert peak < 20_000_000, f"peak {peak / 1e6:.1f} MB"
    assert any("BTS-1 says 0 messages" in p for p in report.problems)


def test_two_batches_and_envelope_scope() -> None:
    one = frame(ALL[:1], batch=True).replace(b"FTS|1\r", b"")
    data = (
        one
        + b"MSH" + ALL[1][3:].encode() + b"\r"  # between batches: file envelope only
        + b"BHS|^~\\&|EPIC|F1|||20240301100000||batch-b||BATCH-2\r"
        + ALL[2].encode() + b"\rBTS|1\rFTS|2\r"
    )  # fmt: skip
    raws, report = read_all(data)
    assert report.problems == [] and report.batches == 2
    assert [r.envelope.batch_control_id for r in raws] == ["BATCH-1", None, "BATCH-2"]
    assert {r.envelope.file_control_id for r in raws} == {"FILE-77"}


def test_canonicalize_attaches_the_control_id() -> None:
    from carefabric.hl7 import canonicalize

    assert canonicalize(DFT_BASIC).control_id == "DFT0001"
    with pytest.raises(HL7ParseError) as info:
        canonicalize(message(msh("DFT^P03", "CID9"), pid(), pv1(), "F"))
    assert info.value.control_id == "CID9" and "truncated" in info.value.reason
