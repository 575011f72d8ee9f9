"""The 835 reader on real public files it was not written against (tests/samples_extra/x12_835,
SOURCES.md there), and on hand-made layouts of the same bytes that real senders use.

Two independent checks per file:

* pyx12's ``X12ContextReader`` (its own TR3 map and segment walker) gives each transaction's ST02
  and BPR02, each claim's CLP01/CLP03/CLP04 with the sum of its CAS amounts, each line's
  SVC02/SVC03 with its CAS, and the PLB amounts; the balancing verdicts are then redone here with
  plain ``Decimal`` arithmetic on pyx12's values and compared with the reader's.
* ``PINNED``: what each file holds, written down by hand from the files themselves, so a change in
  either reader shows.

The layout variants (each segment on its own line, indented, blank lines, CRLF, a UTF-8 BOM,
several interchanges with different delimiters in one file, an ISA not padded to 106) must give
exactly the remittances of the compact original: whitespace around segments is not data.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import re
from decimal import Decimal
from pathlib import Path

import pytest

from carefabric.canonical import Remittance
from carefabric.x12 import X12Error, read_file

D = Decimal
EXTRA = Path(__file__).parent / "samples_extra" / "x12_835"
FILES = sorted(p.name for p in EXTRA.glob("*.835"))
READABLE = [name for name in FILES if name != "e835p_blue_cross_nc_no_envelope.835"]

# file: (transactions, BPR02 per transaction, claims per transaction, balanced per transaction)
PINNED: dict[str, tuple[int, list[str], list[int], list[bool]]] = {
    "e835p_emedny_sample.835": (1, ["45.75"], [3], [True]),
    "e835p_united_healthcare_legacy.835": (1, ["349.99"], [2], [True]),
    "lfh_secondary_payment.835": (1, ["1222.00"], [2], [True]),
    # SVC01 'HC' with the procedure code shifted into SVC02: 24599.00 - 1579.00 != 187.50
    "lfh_tertiary_payment.835": (1, ["187.50"], [1], [False]),
    "qrp_31048_L156_P8LA010119.835": (2, ["1.78", "141.13"], [2, 4], [True, True]),
    "qrp_52106_LQ43_P1VA010118.835": (1, ["0"], [1], [True]),  # a denial (CLP02 4), BPR NON 0
    "qrp_52192_LM18_HBVA010119.835": (2, ["4569.58", "0"], [4, 1], [True, True]),
    "qrp_52192_LQ25_PBVA010119.835": (1, ["0"], [1], [True]),
    "qrp_52192_LQ29_PBVA010119.835": (4, ["0", "3500", "0", "3500"], [3, 1, 1, 1], [True] * 4),
    "qrp_52563_L087_HNUA030119.835": (1, ["1658.84"], [2], [True]),
    "qrp_52563_L096_PNUA010119.835": (1, ["120.5"], [2], [True]),
    "qrp_52563_LE65_HNUA010119.835": (1, ["1677.02"], [2], [True]),
    "qrp_52563_LG76_PNUA010119.835": (1, ["2185.38"], [16], [True]),
    "qrp_52563_LH99_PNUA010119.835": (1, ["119.23"], [1], [True]),  # PLB L6 interest -1.16
}


# --------------------------------------------------------------------------- independent reading


def _pyx12_view(path: Path) -> list[dict[str, object]]:
    """Per transaction: ST02, BPR02, claims [(CLP01, CLP03, CLP04, claim+line CAS, lines)], PLB."""
    import pyx12.error_handler
    import pyx12.params
    import pyx12.x12context

    logging.getLogger("pyx12").setLevel(logging.CRITICAL + 1)
    out: list[dict[str, object]] = []
    with open(path, encoding="utf-8") as fd:
        reader = pyx12.x12context.X12ContextReader(pyx12.params.params(), pyx12.error_handler.errh_null(), fd)
        for node in reader.iter_segments("ST_LOOP"):
            if node.id != "ST_LOOP":
                continue
            claims: list[dict[str, object]] = []
            tx: dict[str, object] = {"st02": node.get_value("ST02"), "claims": claims, "plb": []}
            line: dict[str, Decimal] | None = None
            for item in node.iterate_segments():
                seg = item["segment"]
                sid = seg.get_seg_id()
                if sid == "BPR":
                    tx["bpr02"] = D(seg.get_value("BPR02"))
                elif sid == "CLP":
                    line = None
                    claims.append({"id": seg.get_value("CLP01"), "charge": D(seg.get_value("CLP03")),
                                   "paid": D(seg.get_value("CLP04")), "cas": D(0), "lines": []})
                elif sid == "SVC":
                    line = {"charge": D(seg.get_value("SVC02")), "paid": D(seg.get_value("SVC03")), "cas": D(0)}
                    claims[-1]["lines"].append(line)  # type: ignore[attr-defined]
                elif sid == "CAS":
                    total = sum((D(seg.get_value(f"CAS{i:02d}")) for i in (3, 6, 9, 12, 15, 18)
                                 if seg.get_value(f"CAS{i:02d}")), D(0))
                    claims[-1]["cas"] += total  # type: ignore[operator]
                    if line is not None:
                        line["cas"] += total
                elif sid == "PLB":
                    tx["plb"] += [D(seg.get_value(f"PLB{i:02d}")) for i in (4, 6, 8, 10, 12, 14)  # type: ignore[operator]
                                  if seg.get_value(f"PLB{i:02d}")]
            out.append(tx)
    return out


def _balanced(tx: dict[str, object]) -> bool:
    """The three balancing rules redone on pyx12's values."""
    claims = tx["claims"]
    assert isinstance(claims, list)
    lines_ok = all(ln["charge"] - ln["cas"] == ln["paid"] for c in claims for ln in c["lines"])
    claims_ok = all(c["charge"] - c["cas"] == c["paid"] for c in claims)
    total = sum((c["paid"] for c in claims), D(0)) - sum(tx["plb"], D(0))  # type: ignore[arg-type]
    return lines_ok and claims_ok and total == tx["bpr02"]


