"""Streaming X12 835 reader: bytes in, one ``Remittance`` per transaction set (ST..SE) out.

Why a hand-written reader and not pyx12: pyx12 walks every segment through its TR3 map tree
and keeps an error tree for the whole file; ``X12ContextReader`` reads roughly 200 (real files,
with error handling) to 1,000 (``python -m carefabric.x12.bench``) claims per second, so a 50 MB
Medicare file takes minutes to the better part of an hour. The money only needs positional reads of a dozen segment types, which a flat state
machine does two orders of magnitude faster in bounded memory. pyx12 stays where it is good:
full TR3 syntax validation and the 999 (``carefabric.x12.validate``), run on normal-sized files.
The tests cross-check this reader against pyx12 on every real sample.

Memory: the file is read in ``chunk_size`` byte chunks and split on the segment terminator
(a single byte, taken from the ISA), so only the current chunk and the transaction being built
are held. A transaction is yielded whole (it is one ``Remittance``), so one huge ST..SE is held
whole too; payers split big remittances into many STs (one per check or EFT), which stream.

Errors: a file that is not a readable interchange (empty, no ISA, a broken ISA, no segment
terminator) raises ``X12Error``. A malformed segment inside a transaction (an invalid segment id
such as ``CAS_CO``, a BPR without its amount, an amount that is not a number, a transaction cut
off before its SE) makes *that transaction* unreadable: the reader skips to its SE and yields an
``X12Error`` value carrying ISA13/GS06/ST02 and a one-line reason, then goes on with the next
transaction. Deviations that do not touch money (impossible dates, SE count mismatch, bytes that
are not UTF-8, SVC01 written with a foreign component separator) become ``findings`` on the
``Remittance`` (or on the file, outside any transaction). Callers that want lists use
:func:`read_file`. "segment N" in messages counts segments from the start of the file (ISA = 1),
so an operator can find it with any editor that shows one segment per line.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import BinaryIO

from carefabric.canonical import Adjustment, ProviderAdjustment, RemitClaim, RemitServiceLine, Remittance
from carefabric.x12.balance import check_claim, check_transaction
from carefabric.x12.envelope import ISA_LENGTH, Delimiters, detect_delimiters, skip_preamble
from carefabric.x12.errors import X12Error

CHUNK_SIZE = 1 << 16
MAX_SEGMENT_BYTES = 1 << 20  # no real segment comes near this; beyond it the terminator is wrong
_SEG_ID = re.compile(r"[A-Z][A-Z0-9]{1,2}\Z")
_ENVELOPE = frozenset({"ISA", "IEA", "GS", "GE"})


class _Bad(Exception):
    """A segment that makes its transaction unreadable (internal; becomes an X12Error value)."""


# --------------------------------------------------------------------------- segment stream


class SegmentStream:
    """Split a binary X12 stream into segment strings, one chunk at a time.

    ``notes`` collects findings raised while splitting (non-UTF-8 bytes, a last segment without
    terminator); the parser drains it after each segment so each finding lands on the
    transaction that holds the segment. ``position`` is the 1-based number of the last segment
    yielded, counted over the whole file.
    """

    def __init__(self, stream: BinaryIO, *, chunk_size: int = CHUNK_SIZE) -> None:
        self._stream = stream
        self._chunk_size = chunk_size
        head = stream.read(max(chunk_size, ISA_LENGTH + 64))
        while head and len(head) < ISA_LENGTH + 64:  # a short first read from a pipe
            more = stream.read(chunk_size)
            if not more:
                break
            head += more
        self._head = head[skip_preamble(head) :]
        self.delimiters: Delimiters = detect_delimiters(self._head)
        self.notes: list[str] = []
        self.position = 0

    def _decode_each(self, block: bytes) -> tuple[list[str], list[str | None]]:
        """Slow path for a block that is not UTF-8: decode segment by segment, latin-1 on failure.

        Returns the segments and, in parallel, a note for each one that needed latin-1.
        """
        parts: list[str] = []
        notes: list[str | None] = []
        for raw in block.split(self.delimiters.segment_byte):
            try:
                parts.append(raw.decode("utf-8"))
                notes.append(None)
            except UnicodeDecodeError as exc:
                parts.append(raw.decode("latin-1"))
                offset = exc.start - (len(raw) - len(raw.lstrip(b"\r\n")))
                notes.append(
                    f"byte 0x{raw[exc.start]:02x} at offset {offset} is not UTF-8; segment decoded as latin-1"
                )
        return parts, notes

    def __iter__(self) -> Iterator[str]:
        term_byte = self.delimiters.segment_byte
        term = self.delimiters.segment
        buf = self._head
        self._head = b""
        while True:
            cut = buf.rfind(term_byte)
            if cut >= 0:
                block, buf = buf[:cut], buf[cut + 1 :]
                notes: list[str | None] | None = None
                try:
                    parts = block.decode("utf-8").split(term)
                except UnicodeDecodeError:
                    parts, notes = self._decode_each(block)
                for index, part in enumerate(parts):
                    segment = part.strip("\r\n")
                    if not segment:  # blank between terminators (e.g. "~\n~"): not a segment
                        continue
                    self.position += 1
                    if notes is not None and notes[index]:
                        self.notes.append(f"segment {self.position}: {notes[index]}")
                    yield segment
            elif len(buf) > MAX_SEGMENT_BYTES:
                raise X12Error(
                    f"no segment terminator {term!r} within {MAX_SEGMENT_BYTES} bytes after segment "
                    f"{self.position}: wrong terminator or not X12"
                )
            chunk = self._stream.read(self._chunk_size)
            if not chunk:
                break
            buf += chunk
        tail = buf.strip(b" \r\n\t\x00\x1a")
        if tail:
            self.position += 1
            self.notes.append(f"segment {self.position}: last segment has no terminator {term!r}")
            parts, notes = self._decode_each(tail)
            if notes[0]:
                self.notes.append(f"segment {self.position}: {notes[0]}")
            yield parts[0]


# --------------------------------------------------------------------------- value helpers


def _amount(text: str, label: str) -> Decimal:
    """Decimal from the element text. ``label`` is a constant (``CLP04``); callers add the
    claim or segment to the message when it fails, so the happy path formats no strings."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise _Bad(f"{label} {text[:15]!r} is not a decimal amount") from None
    if not value.is_finite():
        raise _Bad(f"{label} {text!r} is not a finite amount")
    return value


