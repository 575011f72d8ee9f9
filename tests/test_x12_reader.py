"""The 835 reader, balancing, validation and summary, pinned against real public samples.

Each sample in shared/samples/x12_835 was written by someone else (SOURCES.md says what is wrong
in each); the amounts pinned here were checked by hand:

* medicare part A: 211366.97 - 73348.57 = 138018.40; 15000.00 - 3019.67 = 11980.33;
  138018.40 + 11980.33 - (-1.27) = 150000.00 = BPR02 -> balanced.
* managed care: line 800 - 300 = 500, claim 800 - (50 + 300) = 450; line 1200 - (600 + 50) = 550,
  claim 1200 - (55 + 650) = 495; 450 + 495 = 945 = BPR02 -> balanced (only BPR16 is wrong).
* COB: line 541 - (516 + -9) = 34 = SVC03 = CLP04 = BPR02 -> balanced.
* pyx12 4010: sum(CLP04) = -210 + 200 - 500.25 = -510.25; sum(PLB) = -1008.1 + 24.21 + 5.95
  = -977.94; -510.25 + 977.94 = 467.69 != 5950.21 -> unbalanced by 5482.52.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import tracemalloc
from decimal import Decimal
from pathlib import Path

import pytest

from carefabric.canonical import Remittance
from carefabric.x12 import X12Error, file_summary, iter_transactions, read_file, validate_file
from carefabric.x12.balance import balance_errors, check_transaction
from carefabric.x12.envelope import detect_delimiters
from carefabric.x12.reader import FileResult, normalize_composite
from sandbox.synth_835 import write_835

SAMPLES = (
    "lfh_medicare_part_a",
    "lfh_managed_care",
    "lfh_cob_contractual_adjustment",
    "pyx12_835_simple_4010",
)
D = Decimal


@pytest.fixture(scope="module")
def x12_dir(samples_dir: Path) -> Path:
    return samples_dir / "x12_835"


def _one(result: FileResult) -> Remittance:
    assert result.errors == [], [e.reason for e in result.errors]
    assert len(result.remittances) == 1
    return result.remittances[0]


def _read_bytes(data: bytes, **kw: int) -> FileResult:
    return read_file(io.BytesIO(data), **kw)


# --------------------------------------------------------------------------- the samples


def test_medicare_part_a(x12_dir: Path) -> None:
    r = _one(read_file(x12_dir / "lfh_medicare_part_a.835"))
    assert (r.interchange_control, r.group_control, r.transaction_control) == ("000000907", "1", "1234")
    assert r.version == "005010X221A1"
    assert r.sender_id == "000000005"
    assert r.payment_amount == D("150000.00")
    assert (r.credit_debit, r.payment_method, r.payment_date) == ("C", "ACH", dt.date(2002, 9, 13))
    assert (r.trace_number, r.trace_originator) == ("12345", "1512345678")
    assert r.payer_name == "INSURANCE COMPANY OF TIMBUCKTU"
    assert r.payer_id == "999"  # no N1*PR id: REF*2U
    assert (r.payee_name, r.payee_npi) == ("REGIONAL HOPE HOSPITAL", "6543210903")
    assert [c.patient_control_number for c in r.claims] == ["666123", "777777"]
    assert [(c.charge, c.paid) for c in r.claims] == [
        (D("211366.97"), D("138018.40")),
        (D("15000.00"), D("11980.33")),
    ]
    assert [(a.group, a.reason, a.amount) for a in r.claims[0].adjustments] == [("CO", "45", D("73348.57"))]
    assert r.claims[0].lines == []
    assert r.claims[0].patient_name_phi == "JONES, SAM O"
    assert r.claims[0].member_id_phi == "666666666A"
    assert r.claims[0].payer_claim_control == "1999999444444"
    (plb,) = r.provider_adjustments
    assert (plb.provider_id, plb.fiscal_date, plb.reason, plb.reference, plb.amount) == (
        "6543210903",
        dt.date(2002, 12, 31),
        "CV",
        "CP",
        D("-1.27"),
    )
    assert r.balanced and r.balance_errors == []
    assert r.findings == []


def test_managed_care(x12_dir: Path) -> None:
    r = _one(read_file(x12_dir / "lfh_managed_care.835"))
    assert r.payment_amount == D("945.00")
    assert r.payment_date is None
    assert r.findings == ["BPR16 payment date '20002316' is not a valid CCYYMMDD date; left empty"]
    assert r.payer_id == "1935665544"  # neither N1*PR id nor REF*2U: TRN03
    assert r.payee_npi == "5544667733"
    first, second = r.claims
    assert (first.patient_control_number, first.status, first.patient_responsibility) == (
        "5554555444",
        "1",
        D("300.00"),
    )
    assert [(a.group, a.reason, a.amount) for a in first.adjustments] == [("CO", "A2", D("50.00"))]
    (line,) = first.lines
    assert (line.procedure, line.charge, line.paid, line.service_date) == (
        "HC:99211",
        D("800.00"),
        D("500.00"),
        dt.date(2002, 3, 1),
    )
    assert [(a.group, a.reason, a.amount) for a in line.adjustments] == [("PR", "1", D("300.00"))]
    assert [(a.group, a.reason, a.amount) for a in second.lines[0].adjustments] == [
        ("PR", "1", D("600.00")),
        ("CO", "45", D("50.00")),
    ]
    assert r.balanced, r.balance_errors


def test_cob_contractual_adjustment(x12_dir: Path) -> None:
    r = _one(read_file(x12_dir / "lfh_cob_contractual_adjustment.835"))
    (claim,) = r.claims
    assert (claim.patient_control_number, claim.status, claim.charge, claim.paid) == (
        "0001000055",
        "2",
        D("541.00"),
        D("34.00"),
    )
    assert claim.patient_responsibility is None
    (line,) = claim.lines
    assert line.procedure == "HC:55669"  # written HC>55669 while ISA16 is ':'
    assert (line.units, line.allowed, line.service_date) == (D("1.00"), D("550.00"), dt.date(2005, 2, 2))
    assert [(a.group, a.reason, a.amount) for a in line.adjustments] == [
        ("OA", "23", D("516.00")),
        ("OA", "94", D("-9.00")),
    ]
    assert r.payment_date is None  # BPR16 is missing: the date slid into BPR15
    assert r.findings == [
        "BPR16 payment date missing (BPR has 15 elements); BPR15 '20050318' looks like the date, "
        "an element is probably missing",
        "claim 0001000055 line 1: SVC01 written with component separator '>' although ISA16 is ':'; "
        "read as 'HC:55669'",
    ]
    assert r.balanced, r.balance_errors


def test_demo_malformed_is_rejected_naming_cas_co(x12_dir: Path) -> None:
    result = read_file(x12_dir / "lfh_demo_malformed.835")
    assert result.remittances == []
    (error,) = result.errors
    assert error.reason == (
        "transaction ST02=112233 unreadable: segment 27: segment id CAS is followed by '_' instead of the "
        "element separator '*' the ISA declares"
    )
    assert (error.interchange_control, error.group_control, error.transaction_control) == (
        "000000907",
        "1",
        "112233",
    )
    assert error.segment_position == 27


def test_pyx12_4010_reversals_unbalanced(x12_dir: Path) -> None:
    r = _one(read_file(x12_dir / "pyx12_835_simple_4010.835"))
    assert r.version == "004010X091A1"
    assert [(c.patient_control_number, c.status, c.paid) for c in r.claims] == [
        ("123839-24635", "22", D("-210")),
        ("123839-24635", "1", D("200")),
        ("134158-27488", "22", D("-500.25")),
    ]
    assert [c.is_reversal for c in r.claims] == [True, False, True]
    assert [(a.group, a.reason, a.amount) for a in r.claims[0].lines[0].adjustments] == [
        ("CR", "45", D("-100"))
    ]
    assert r.claims[2].lines[0].procedure == "HC:T1017:TG"
    assert [(p.reason, p.amount) for p in r.provider_adjustments] == [
        ("CS", D("-1008.1")),
        ("CS", D("24.21")),
        ("CS", D("5.95")),
    ]
    assert r.balance_errors == [
        "transaction 40731 (TRN02 0004926): BPR02 5950.21 != sum(CLP04) -510.25 - sum(PLB) -977.94 = 467.69 "
        "over 3 claims (off by 5482.52)"
    ]
    assert not r.balanced
    assert balance_errors(r) == r.balance_errors  # the streaming check and the re-check agree


# --------------------------------------------------------------------------- pyx12 cross-check


def _pyx12_view(path: Path) -> tuple[list[tuple[str, Decimal, Decimal]], list[Decimal]]:
    """(CLP01, CLP04, sum of every CAS amount in the 2100 loop) per claim, and PLB amounts, per pyx12."""
    import pyx12.error_handler
    import pyx12.params
    import pyx12.x12context

    claims: list[tuple[str, Decimal, Decimal]] = []
    plb: list[Decimal] = []
    with open(path, encoding="utf-8") as fd:
        reader = pyx12.x12context.X12ContextReader(pyx12.params.params(), pyx12.error_handler.errh_null(), fd)
        for node in reader.iter_segments("2100"):
            if node.id == "2100":
                cas = D(0)
                for item in node.iterate_segments():
                    seg = item["segment"]
                    if seg.get_seg_id() == "CAS":
                        for i in (3, 6, 9, 12, 15, 18):
                            value = seg.get_value(f"CAS{i:02d}")
                            if value:
                                cas += D(value)
                claims.append((node.get_value("CLP01"), D(node.get_value("CLP04")), cas))
            elif node.id == "PLB":
                for i in (4, 6, 8, 10, 12, 14):
                    value = node.get_value(f"PLB{i:02d}")
                    if value:
                        plb.append(D(value))
    return claims, plb


@pytest.mark.parametrize("name", SAMPLES)
def test_same_money_as_pyx12(x12_dir: Path, name: str) -> None:
    path = x12_dir / f"{name}.835"
    r = _one(read_file(path))
    ours = [
        (
            c.patient_control_number,
            c.paid,
            sum((a.amount for a in c.adjustments), D(0))
            + sum((a.amount for line in c.lines for a in line.adjustments), D(0)),
        )
        for c in r.claims
    ]
    theirs, plb = _pyx12_view(path)
    assert ours == theirs
    assert [p.amount for p in r.provider_adjustments] == plb


# --------------------------------------------------------------------------- malformed input


def test_empty_file() -> None:
    with pytest.raises(X12Error, match="^empty file: no ISA segment$"):
        _read_bytes(b"")


def test_not_starting_with_isa() -> None:
    with pytest.raises(X12Error, match="does not start with ISA"):
        _read_bytes(b"GS*HP*X*Y~ST*835*1~" * 10)


def test_isa_too_short() -> None:
    with pytest.raises(X12Error, match="^ISA segment has 6 element separators '\\*' where 16 are required$"):
        _read_bytes(b"ISA*00*          *00*          *ZZ*SHORT~")
    with pytest.raises(X12Error, match="^ISA segment too short: file has 104 characters"):
        _read_bytes(b"ISA*00*          *00*          *ZZ*SHORT          *ZZ*RECEIVER       *240102*1200*^*00501*000000001*0*T*")


def test_garbage_isa_rejected() -> None:
    with pytest.raises(X12Error, match="invalid element separator 'X'"):
        _read_bytes(b"ISAX" + b"A" * 200)
    # an unpadded ISA06 is read by its separators, with a finding (it was refused before issue 9)
    result = _read_bytes(
        b"ISA*00*          *00*          *ZZ*SHORT*ZZ*RECEIVER       *240102*1200*^*00501*000000001*0*T*:~"
        b"GS*HP*A*B*20240102*1200*1*X*005010X221A1~GE*0*1~IEA*1*000000001~"
    )
    assert (result.remittances, result.errors) == ([], [])
    assert result.findings == [
        "segment 1 ISA is 96 characters, not the fixed 106 (elements not padded to their widths); read by its separators"]


def test_pipe_delimiters_declared_in_isa(x12_dir: Path) -> None:
    text = (x12_dir / "lfh_medicare_part_a.835").read_text()
    piped = text.replace("*", "|").replace("~", "!")  # | elements, ! segments, ':' components
    assert detect_delimiters(piped.encode()).element == "|"
    r = _one(_read_bytes(piped.encode()))
    reference = _one(read_file(x12_dir / "lfh_medicare_part_a.835"))
    assert r == reference


def test_component_separator_other_than_colon(x12_dir: Path) -> None:
    text = (x12_dir / "lfh_managed_care.835").read_text()
    isa, rest = text[:106], text[106:]
    data = (isa[:104] + ">" + isa[105:] + rest.replace("HC:", "HC>")).encode()
    r = _one(_read_bytes(data))
    assert [c.lines[0].procedure for c in r.claims] == ["HC:99211", "HC:93555"]
    assert not any("component separator" in f for f in r.findings)


@pytest.mark.parametrize("chunk_size", [1, 7, 106, 4096])
def test_chunk_boundaries_do_not_matter(x12_dir: Path, chunk_size: int) -> None:
    path = x12_dir / "lfh_managed_care.835"
    assert read_file(path, chunk_size=chunk_size) == read_file(path)


@pytest.mark.parametrize("newline", ["", "\r\n", "\n\n"])
def test_newlines_after_terminators_tolerated(x12_dir: Path, newline: str) -> None:
    text = (x12_dir / "lfh_cob_contractual_adjustment.835").read_text().replace("~\n", "~" + newline)
    assert _one(_read_bytes(text.encode())) == _one(read_file(x12_dir / "lfh_cob_contractual_adjustment.835"))


def test_truncated_inside_transaction(x12_dir: Path) -> None:
    data = (x12_dir / "lfh_medicare_part_a.835").read_bytes()
    cut = data[: data.index(b"CLP*777777")]
    result = _read_bytes(cut)
    assert result.remittances == []
    reasons = [e.reason for e in result.errors]
    assert reasons[0] == "transaction ST02=1234 unreadable: file ends after segment 23 with no SE (truncated)"
    assert result.errors[0].transaction_control == "1234"
    assert any("no IEA for interchange 000000907" in r for r in reasons)


def test_truncated_after_se(x12_dir: Path) -> None:
    data = (x12_dir / "lfh_medicare_part_a.835").read_bytes()
    result = _read_bytes(data[: data.index(b"GE*")])
    assert len(result.remittances) == 1 and result.remittances[0].balanced  # the transaction is whole
    assert [e.reason for e in result.errors] == [
        "file ends after segment 30 with no GE for group 1 (truncated)",
        "file ends after segment 30 with no IEA for interchange 000000907 (truncated)",
    ]
    assert all(e.transaction_control is None for e in result.errors)


def test_non_utf8_bytes_decoded_as_latin1(x12_dir: Path) -> None:
    data = (x12_dir / "lfh_medicare_part_a.835").read_bytes().replace(b"TIMBUCKTU~", b"TIMBUCKT\xdc~", 1)
    r = _one(_read_bytes(data))
    assert r.payer_name == "INSURANCE COMPANY OF TIMBUCKT\u00dc"
    assert r.findings == ["segment 7: byte 0xdc at offset 35 is not UTF-8; segment decoded as latin-1"]
    assert r.balanced


def test_se_count_mismatch_is_a_finding(x12_dir: Path) -> None:
    data = (x12_dir / "lfh_managed_care.835").read_bytes().replace(b"SE*26*", b"SE*25*")
    r = _one(_read_bytes(data))
    assert "SE01 says 25 segments but transaction ST02=112233 has 26" in r.findings
    assert r.balanced


def test_bpr_missing_elements(x12_dir: Path) -> None:
    data = (x12_dir / "lfh_managed_care.835").read_bytes()
    start = data.index(b"BPR*")
    end = data.index(b"~", start)
    result = _read_bytes(data[:start] + b"BPR*I*945.00" + data[end:])
    (error,) = result.errors
    assert error.reason == (
        "transaction ST02=112233 unreadable: segment 4 BPR has 2 elements and lacks BPR03, BPR04 "
        "(BPR01-BPR04 handling, amount, credit/debit, method are required)"
    )


def test_amount_not_a_number(x12_dir: Path) -> None:
    data = (x12_dir / "lfh_managed_care.835").read_bytes().replace(b"*450.00*300.00*", b"*45O.00*300.00*")
    (error,) = _read_bytes(data).errors
    assert error.reason == (  # the value is not quoted: an element may hold PHI
        "transaction ST02=112233 unreadable: claim 5554555444 CLP04 is not a decimal amount "
        "(X12 type R: digits, optional leading '-' and '.')")


def test_bad_transaction_does_not_stop_the_others(x12_dir: Path) -> None:
    good = (x12_dir / "lfh_managed_care.835").read_text()
    isa_gs, rest = good.split("ST*835*", 1)
    st_body = "ST*835*" + rest[: rest.index("GE*")]
    bad_body = st_body.replace("112233", "222222").replace("CAS*CO*45*50.00", "CAS_CO*45*50.00")
    third = st_body.replace("112233", "333333")
    data = (isa_gs + st_body + bad_body + third + "GE*3*1~\nIEA*1*000000907~\n").encode()
    items = list(iter_transactions(io.BytesIO(data)))
    assert [type(i).__name__ for i in items] == ["Remittance", "X12Error", "Remittance"]
    assert [i.transaction_control for i in items] == ["112233", "222222", "333333"]  # type: ignore[union-attr]
    assert "segment id CAS is followed by '_'" in items[1].reason  # type: ignore[union-attr]


def test_unbalanced_claim_and_line_messages(x12_dir: Path) -> None:
    data = (
        (x12_dir / "lfh_managed_care.835")
        .read_bytes()
        .replace(b"SVC*HC:99211*800.00*500.00", b"SVC*HC:99211*800.00*510.00")
    )
    r = _one(_read_bytes(data))
    assert r.balance_errors == [
        "claim 5554555444 line 1 (HC:99211): SVC02 800.00 - line CAS 300.00 = 500.00, but SVC03 is 510.00 (off by 10.00)"
    ]
    data = (x12_dir / "lfh_managed_care.835").read_bytes().replace(b"CAS*CO*A2*55.00", b"CAS*CO*A2*54.99")
    r = _one(_read_bytes(data))
    assert r.balance_errors == [
        "claim 8765432112 (CLP02 1): CLP03 1200.00 - CAS 704.99 (claim 54.99 + lines 650.00) = 495.01, "
        "but CLP04 is 495.00 (off by -0.01)"
    ]


def test_debit_payment_is_negative_for_the_total_rule(x12_dir: Path) -> None:
    r = _one(read_file(x12_dir / "lfh_medicare_part_a.835"))
    r.credit_debit = "D"
    assert "BPR02 -150000.00 (BPR03 D) != sum(CLP04) 149998.73 - sum(PLB) -1.27 = 150000.00" in (
        check_transaction(r) or ""
    )


def test_normalize_composite() -> None:
    assert normalize_composite("HC:99213:25", ":") == ("HC:99213:25", None)
    assert normalize_composite("HC>99213>25", ":") == ("HC:99213:25", ">")
    assert normalize_composite("HC^99213", "^") == ("HC:99213", None)
    assert normalize_composite("CS", ":") == ("CS", None)


def test_generated_50mb_streams_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.835"
    with open(path, "wb") as out:
        shape = write_835(out, transactions=1450, claims_per_transaction=100, lines_per_claim=2)
    assert path.stat().st_size > 50_000_000
    claims = 0
    transactions = 0
    tracemalloc.start()
    try:
        for item in iter_transactions(path):
            assert isinstance(item, Remittance), item
            assert item.balanced, item.balance_errors[:1]
            claims += len(item.claims)
            transactions += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (transactions, claims) == (shape["transactions"], shape["claims"])
    assert peak < 20_000_000, f"peak {peak / 1e6:.1f} MB"


# --------------------------------------------------------------------------- validation and 999

VERDICTS = {
    "lfh_medicare_part_a": True,  # missing PER, TS3 "not used" amounts: no money touched
    "lfh_managed_care": True,  # impossible BPR16, missing PER
    "lfh_cob_contractual_adjustment": True,  # SVC01 '>' and BPR16 missing: money reads and balances
    "lfh_demo_malformed": False,  # CAS_CO: transaction unreadable
    "pyx12_835_simple_4010": False,  # unbalanced
}
NOW = dt.datetime(2024, 1, 2, 3, 4, tzinfo=dt.UTC)


@pytest.mark.parametrize("name", sorted(VERDICTS))
def test_validate_file(x12_dir: Path, name: str) -> None:
    result = validate_file(x12_dir / f"{name}.835", now=NOW)
    assert result.accepted is VERDICTS[name], [f.message for f in result.findings if f.touches_money]
    assert result.ack_999.startswith("ISA*")
    assert "ST*999*0001*005010X231A1~" in result.ack_999
    assert result.ack_999.rstrip().endswith("IEA*1*000000001~")
    assert result.findings  # every sample deviates from the TR3 somewhere
    ak9 = "AK9*E*1*1*1~" if VERDICTS[name] else "AK9*R*1*1*0~"
    assert ak9 in result.ack_999
    assert validate_file(x12_dir / f"{name}.835", strict=True, now=NOW).accepted is False


def test_validate_999_content(x12_dir: Path) -> None:
    ack = validate_file(x12_dir / "lfh_managed_care.835", now=NOW).ack_999
    assert ack.splitlines() == [
        "ISA*00*          *00*          *30*12345          *30*000000005      *240102*0304*^*00501*000000001*0*T*:~",
        "GS*FA*54321*000000005*20240102*0304*1*X*005010X231A1~",
        "ST*999*0001*005010X231A1~",
        "AK1*HP*1*005010X221A1~",
        "AK2*835*112233*005010X221A1~",
        "IK3*BPR*2*8~",
        "IK4*16*373*8~",
        "IK3*PER*8*3~",
        "IK5*E*5~",
        "AK9*E*1*1*1~",
        "SE*9*0001~",
        "GE*1*1~",
        "IEA*1*000000001~",
    ]
    demo = validate_file(x12_dir / "lfh_demo_malformed.835", now=NOW)
    assert "IK3*CAS_CO*25*1~" in demo.ack_999 and "IK5*R*4*5~" in demo.ack_999
    assert any(f.source == "reader" and "CAS is followed by '_'" in f.message and f.touches_money for f in demo.findings)


def test_validate_unreadable_file_still_answers(tmp_path: Path) -> None:
    path = tmp_path / "empty.835"
    path.write_bytes(b"")
    result = validate_file(path, now=NOW)
    assert not result.accepted
    assert result.findings[0].message == "empty file: no ISA segment"
    assert (
        result.ack_999.startswith("ISA*") and "ST*999*" in result.ack_999 and "AK9*R*0*0*0~" in result.ack_999
    )


# --------------------------------------------------------------------------- summary


def test_file_summary_masks_phi(x12_dir: Path) -> None:
    summary = file_summary(x12_dir / "lfh_medicare_part_a.835")
    json.dumps(summary)  # JSON-able
    assert summary["balanced"] is True and summary["errors"] == []
    (tx,) = summary["transactions"]
    assert tx["payer"] == {"name": "INSURANCE COMPANY OF TIMBUCKTU", "id": "999"}
    assert (tx["payment_amount"], tx["trace_number"], tx["payment_date"]) == (
        "150000.00",
        "12345",
        "2002-09-13",
    )
    assert tx["provider_adjustments"][0]["amount"] == "-1.27"
    claim = tx["claims"][0]
    assert (claim["claim_id"], claim["status"], claim["charge"], claim["paid"]) == (
        "666123",
        "1",
        "211366.97",
        "138018.40",
    )
    assert claim["adjustments"] == [{"group": "CO", "reason": "45", "amount": "73348.57", "quantity": None}]
    assert (claim["patient_name"], claim["member_id"]) == ("***", "***")
    text = json.dumps(summary)
    assert "JONES" not in text and "666666666A" not in text
    shown = file_summary(x12_dir / "lfh_medicare_part_a.835", show_phi=True)["transactions"][0]["claims"][0]
    assert (shown["patient_name"], shown["member_id"]) == ("JONES, SAM O", "666666666A")


def test_file_summary_verdicts(x12_dir: Path) -> None:
    s = file_summary(x12_dir / "pyx12_835_simple_4010.835")
    assert s["balanced"] is False and s["transactions"][0]["balanced"] is False
    assert "off by 5482.52" in s["transactions"][0]["balance_errors"][0]
    assert s["transactions"][0]["claims"][0]["reversal"] is True
    demo = file_summary(x12_dir / "lfh_demo_malformed.835")
    assert demo["readable"] is False and demo["transactions"] == []
    assert "CAS is followed by '_'" in demo["errors"][0]["reason"]
    assert demo["errors"][0]["transaction_control"] == "112233"


def test_file_summary_unreadable_raises(tmp_path: Path) -> None:
    path = tmp_path / "garbage.835"
    path.write_bytes(b"this is not an 835 file at all, just some text that goes on and on" * 3)
    with pytest.raises(X12Error) as info:
        file_summary(path)
    assert "\n" not in info.value.reason and "does not start with ISA" in info.value.reason


def test_cas_with_several_triplets(x12_dir: Path) -> None:
    data = (
        (x12_dir / "lfh_managed_care.835")
        .read_bytes()
        .replace(b"CAS*PR*1*300.00", b"CAS*PR*1*200.00**2*60.00*1*3*40.00")
    )
    r = _one(_read_bytes(data))
    adjustments = r.claims[0].lines[0].adjustments
    assert [(a.group, a.reason, a.amount, a.quantity) for a in adjustments] == [
        ("PR", "1", D("200.00"), None),
        ("PR", "2", D("60.00"), D("1")),
        ("PR", "3", D("40.00"), None),
    ]
    assert r.balanced
