"""TR3 syntax validation of an 835 file with pyx12, the acceptance decision, and the 999.

Two readers look at every file, each for what it is good at:

* pyx12 (``x12n_document``) checks the file against the 005010X221A1 / 004010X091A1 map: missing
  mandatory segments (PER), element lengths and codes, dates, loop placement. It is slow
  (about 200 claims/s) so it runs on normal-sized files, not in the streaming path.
* carefabric's own reader (``carefabric.x12.reader``) is the authority on money: it reads every
  amount by position, names unreadable transactions and proves the three balancing rules.

Acceptance (``ValidationResult.accepted``): a transaction is rejected when anything touches the
money: the reader could not read it, it does not balance, or pyx12 flags an amount element
(BPR02/03, CLP03-05, CAS amounts, SVC02/03, PLB amounts) or a missing money segment. Findings
that do not touch money (a missing PER contact, an impossible BPR16 date, SVC01 written with a
foreign component separator, an SE count off by one) are accepted with errors noted (IK5 ``E``)
unless ``strict`` is set, where any finding rejects. Real payers send such files; strictness
will become a per-payer setting.

The 999 is always built here, never taken from pyx12: pyx12 4.0.0 cannot build the 999 for most
5010 835 files ("Cannot create AK2: err_st.vriic was not set", it then leaves a truncated
document), it writes a 997 for 4010 files, and its acknowledgement codes follow its own verdict
(every TR3 deviation rejects) instead of the acceptance policy above. Our 999 carries pyx12's
segment and element findings as IK3/IK4 and our verdict in IK5/AK9. IK404 (the bad value) is
left out so the acknowledgement never carries PHI (an invalid member id, a name).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from carefabric.x12.envelope import detect_delimiters, skip_preamble
from carefabric.x12.errors import X12Error
from carefabric.x12.reader import iter_transactions

_MONEY_SEGMENTS = frozenset({"BPR", "CLP", "CAS", "SVC", "PLB"})
_MONEY_ELEMENTS = frozenset(
    {("BPR", 2), ("BPR", 3), ("CLP", 3), ("CLP", 4), ("CLP", 5), ("SVC", 2), ("SVC", 3)}
    | {("CAS", i) for i in (3, 6, 9, 12, 15, 18)}
    | {("PLB", i) for i in (4, 6, 8, 10, 12, 14)}
)
_IK3_CODES = frozenset({"1", "2", "3", "4", "5", "6", "7", "8", "I4", "I6", "I7", "I8", "I9"})
_IK4_CODES = frozenset(
    {"1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "12", "13", "I10", "I11", "I12", "I13", "I6", "I9"}
)


@dataclass(frozen=True, slots=True)
class Finding:
    """One deviation found in a file.

    ``source`` is ``pyx12`` (TR3 syntax), ``reader`` (carefabric's reader: unreadable transaction
    or a finding it made) or ``balance`` (a balancing rule). ``code`` is the X12 syntax error code
    for pyx12 findings (IK3/IK4/IK5 code lists), else ``UNREADABLE``/``FINDING``/``UNBALANCED``/
    ``ENVELOPE``. ``position`` is the segment's position in its transaction set (pyx12) when known.
    """

    segment: str
    code: str
    message: str
    source: str = "pyx12"
    transaction_control: str | None = None
    touches_money: bool = False
    position: int | None = None
    loop: str | None = None
    element: int | None = None
    element_ref: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "segment": self.segment,
            "code": self.code,
            "message": self.message,
            "source": self.source,
            "transaction_control": self.transaction_control,
            "touches_money": self.touches_money,
            "position": self.position,
        }


@dataclass(slots=True)
class TransactionVerdict:
    """What the 999 says about one transaction set."""

    control: str
    ack_code: str  # IK501: A accepted, E accepted with errors, R rejected
    codes: list[str] = field(default_factory=list)  # IK502..: syntax error codes


@dataclass(slots=True)
class ValidationResult:
    """The decision on a file, the reasons for it and the acknowledgement to send."""

    accepted: bool
    findings: list[Finding]
    ack_999: str
    transactions: list[TransactionVerdict] = field(default_factory=list)
    pyx12_valid: bool | None = None  # pyx12's own verdict (None when it could not run)


# --------------------------------------------------------------------------- pyx12


@contextlib.contextmanager
def _quiet_pyx12() -> Iterator[None]:
    """pyx12 logs every TR3 error at ERROR level; they are returned as findings instead."""
    logger = logging.getLogger("pyx12")
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(level)


def run_pyx12(path: Path) -> tuple[bool | None, list[Finding]]:
    """Validate ``path`` with pyx12 and return (its verdict, its findings)."""
    import pyx12.params
    import pyx12.x12n_document

    fd_json = io.StringIO()
    try:
        with _quiet_pyx12():
            valid = pyx12.x12n_document.x12n_document(
                pyx12.params.params(), str(path), io.StringIO(), None, None, fd_json
            )
    except Exception as exc:  # noqa: BLE001 - pyx12 raises EngineError and others; report, do not crash
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return None, [Finding("", "ENGINE", f"pyx12 could not validate the file: {message}", source="pyx12")]
    text = fd_json.getvalue()
    if not text:
        return bool(valid), []
    return bool(valid), list(_pyx12_findings(json.loads(text)))


_QUOTED = re.compile(r"""("[^"]*"|'[^']*')""")
_NAMES_FOLLOW = ("element ", "Element ", "Segment ", "segment ")  # a quoted name, not a value
_IN_PARENS = re.compile(r"\(([^)]*)\)")
_TRAILING_VALUE = re.compile(r"(invalid (?:character|date|time|value))\s*\(.*\)\s*$", re.IGNORECASE)
_KEPT_IN_PARENS = re.compile(r"[A-Z][A-Z0-9]{1,2}\d{2}|\d{1,5}|max_len|min_len")