def _optional_amount(elements: list[str], index: int, label: str) -> Decimal | None:
    if len(elements) > index and elements[index]:
        return _amount(elements[index], label)
    return None


def _amount_at(text: str, where: str) -> Decimal:
    """``_amount`` for rare segments (PLB, AMT) where the label is formatted up front."""
    return _amount(text, where)


_CAS_LABELS = {i: f"CAS{i:02d}" for i in range(1, 21)}


def _date(text: str) -> dt.date | None:
    """CCYYMMDD to a date, None when it is not a real calendar date (20002316)."""
    if len(text) != 8 or not text.isdigit():
        return None
    try:
        return dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return None


def _get(elements: list[str], index: int) -> str | None:
    if len(elements) > index and elements[index]:
        return elements[index]
    return None


def normalize_composite(value: str, component: str) -> tuple[str, str | None]:
    """A composite (SVC01, PLB03) with its components joined by ``:`` whatever the file uses.

    Returns the normalized text and the foreign separator when the sender used one other than
    ISA16 (``HC>55669`` while ISA16 is ``:``): a 2-character qualifier followed by a
    non-alphanumeric character that is not ISA16 is taken as the sender's real separator.
    """
    if component in value:
        return (value if component == ":" else value.replace(component, ":")), None
    if len(value) > 2 and value[:2].isalnum() and not value[2].isalnum() and value[2] not in " -.":
        foreign = value[2]
        return value.replace(foreign, ":"), foreign
    return value, None


def _person_name(elements: list[str]) -> str | None:
    last, first, middle = (_get(elements, i) for i in (3, 4, 5))
    given = " ".join(p for p in (first, middle) if p)
    if last and given:
        return f"{last}, {given}"
    return last or given or None