@pytest.mark.parametrize("name", READABLE)
def test_real_835_same_money_and_verdicts_as_pyx12(name: str) -> None:
    result = read_file(EXTRA / name)
    assert result.errors == [] and result.findings == []
    theirs = _pyx12_view(EXTRA / name)
    assert [r.transaction_control for r in result.remittances] == [t["st02"] for t in theirs]
    for ours, tx in zip(result.remittances, theirs, strict=True):
        assert ours.payment_amount == tx["bpr02"]
        assert [(c.patient_control_number, c.charge, c.paid,
                 sum((a.amount for a in [*c.adjustments, *(x for ln in c.lines for x in ln.adjustments)]), D(0)))
                for c in ours.claims] == [(c["id"], c["charge"], c["paid"], c["cas"]) for c in tx["claims"]]
        assert [(ln.charge, ln.paid) for c in ours.claims for ln in c.lines] == [
            (ln["charge"], ln["paid"]) for c in tx["claims"] for ln in c["lines"]]
        assert [p.amount for p in ours.provider_adjustments] == tx["plb"]
        assert ours.balanced is _balanced(tx), ours.balance_errors


@pytest.mark.parametrize("name", READABLE)
def test_real_835_pinned(name: str) -> None:
    count, bpr02, claims, balanced = PINNED[name]
    result = read_file(EXTRA / name)
    assert result.transaction_count == count
    assert [r.payment_amount for r in result.remittances] == [D(v) for v in bpr02]
    assert [len(r.claims) for r in result.remittances] == claims
    assert [r.balanced for r in result.remittances] == balanced


def test_every_readable_file_is_pinned() -> None:
    assert sorted(PINNED) == READABLE and len(FILES) >= 15


def test_plb_interest_and_denials() -> None:
    (r,) = read_file(EXTRA / "qrp_52563_LH99_PNUA010119.835").remittances
    (plb,) = r.provider_adjustments
    assert (plb.reason, plb.amount, r.claims[0].paid) == ("L6", D("-1.16"), D("118.07"))  # 118.07 + 1.16 = 119.23
    denied = read_file(EXTRA / "qrp_52192_LQ29_PBVA010119.835").remittances[0]
    assert [c.status for c in denied.claims] == ["4", "4", "4"] and all(c.is_denied for c in denied.claims)
    assert denied.payment_method == "NON" and denied.payment_amount == 0


def test_transaction_set_without_envelope_names_the_cause() -> None:
    with pytest.raises(X12Error, match="starts with an ST segment: a transaction set without its ISA/GS envelope"):
        read_file(EXTRA / "e835p_blue_cross_nc_no_envelope.835")


# --------------------------------------------------------------------------- layouts of the same bytes