def _redacted(text: str) -> str:
    """pyx12's message without the element's value: pyx12 quotes it (``len("DOE JANE") = 8 > 2``,
    ``(DOE JANE) is not a valid code``, ``Invalid Value "..."``) and a shifted field may hold a
    name. Element names, element ids like ``(CLP02)`` and positions stay; values become ``<value>``."""
    def quoted(match: re.Match[str]) -> str:
        return match.group(0) if text[:match.start()].endswith(_NAMES_FOLLOW) else "<value>"

    def parens(match: re.Match[str]) -> str:
        return match.group(0) if _KEPT_IN_PARENS.fullmatch(match.group(1)) else "(<value>)"

    text = _TRAILING_VALUE.sub(r"\1 (<value>)", text)  # the value may hold parentheses itself
    return _IN_PARENS.sub(parens, _QUOTED.sub(quoted, text))


def _pyx12_findings(doc: dict[str, Any]) -> Iterator[Finding]:
    for isa in doc.get("interchanges", []):
        for err in isa.get("errors", []):
            yield Finding("ISA", str(err["err_cde"]), _redacted(err["err_str"]), touches_money=False)
        for gs in isa.get("groups", []):
            for err in gs.get("errors", []):
                yield Finding("GS", str(err["err_cde"]), _redacted(err["err_str"]))
            for st in gs.get("transactions", []):
                control = (st.get("trn_set_control_num") or "").strip() or None
                for err in st.get("errors", []):
                    yield Finding("SE", str(err["err_cde"]), _redacted(err["err_str"]), transaction_control=control)
                for seg in st.get("segments", []):
                    seg_id = seg.get("seg_id") or ""
                    common = {
                        "transaction_control": control,
                        "position": seg.get("seg_count"),
                        "loop": seg.get("ls_id"),
                    }
                    for err in seg.get("errors", []):
                        code = str(err["err_cde"])
                        money = seg_id in _MONEY_SEGMENTS and code == "3"  # a mandatory money segment missing
                        yield Finding(seg_id, code, _redacted(err["err_str"]), touches_money=money, **common)
                    for ele in seg.get("elements", []):
                        pos = ele.get("ele_pos")
                        for err in ele.get("errors", []):
                            yield Finding(
                                seg_id,
                                str(err["err_cde"]),
                                _redacted(err["err_str"]),
                                touches_money=(seg_id, pos) in _MONEY_ELEMENTS,
                                element=pos,
                                element_ref=ele.get("ele_ref_num"),
                                **common,
                            )


# --------------------------------------------------------------------------- the 999


@dataclass(frozen=True, slots=True)
class _Envelope:
    isa05: str
    isa06: str
    isa07: str
    isa08: str
    isa15: str
    gs02: str
    gs03: str
    gs08: str