# --------------------------------------------------------------------------- transaction state


@dataclass(slots=True)
class _Tx:
    """A transaction set being read (fields of ``Remittance`` arrive segment by segment)."""

    isa13: str
    gs06: str
    st02: str
    version: str
    sender: str
    start_position: int
    segments: int = 1  # ST counted
    error: str | None = None
    error_position: int | None = None
    bpr_seen: bool = False
    payment_amount: Decimal = Decimal(0)
    credit_debit: str = ""
    payment_method: str | None = None
    payment_date: dt.date | None = None
    trace_number: str | None = None
    trace_originator: str | None = None
    payer_name: str | None = None
    payer_n1_id: str | None = None
    payer_ref_2u: str | None = None
    payee_name: str | None = None
    payee_npi: str | None = None
    payee_tax_id: str | None = None
    header_loop: str | None = None  # "PR" or "PE" after N1, for REF*2U
    claims: list[RemitClaim] = field(default_factory=list)
    plb: list[ProviderAdjustment] = field(default_factory=list)
    balance_errors: list[str] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)
    claim: RemitClaim | None = None
    line: RemitServiceLine | None = None

    def close_claim(self) -> None:
        if self.claim is not None:
            self.balance_errors.extend(check_claim(self.claim))
        self.claim = None
        self.line = None

    def fail(self, reason: str, position: int) -> None:
        if self.error is None:
            self.error = reason
            self.error_position = position

    def to_error(self, reason: str | None = None) -> X12Error:
        return X12Error(
            f"transaction ST02={self.st02} unreadable: {reason or self.error}",
            interchange_control=self.isa13,
            group_control=self.gs06,
            transaction_control=self.st02,
            segment_position=self.error_position,
        )

    def to_remittance(self) -> Remittance:
        remittance = Remittance(
            interchange_control=self.isa13,
            group_control=self.gs06,
            transaction_control=self.st02,
            version=self.version,
            sender_id=self.sender,
            payment_amount=self.payment_amount,
            credit_debit=self.credit_debit,
            payment_method=self.payment_method,
            payment_date=self.payment_date,
            trace_number=self.trace_number or "",
            trace_originator=self.trace_originator,
            payer_name=self.payer_name,
            payer_id=self.payer_n1_id or self.payer_ref_2u or self.trace_originator,
            payee_name=self.payee_name,
            payee_npi=self.payee_npi,
            payee_tax_id=self.payee_tax_id,
            claims=self.claims,
            provider_adjustments=self.plb,
            balance_errors=self.balance_errors,
            findings=self.findings,
        )
        total = check_transaction(remittance)
        if total:
            remittance.balance_errors.append(total)
        return remittance


def _cas(tx: _Tx, e: list[str], position: int) -> None:
    target = tx.line.adjustments if tx.line is not None else tx.claim.adjustments if tx.claim else None
    if target is None:
        raise _Bad(f"segment {position} CAS outside a claim (before any CLP)")
    group = _get(e, 1)
    if group is None:
        raise _Bad(f"segment {position} CAS without CAS01 group code")
    try:
        found = False
        n = len(e)
        for i in range(2, min(n, 20), 3):  # up to six reason/amount/quantity triplets
            reason = e[i]
            amount_text = e[i + 1] if n > i + 1 else ""
            if not reason and not amount_text:
                continue
            if not reason or not amount_text:
                raise _Bad(f"{_CAS_LABELS[i]}/{_CAS_LABELS[i + 1]}: a triplet needs both reason and amount")
            quantity = e[i + 2] if n > i + 2 and e[i + 2] else None
            target.append(
                Adjustment(
                    group,
                    reason,
                    _amount(amount_text, _CAS_LABELS[i + 1]),
                    _amount(quantity, _CAS_LABELS[i + 2]) if quantity else None,
                )
            )
            found = True
        if n > 20:
            raise _Bad(f"has {n - 1} elements, a CAS holds at most 19 (six triplets)")
        if not found:
            raise _Bad("has no reason/amount triplet")
    except _Bad as bad:
        claim_id = tx.claim.patient_control_number if tx.claim else "?"
        raise _Bad(f"claim {claim_id} segment {position} CAS {bad}") from None