def _segments(data: bytes, term: bytes) -> list[bytes]:
    """Segments of a one-interchange file."""
    return [s.strip() for s in data.split(term) if s.strip()]


def pretty(data: bytes, newline: bytes = b"\r\n", term: bytes | None = None) -> bytes:
    """Each segment on its own line, indented by spaces or a tab, with blank lines between loops
    (``term``: the segment terminator, by default the 106th byte of a padded ISA)."""
    term = term or data[105:106]
    out = []
    for i, seg in enumerate(_segments(data, term)):
        indent = (b"", b"  ", b"\t", b"    ")[i % 4]
        blank = newline if seg[:2] in (b"ST", b"LX", b"CL", b"SE") else b""
        out.append(blank + indent + seg + term + newline)
    return b"".join(out)


def _positionless(remittances: list[Remittance]) -> list[Remittance]:
    """Remittances with "segment N" numbers blanked (they count from the start of the file)."""
    return [dataclasses.replace(r, findings=[re.sub(r"segment \d+", "segment N", f) for f in r.findings])
            for r in remittances]


def _shared(samples_dir: Path) -> dict[str, bytes]:
    folder = samples_dir / "x12_835"
    names = ("lfh_medicare_part_a.835", "lfh_managed_care.835", "pyx12_835_simple_4010.835")
    return {n: (folder / n).read_bytes() for n in names}


@pytest.mark.parametrize("name", READABLE)
@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_pretty_printed_real_file_reads_the_same(name: str, newline: bytes) -> None:
    data = (EXTRA / name).read_bytes()
    expected = read_file(io.BytesIO(data))
    assert read_file(io.BytesIO(pretty(data, newline))) == expected
    assert read_file(io.BytesIO(b"\xef\xbb\xbf" + pretty(data, newline)), chunk_size=97) == expected


def test_pretty_printed_4010_and_shared_samples_read_the_same(samples_dir: Path) -> None:
    for name, data in _shared(samples_dir).items():
        assert read_file(io.BytesIO(b"\xef\xbb\xbf\r\n  " + pretty(data))) == read_file(io.BytesIO(data)), name


def test_many_interchanges_with_different_delimiters_lose_nothing(samples_dir: Path) -> None:
    """Every readable real file, 4010 and 5010, ISA16 ':' and '>', one with '|' elements and '!'
    terminators, pretty or compact, concatenated after a BOM: every transaction, in order."""
    parts = [(EXTRA / n).read_bytes() for n in READABLE]
    parts += list(_shared(samples_dir).values())
    piped = _shared(samples_dir)["lfh_medicare_part_a.835"].replace(b"*", b"|").replace(b"~", b"!")
    parts.append(piped)
    expected: list[Remittance] = []
    for data in parts:
        expected += read_file(io.BytesIO(data)).remittances
    joined = b"\xef\xbb\xbf" + b"\n\n".join(pretty(d) if i % 2 else d for i, d in enumerate(parts))
    for chunk_size in (64, 4096, 1 << 16):
        result = read_file(io.BytesIO(joined), chunk_size=chunk_size)
        assert result.errors == [] and result.findings == []
        assert _positionless(result.remittances) == _positionless(expected)
    assert len(expected) == sum(PINNED[n][0] for n in READABLE) + 4


def test_unpadded_isa_is_read_with_a_finding() -> None:
    data = (EXTRA / "lfh_secondary_payment.835").read_bytes()
    short = data.replace(b"*000000005      *", b"*000000005*", 1).replace(b"*12345          *", b"*12345*", 1)
    result = read_file(io.BytesIO(pretty(short, term=b"~")))
    assert result.remittances == read_file(io.BytesIO(data)).remittances
    assert result.findings == ["segment 1 ISA is 90 characters, not the fixed 106 (elements not padded to their "
                               "widths); read by its separators"]


def test_indented_st_is_never_lost() -> None:
    """The defect of issue 9: an indented ST after a blank line became an "ignored" finding and its
    transaction (its claims and money) vanished from a file reported as balanced."""
    data = (EXTRA / "qrp_52192_LQ29_PBVA010119.835").read_bytes().replace(b"\r\nST*835*0018", b"\r\n\r\n    ST*835*0018")
    result = read_file(io.BytesIO(data))
    assert [r.transaction_control for r in result.remittances] == ["0017", "0018", "0019", "0020"]
    assert result.errors == [] and result.findings == []