def _read_envelope(path: Path) -> _Envelope | None:
    """The ISA/GS fields the 999's own envelope is built from (None when unreadable)."""
    with open(path, "rb") as fh:
        head = fh.read(4096)
    head = head[skip_preamble(head) :]
    try:
        delims = detect_delimiters(head)
    except X12Error:
        return None
    text = head.decode("latin-1")
    isa = text[: delims.isa_length - 1].split(delims.element)  # an unpadded ISA is shorter than 106
    gs: list[str] = []
    rest = text[delims.isa_length :].lstrip()
    if rest.startswith("GS"):
        gs = rest.split(delims.segment, 1)[0].split(delims.element)
    return _Envelope(
        isa05=isa[5],
        isa06=isa[6],
        isa07=isa[7],
        isa08=isa[8],
        isa15=isa[15],
        gs02=gs[2] if len(gs) > 2 else "",
        gs03=gs[3] if len(gs) > 3 else "",
        gs08=gs[8] if len(gs) > 8 else "",
    )


def build_999(
    envelope: _Envelope | None,
    groups: list[tuple[str, str, list[TransactionVerdict]]],
    findings: list[Finding],
    *,
    control_number: int = 1,
    now: dt.datetime | None = None,
) -> str:
    """A 005010X231A1 999 for ``groups`` of (GS06, GS08, transaction verdicts).

    Sender and receiver are the original ones swapped. Segments end with ``~`` and a newline
    so the text reads well in the message store. An unreadable envelope (``envelope`` None)
    still gets a 999 with ``AK9*R*0*0*0`` so every file has an answer; a real receiver would
    also send a TA1 for it.
    """
    now = now or dt.datetime.now(dt.UTC)
    env = envelope or _Envelope("ZZ", "UNKNOWN", "ZZ", "UNKNOWN", "P", "UNKNOWN", "UNKNOWN", "")
    control = f"{control_number:09d}"
    segs: list[str] = [
        "*".join(
            [
                "ISA",
                "00",
                " " * 10,
                "00",
                " " * 10,
                env.isa07,
                env.isa08.ljust(15)[:15],
                env.isa05,
                env.isa06.ljust(15)[:15],
                now.strftime("%y%m%d"),
                now.strftime("%H%M"),
                "^",
                "00501",
                control,
                "0",
                env.isa15 or "P",
                ":",
            ]
        ),
        "*".join(
            [
                "GS",
                "FA",
                env.gs03 or env.isa08.strip(),
                env.gs02 or env.isa06.strip(),
                now.strftime("%Y%m%d"),
                now.strftime("%H%M"),
                str(control_number),
                "X",
                "005010X231A1",
            ]
        ),
    ]
    by_tx: dict[str | None, list[Finding]] = {}
    for f in findings:
        if f.source == "pyx12" and f.segment not in ("ISA", "GS", "SE", ""):
            by_tx.setdefault(f.transaction_control, []).append(f)
    if not groups:
        groups = [("0", "005010X221A1", [])]
    st_index = 0
    for gs06, gs08_seen, verdicts in groups:
        gs08 = gs08_seen or env.gs08  # an unreadable transaction does not carry GS08
        st_index += 1
        body: list[str] = [f"ST*999*{st_index:04d}*005010X231A1", f"AK1*HP*{gs06}*{gs08}"]
        for verdict in verdicts:
            body.append(f"AK2*835*{verdict.control}*{gs08}" if gs08 else f"AK2*835*{verdict.control}")
            seen: set[tuple[Any, ...]] = set()
            for f in by_tx.get(verdict.control, []):
                ik3 = f"IK3*{f.segment}*{f.position or 0}*{f.loop or ''}".rstrip("*")
                if f.element is None:
                    code = f.code if f.code in _IK3_CODES else "8"
                    key: tuple[Any, ...] = (f.segment, f.position, code)
                    if key not in seen:
                        seen.add(key)
                        body.append(f"{ik3}*{code}")
                else:
                    key = (f.segment, f.position, "8")
                    if key not in seen:
                        seen.add(key)
                        body.append(f"{ik3}*8")
                    if f.code in _IK4_CODES:
                        body.append(f"IK4*{f.element}*{f.element_ref or ''}*{f.code}")
            body.append("*".join(["IK5", verdict.ack_code, *verdict.codes[:5]]))
        accepted = sum(1 for v in verdicts if v.ack_code != "R")
        if not verdicts or accepted == 0:
            ak901 = "R"
        elif accepted < len(verdicts):
            ak901 = "P"
        elif any(v.ack_code == "E" for v in verdicts):
            ak901 = "E"
        else:
            ak901 = "A"
        body.append(f"AK9*{ak901}*{len(verdicts)}*{len(verdicts)}*{accepted}")
        body.append(f"SE*{len(body) + 1}*{st_index:04d}")
        segs.extend(body)
    segs.append(f"GE*{st_index}*{control_number}")
    segs.append(f"IEA*1*{control}")
    return "~\n".join(segs) + "~\n"