def _bpr(tx: _Tx, e: list[str], position: int) -> None:
    missing = [f"BPR{i:02d}" for i in range(1, 5) if len(e) <= i or not e[i]]
    if missing:
        raise _Bad(
            f"segment {position} BPR has {len(e) - 1} elements and lacks {', '.join(missing)} "
            "(BPR01-BPR04 handling, amount, credit/debit, method are required)"
        )
    if e[3] not in ("C", "D"):
        raise _Bad(f"segment {position} BPR03 {e[3]!r} is neither C (credit) nor D (debit)")
    tx.bpr_seen = True
    try:
        tx.payment_amount = _amount(e[2], "BPR02")
    except _Bad as bad:
        raise _Bad(f"segment {position} {bad}") from None
    tx.credit_debit = e[3]
    tx.payment_method = e[4]
    date_text = _get(e, 16)
    if date_text is None:
        hint = ""
        last = e[-1]
        if len(e) < 17 and _date(last) is not None:
            hint = f"; BPR{len(e) - 1:02d} {last!r} looks like the date, an element is probably missing"
        tx.findings.append(f"BPR16 payment date missing (BPR has {len(e) - 1} elements){hint}")
    else:
        tx.payment_date = _date(date_text)
        if tx.payment_date is None:
            tx.findings.append(f"BPR16 payment date {date_text!r} is not a valid CCYYMMDD date; left empty")


def _clp(tx: _Tx, e: list[str], position: int) -> None:
    tx.close_claim()
    if len(e) < 5 or not e[1] or not e[2] or not e[3] or not e[4]:
        missing = [f"CLP{i:02d}" for i in range(1, 5) if len(e) <= i or not e[i]]
        raise _Bad(f"segment {position} CLP lacks {', '.join(missing)}")
    try:
        tx.claim = RemitClaim(
            patient_control_number=e[1],
            status=e[2],
            charge=_amount(e[3], "CLP03"),
            paid=_amount(e[4], "CLP04"),
            patient_responsibility=_optional_amount(e, 5, "CLP05"),
            payer_claim_control=_get(e, 7),
        )
    except _Bad as bad:
        raise _Bad(f"claim {e[1]} {bad}") from None
    tx.claims.append(tx.claim)


def _svc(tx: _Tx, e: list[str], position: int, component: str) -> None:
    if tx.claim is None:
        raise _Bad(f"segment {position} SVC outside a claim (before any CLP)")
    claim_id = tx.claim.patient_control_number
    if len(e) < 4 or not e[1] or not e[2] or not e[3]:
        missing = [f"SVC{i:02d}" for i in range(1, 4) if len(e) <= i or not e[i]]
        raise _Bad(f"claim {claim_id} segment {position} SVC lacks {', '.join(missing)}")
    procedure, foreign = normalize_composite(e[1], component)
    index = len(tx.claim.lines) + 1
    if foreign:
        tx.findings.append(
            f"claim {claim_id} line {index}: SVC01 written with component separator {foreign!r} although "
            f"ISA16 is {component!r}; read as {procedure!r}"
        )
    try:
        tx.line = RemitServiceLine(
            procedure=procedure,
            charge=_amount(e[2], "SVC02"),
            paid=_amount(e[3], "SVC03"),
            units=_optional_amount(e, 5, "SVC05"),
        )
    except _Bad as bad:
        raise _Bad(f"claim {claim_id} line {index} {bad}") from None
    tx.claim.lines.append(tx.line)


def _plb(tx: _Tx, e: list[str], position: int, component: str) -> None:
    tx.close_claim()
    if len(e) < 5:
        raise _Bad(f"segment {position} PLB has {len(e) - 1} elements; needs PLB01-PLB04")
    provider = e[1]
    fiscal_text = e[2]
    fiscal = _date(fiscal_text)
    if fiscal is None:
        tx.findings.append(f"segment {position} PLB02 fiscal period date {fiscal_text!r} is not a valid date")
    if len(e) > 15:
        raise _Bad(f"segment {position} PLB has {len(e) - 1} elements, at most 14 (six adjustments)")
    for i in range(3, len(e), 2):
        composite = e[i]
        amount_text = e[i + 1] if len(e) > i + 1 else ""
        if not composite and not amount_text:
            continue
        if not composite or not amount_text:
            raise _Bad(f"segment {position} PLB{i:02d}/PLB{i + 1:02d}: adjustment needs reason and amount")
        normalized, foreign = normalize_composite(composite, component)
        if foreign:
            tx.findings.append(
                f"segment {position} PLB{i:02d} written with component separator {foreign!r} although "
                f"ISA16 is {component!r}"
            )
        reason, _, reference = normalized.partition(":")
        tx.plb.append(
            ProviderAdjustment(
                provider_id=provider,
                fiscal_date=fiscal,
                reason=reason,
                reference=reference or None,
                amount=_amount_at(amount_text, f"segment {position} PLB{i + 1:02d}"),
            )
        )


def _segment(tx: _Tx, sid: str, e: list[str], position: int, component: str) -> None:
    """One segment inside ST..SE (not ST/SE themselves)."""
    if sid == "CAS":
        _cas(tx, e, position)
    elif sid == "SVC":
        _svc(tx, e, position, component)
    elif sid == "DTM":
        if tx.line is not None and len(e) > 2 and e[1] in ("472", "150") and tx.line.service_date is None:
            tx.line.service_date = _date(e[2])
            if tx.line.service_date is None:
                tx.findings.append(f"segment {position} DTM{e[1]} service date {e[2]!r} is not a valid date")
    elif sid == "CLP":
        _clp(tx, e, position)
    elif sid == "REF":
        if tx.line is not None:
            if len(e) > 2 and e[1] == "6R":
                tx.line.line_ref = e[2]
        elif tx.claim is None and len(e) > 2 and e[1] == "2U" and tx.header_loop == "PR":
            tx.payer_ref_2u = e[2]
    elif sid == "AMT":
        if tx.line is not None and len(e) > 2 and e[1] == "B6":
            tx.line.allowed = _amount_at(e[2], f"segment {position} AMT02")
    elif sid == "NM1":
        if tx.claim is not None and tx.line is None and len(e) > 1:
            if e[1] == "QC":
                tx.claim.patient_name_phi = _person_name(e)
                tx.claim.member_id_phi = _get(e, 9) or tx.claim.member_id_phi
            elif e[1] == "IL" and tx.claim.member_id_phi is None:
                tx.claim.member_id_phi = _get(e, 9)
    elif sid == "BPR":
        _bpr(tx, e, position)
    elif sid == "TRN":
        if tx.trace_number is None:  # the header TRN; nothing else in an 835 uses TRN
            if len(e) < 3 or not e[2]:
                raise _Bad(f"segment {position} TRN lacks TRN02 (check or EFT trace number)")
            tx.trace_number = e[2]
            tx.trace_originator = _get(e, 3)
    elif sid == "N1":
        if tx.claim is None and len(e) > 1:
            tx.header_loop = e[1]
            if e[1] == "PR":
                tx.payer_name = _get(e, 2)
                tx.payer_n1_id = _get(e, 4)
            elif e[1] == "PE":
                tx.payee_name = _get(e, 2)
                if _get(e, 3) == "XX":
                    tx.payee_npi = _get(e, 4)
                elif _get(e, 3) == "FI":
                    tx.payee_tax_id = _get(e, 4)
    elif sid == "PLB":
        _plb(tx, e, position, component)
    # Any other well-formed segment (LX, TS3, TS2, MIA, MOA, QTY, LQ, PER, N3, N4, RDM ...)
    # carries nothing the canonical record holds; it is counted for SE01 and passed over.


# --------------------------------------------------------------------------- the reader