# --------------------------------------------------------------------------- the decision


def _verdict_for(item: Any, findings: list[Finding]) -> tuple[str, str, str] | None:
    """Findings of one streamed transaction (appended); its (ST02, GS06, GS08), or None for an
    envelope fault that is not a transaction (no GE/IEA: truncated)."""
    if isinstance(item, X12Error):
        if item.transaction_control is None:
            findings.append(Finding("IEA", "ENVELOPE", item.reason, source="reader", touches_money=True))
            return None
        findings.append(
            Finding("ST", "UNREADABLE", item.reason, source="reader", transaction_control=item.transaction_control,
                    touches_money=True)
        )
        return item.transaction_control, item.group_control or "", ""
    control = item.transaction_control
    for note in item.findings:
        findings.append(Finding("", "FINDING", note, source="reader", transaction_control=control))
    for error in item.balance_errors:
        findings.append(
            Finding("BPR" if error.startswith("transaction") else "CLP", "UNBALANCED", error, source="balance",
                    transaction_control=control, touches_money=True)
        )
    return control, item.group_control, item.version


def validate_file(
    path: Path | str,
    *,
    strict: bool = False,
    control_number: int = 1,
    now: dt.datetime | None = None,
) -> ValidationResult:
    """Validate an 835 file: pyx12 TR3 syntax plus carefabric's money checks, and a 999.

    ``accepted`` is true when every transaction is readable and balanced and no finding touches
    money; with ``strict`` any finding at all rejects. A 999 is always produced (``ack_999``).
    """
    path = Path(path)
    findings: list[Finding] = []
    groups: dict[str, tuple[str, list[TransactionVerdict]]] = {}
    file_notes: list[str] = []
    envelope_ok = True
    verdicts: list[TransactionVerdict] = []
    # Streamed: one transaction in memory at a time, only its findings and verdict are kept.
    try:
        for item in iter_transactions(path, file_findings=file_notes):
            identity = _verdict_for(item, findings)
            if identity is None:
                envelope_ok = False
                continue
            control, gs06, gs08 = identity
            record = TransactionVerdict(control=control, ack_code="A")
            verdicts.append(record)
            group = groups.setdefault(gs06, (gs08, []))
            if gs08 and not group[0]:
                groups[gs06] = (gs08, group[1])
            group[1].append(record)
    except X12Error as exc:
        envelope_ok = False
        findings.append(Finding("ISA", "ENVELOPE", exc.reason, source="reader", touches_money=True))
    for note in file_notes:
        findings.append(Finding("", "FINDING", note, source="reader"))

    pyx12_valid: bool | None = None
    if envelope_ok:
        pyx12_valid, pyx12_findings = run_pyx12(path)
        findings.extend(pyx12_findings)

    by_control: dict[str | None, list[Finding]] = {}
    for finding in findings:
        by_control.setdefault(finding.transaction_control, []).append(finding)
    for verdict in verdicts:
        mine = by_control.get(verdict.control, [])
        codes = sorted({f.code for f in mine if f.source == "pyx12" and f.segment == "SE"})
        if any(f.source == "pyx12" and f.segment != "SE" for f in mine):
            codes.append("5")  # one or more segments in error
        if any(f.touches_money for f in mine) or (strict and mine):
            verdict.ack_code = "R"
            if "5" not in codes:
                codes.append("5")
        elif mine:
            verdict.ack_code = "E"
        verdict.codes = sorted(set(codes))

    file_level = [f for f in findings if f.transaction_control is None]
    accepted = (
        envelope_ok
        and bool(verdicts)
        and all(v.ack_code != "R" for v in verdicts)
        and not any(f.touches_money for f in file_level)
        and not (strict and file_level)
    )
    ack = build_999(
        _read_envelope(path),
        [(gs06, gs08, vs) for gs06, (gs08, vs) in groups.items()],
        findings,
        control_number=control_number,
        now=now,
    )
    return ValidationResult(
        accepted=accepted, findings=findings, ack_999=ack, transactions=verdicts, pyx12_valid=pyx12_valid
    )