def iter_transactions(
    source: BinaryIO | Path | str,
    *,
    file_findings: list[str] | None = None,
    chunk_size: int = CHUNK_SIZE,
) -> Iterator[Remittance | X12Error]:
    """Yield each 835 transaction set of ``source`` as a ``Remittance``, or as an ``X12Error`` value.

    ``source`` is a path or a binary stream (left open). The file is read in ``chunk_size``
    chunks; memory holds one transaction at a time. Raises ``X12Error`` when the file itself is
    unreadable (before anything is yielded: empty, no ISA, broken ISA; or later: no terminator).
    Yields an ``X12Error`` (not raised) for one unreadable transaction, with ISA13/GS06/ST02, and
    for envelope faults that make the file incomplete (no IEA: truncated). Findings outside any
    transaction (GE/IEA counts, stray segments) are appended to ``file_findings`` when given.
    """
    if isinstance(source, (str, Path)):
        with open(source, "rb") as stream:
            yield from iter_transactions(stream, file_findings=file_findings, chunk_size=chunk_size)
        return

    notes_out: list[str] = file_findings if file_findings is not None else []
    segments = SegmentStream(source, chunk_size=chunk_size)
    delims = segments.delimiters
    sep = delims.element
    component = delims.component
    valid_ids: set[str] = set()
    isa13: str | None = None
    isa06 = ""
    gs06: str | None = None
    gs08 = ""
    groups_in_isa = 0
    st_in_gs = 0
    tx: _Tx | None = None

    def envelope_error(reason: str, position: int) -> X12Error:
        return X12Error(reason, interchange_control=isa13, group_control=gs06, segment_position=position)

    for text in segments:
        position = segments.position
        if segments.notes:
            (tx.findings if tx is not None else notes_out).extend(segments.notes)
            segments.notes.clear()
        e = text.split(sep)
        sid = e[0]
        if sid not in valid_ids:
            if not _SEG_ID.match(sid):
                shown = sid[:8] + ("..." if len(sid) > 8 else "")  # never a whole segment: it may hold a name
                reason = (
                    f"segment {position} {shown!r} is not a valid X12 segment id (2-3 capital letters/digits)"
                )
                if tx is not None:
                    tx.segments += 1
                    tx.fail(reason, position)
                    continue
                notes_out.append(f"{reason}, outside any transaction; ignored")
                continue
            valid_ids.add(sid)

        if tx is not None:
            if sid == "SE":
                tx.segments += 1
                if tx.error is None:
                    se01 = _get(e, 1)
                    if se01 != str(tx.segments):
                        tx.findings.append(
                            f"SE01 says {se01} segments but transaction ST02={tx.st02} has {tx.segments}"
                        )
                    if _get(e, 2) != tx.st02:
                        tx.findings.append(f"SE02 {_get(e, 2)!r} does not match ST02 {tx.st02!r}")
                    tx.close_claim()
                    if not tx.bpr_seen:
                        tx.fail("no BPR segment (payment amount unknown)", position)
                    elif tx.trace_number is None:
                        tx.fail("no TRN segment (trace number unknown)", position)
                if segments.notes:
                    tx.findings.extend(segments.notes)
                    segments.notes.clear()
                yield tx.to_error() if tx.error is not None else tx.to_remittance()
                tx = None
                continue
            if sid in _ENVELOPE or sid == "ST":
                yield tx.to_error(f"no SE before segment {position} {sid} (transaction cut off)")
                tx = None
                # fall through: the envelope segment is handled below
            else:
                tx.segments += 1
                if tx.error is None:
                    try:
                        _segment(tx, sid, e, position, component)
                    except _Bad as bad:
                        tx.fail(str(bad), position)
                continue

        if sid == "ST":
            st_in_gs += 1
            st02 = _get(e, 2) or ""
            tx = _Tx(
                isa13=isa13 or "",
                gs06=gs06 or "",
                st02=st02,
                version=gs08,
                sender=isa06,
                start_position=position,
            )
            if isa13 is None or gs06 is None:
                tx.fail(f"segment {position} ST outside an ISA/GS envelope", position)
            elif _get(e, 1) != "835":
                tx.fail(f"ST01 {_get(e, 1)!r} is not an 835 transaction set", position)
            elif not st02:
                tx.fail("ST02 control number missing", position)
        elif sid == "ISA":
            if isa13 is not None:
                yield envelope_error(
                    f"no IEA for interchange {isa13} before the next ISA (segment {position})", position
                )
            if len(text) < 3 or text[3] != sep or len(e) != 17:
                raise X12Error(f"segment {position} ISA does not use the delimiters of the first ISA")
            isa13 = e[13]
            isa06 = e[6].strip()
            groups_in_isa = 0
            gs06 = None
        elif sid == "GS":
            if isa13 is None:
                raise X12Error(f"segment {position} GS outside an interchange (no ISA before it)")
            if gs06 is not None:
                yield envelope_error(
                    f"no GE for group {gs06} before the next GS (segment {position})", position
                )
            gs06 = _get(e, 6) or ""
            gs08 = _get(e, 8) or ""
            groups_in_isa += 1
            st_in_gs = 0
            if _get(e, 1) != "HP":
                notes_out.append(f"GS01 {_get(e, 1)!r} is not HP (health care claim payment/advice)")
        elif sid == "GE":
            if gs06 is None:
                notes_out.append(f"segment {position} GE without GS; ignored")
                continue
            if _get(e, 1) != str(st_in_gs):
                notes_out.append(f"GE01 says {_get(e, 1)} transactions but group {gs06} has {st_in_gs}")
            if _get(e, 2) != gs06:
                notes_out.append(f"GE02 {_get(e, 2)!r} does not match GS06 {gs06!r}")
            gs06 = None
        elif sid == "IEA":
            if isa13 is None:
                notes_out.append(f"segment {position} IEA without ISA; ignored")
                continue
            if gs06 is not None:
                yield envelope_error(f"no GE for group {gs06} before IEA (segment {position})", position)
                gs06 = None
            if _get(e, 1) != str(groups_in_isa):
                notes_out.append(
                    f"IEA01 says {_get(e, 1)} groups but interchange {isa13} has {groups_in_isa}"
                )
            if _get(e, 2) != isa13:
                notes_out.append(f"IEA02 {_get(e, 2)!r} does not match ISA13 {isa13!r}")
            isa13 = None
        else:
            notes_out.append(f"segment {position} {sid} outside any transaction; ignored")

    if segments.notes:
        notes_out.extend(segments.notes)
    end = segments.position
    if tx is not None:
        yield tx.to_error(f"file ends after segment {end} with no SE (truncated)")
    if gs06 is not None:
        yield envelope_error(f"file ends after segment {end} with no GE for group {gs06} (truncated)", end)
    if isa13 is not None:
        yield envelope_error(
            f"file ends after segment {end} with no IEA for interchange {isa13} (truncated)", end
        )


@dataclass(slots=True)
class FileResult:
    """Everything :func:`read_file` found in one file."""

    remittances: list[Remittance]
    errors: list[X12Error]
    findings: list[str]  # outside any transaction; a transaction's own are on its Remittance

    @property
    def ok(self) -> bool:
        """Every transaction readable and the envelope complete (balancing is separate)."""
        return not self.errors

    @property
    def balanced(self) -> bool:
        return self.ok and all(r.balanced for r in self.remittances)


def read_file(source: BinaryIO | Path | str, *, chunk_size: int = CHUNK_SIZE) -> FileResult:
    """Read a whole file into lists (for files of normal size; stream big ones with iter_transactions).

    Raises ``X12Error`` when the file is not a readable interchange at all.
    """
    findings: list[str] = []
    remittances: list[Remittance] = []
    errors: list[X12Error] = []
    for item in iter_transactions(source, file_findings=findings, chunk_size=chunk_size):
        if isinstance(item, X12Error):
            errors.append(item)
        else:
            remittances.append(item)
    return FileResult(remittances=remittances, errors=errors, findings=findings)
