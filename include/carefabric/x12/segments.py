"""Segments of an 835 transaction set (ST..SE) into a ``Remittance``, one segment at a time.

The state of a transaction being read (``TxState``) and one handler per segment that carries
money or identity (BPR, TRN, N1, CLP, CAS, SVC, PLB, ...). Every other segment an 835 may hold
(``SEGMENTS_835``: 4010 and 5010) is counted for SE01 and passed over; a segment that is not
part of an 835 at all, a second BPR or TRN, or a claim after the PLB summary cannot be placed
and makes its transaction unreadable (``Bad``), never silently skipped.

Messages name element positions and segment numbers, never element values (they may hold PHI).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from carefabric import phi
from carefabric.canonical import Adjustment, ProviderAdjustment, RemitClaim, RemitServiceLine, Remittance
from carefabric.x12.balance import check_claim, check_transaction
from carefabric.x12.errors import X12Error

# Every segment id of the 835 (005010X221A1 and 004010X091A1) between ST and SE.
SEGMENTS_835 = frozenset(
    {"BPR", "TRN", "CUR", "REF", "DTM", "N1", "N2", "N3", "N4", "PER", "RDM", "LX", "TS3", "TS2", "CLP",
     "CAS", "NM1", "MIA", "MOA", "AMT", "QTY", "SVC", "LQ", "PLB"}
)


# The most elements each of those segments can have (X12 segment definitions; 4010 and 5010). A
# segment with more is two segments run together (a terminator lost or changed): the second one
# would otherwise vanish inside the first one's last element.
MAX_ELEMENTS = {
    "BPR": 21, "TRN": 4, "CUR": 21, "REF": 4, "DTM": 6, "N1": 6, "N2": 2, "N3": 2, "N4": 7, "PER": 9, "RDM": 3,
    "LX": 1, "TS3": 24, "TS2": 19, "CLP": 14, "CAS": 19, "NM1": 12, "MIA": 24, "MOA": 9, "AMT": 3, "QTY": 4,
    "SVC": 7, "LQ": 2, "PLB": 14,
}


_MAX_ELEMENTS = {sid: n + 1 for sid, n in MAX_ELEMENTS.items()}  # counting the segment id


class Bad(Exception):
    """A segment that makes its transaction unreadable (internal; becomes an X12Error value)."""


# --------------------------------------------------------------------------- value helpers


_MAX_ADJUSTED = 15  # no 835 amount reaches 10^15 dollars; beyond it an exponent or a corrupted field


def _amount(text: str, label: str) -> Decimal:
    """Decimal from the element text; ``Bad`` when it is not a number, NaN, Infinity, or 10^15 or more.

    X12 type R is digits with an optional leading minus and decimal point. ``Decimal()`` also
    takes an exponent, ``+``, ``_`` and surrounding spaces; those are read at their numeric value
    rather than refused, because a strict character check costs ~8% of the reader's speed and
    the value is what the balancing rules judge. The magnitude bound keeps an exponent such as
    ``1E+400`` from ever reaching integer cents. ``label`` is a constant (``CLP04``); callers add
    the claim or segment when it fails, so the happy path formats no strings. The reason never
    quotes the value (an element may hold PHI)."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise Bad(f"{label} is not a decimal amount (X12 type R: digits, optional leading '-' and '.')") from None
    if value.is_finite() and value.adjusted() < _MAX_ADJUSTED:
        return value
    raise Bad(f"{label} is not a finite amount below 10^{_MAX_ADJUSTED}")


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


def get(elements: list[str], index: int) -> str | None:
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
    last, first, middle = (get(elements, i) for i in (3, 4, 5))
    given = " ".join(p for p in (first, middle) if p)
    if last and given:
        return f"{last}, {given}"
    return last or given or None


# --------------------------------------------------------------------------- transaction state


@dataclass(slots=True)
class TxState:
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


def _cas(tx: TxState, e: list[str], position: int) -> None:
    target = tx.line.adjustments if tx.line is not None else tx.claim.adjustments if tx.claim else None
    if target is None:
        raise Bad(f"segment {position} CAS outside a claim (before any CLP)")
    group = get(e, 1)
    if group is None:
        raise Bad(f"segment {position} CAS without CAS01 group code")
    try:
        found = False
        n = len(e)
        for i in range(2, min(n, 20), 3):  # up to six reason/amount/quantity triplets
            reason = e[i]
            amount_text = e[i + 1] if n > i + 1 else ""
            if not reason and not amount_text:
                continue
            if not reason or not amount_text:
                raise Bad(f"{_CAS_LABELS[i]}/{_CAS_LABELS[i + 1]}: a triplet needs both reason and amount")
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
            raise Bad(f"has {n - 1} elements, a CAS holds at most 19 (six triplets)")
        if not found:
            raise Bad("has no reason/amount triplet")
    except Bad as bad:
        claim_id = tx.claim.patient_control_number if tx.claim else "?"
        raise Bad(f"claim {claim_id} segment {position} CAS {bad}") from None


def _bpr(tx: TxState, e: list[str], position: int) -> None:
    missing = [f"BPR{i:02d}" for i in range(1, 5) if len(e) <= i or not e[i]]
    if missing:
        raise Bad(
            f"segment {position} BPR has {len(e) - 1} elements and lacks {', '.join(missing)} "
            "(BPR01-BPR04 handling, amount, credit/debit, method are required)"
        )
    if e[3] not in ("C", "D"):
        raise Bad(f"segment {position} BPR03 is neither C (credit) nor D (debit)")
    if tx.bpr_seen:
        raise Bad(f"segment {position} is a second BPR in one transaction (one payment per ST..SE)")
    tx.bpr_seen = True
    try:
        tx.payment_amount = _amount(e[2], "BPR02")
    except Bad as bad:
        raise Bad(f"segment {position} {bad}") from None
    tx.credit_debit = e[3]
    tx.payment_method = e[4]
    date_text = get(e, 16)
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


def _identifier(value: str | None) -> str | None:
    """A payer's reference kept only when shaped like one (a shifted field may hold a name or SSN)."""
    return value if value and phi.code(value) == value else None


def _clp(tx: TxState, e: list[str], position: int) -> None:
    tx.close_claim()
    if tx.plb:
        raise Bad(f"segment {position} CLP after the PLB summary (claims come before provider adjustments)")
    if len(e) < 5 or not e[1] or not e[2] or not e[3] or not e[4]:
        missing = [f"CLP{i:02d}" for i in range(1, 5) if len(e) <= i or not e[i]]
        raise Bad(f"segment {position} CLP lacks {', '.join(missing)}")
    if not (e[2].isdigit() and len(e[2]) <= 2):
        raise Bad(f"segment {position} CLP02 claim status is not a status code")
    try:
        tx.claim = RemitClaim(
            patient_control_number=e[1],
            status=e[2],
            charge=_amount(e[3], "CLP03"),
            paid=_amount(e[4], "CLP04"),
            patient_responsibility=_optional_amount(e, 5, "CLP05"),
            payer_claim_control=_identifier(get(e, 7)),
        )
    except Bad as bad:
        raise Bad(f"claim {e[1]} {bad}") from None
    tx.claims.append(tx.claim)


def _svc(tx: TxState, e: list[str], position: int, component: str) -> None:
    if tx.claim is None:
        raise Bad(f"segment {position} SVC outside a claim (before any CLP)")
    claim_id = tx.claim.patient_control_number
    if len(e) < 4 or not e[1] or not e[2] or not e[3]:
        missing = [f"SVC{i:02d}" for i in range(1, 4) if len(e) <= i or not e[i]]
        raise Bad(f"claim {claim_id} segment {position} SVC lacks {', '.join(missing)}")
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
    except Bad as bad:
        raise Bad(f"claim {claim_id} line {index} {bad}") from None
    tx.claim.lines.append(tx.line)


def _plb(tx: TxState, e: list[str], position: int, component: str) -> None:
    tx.close_claim()
    if len(e) < 5:
        raise Bad(f"segment {position} PLB has {len(e) - 1} elements; needs PLB01-PLB04")
    provider = e[1]
    fiscal_text = e[2]
    fiscal = _date(fiscal_text)
    if fiscal is None:
        tx.findings.append(f"segment {position} PLB02 fiscal period date {fiscal_text!r} is not a valid date")
    if len(e) > 15:
        raise Bad(f"segment {position} PLB has {len(e) - 1} elements, at most 14 (six adjustments)")
    for i in range(3, len(e), 2):
        composite = e[i]
        amount_text = e[i + 1] if len(e) > i + 1 else ""
        if not composite and not amount_text:
            continue
        if not composite or not amount_text:
            raise Bad(f"segment {position} PLB{i:02d}/PLB{i + 1:02d}: adjustment needs reason and amount")
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


def apply_segment(tx: TxState, sid: str, e: list[str], position: int, component: str) -> None:
    """One segment inside ST..SE (not ST/SE themselves); ``Bad`` when it cannot be placed."""
    if len(e) > _MAX_ELEMENTS.get(sid, 99):
        raise Bad(f"segment {position} {sid} has {len(e) - 1} elements, at most {_MAX_ELEMENTS[sid] - 1} "
                  "(two segments run together: a segment terminator is missing or changed)")
    if sid == "CAS":
        _cas(tx, e, position)
    elif sid == "SVC":
        _svc(tx, e, position, component)
    elif sid == "DTM":
        if tx.line is not None and len(e) > 2 and e[1] in ("472", "150") and tx.line.service_date is None:
            tx.line.service_date = _date(e[2])
            if tx.line.service_date is None:  # a service date is PHI: the finding does not quote it
                tx.findings.append(f"segment {position} DTM02 (DTM01 {e[1]}) service date is not a valid date")
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
                tx.claim.member_id_phi = get(e, 9) or tx.claim.member_id_phi
            elif e[1] == "IL" and tx.claim.member_id_phi is None:
                tx.claim.member_id_phi = get(e, 9)
    elif sid in ("BPR", "TRN", "N1"):
        _header(tx, sid, e, position)
    elif sid == "PLB":
        _plb(tx, e, position, component)
    elif sid not in SEGMENTS_835:
        raise Bad(f"segment {position} {sid} is not a segment of an 835 transaction set")
    # Any other 835 segment (LX, TS3, TS2, MIA, MOA, QTY, LQ, PER, N3, N4, RDM ...) carries
    # nothing the canonical record holds; it is counted for SE01 and passed over.


def _header(tx: TxState, sid: str, e: list[str], position: int) -> None:
    """BPR, TRN and N1: the payment, its trace and the parties (once per transaction)."""
    if sid == "BPR":
        _bpr(tx, e, position)
    elif sid == "TRN":
        if tx.trace_number is not None:  # nothing but the header uses TRN in an 835
            raise Bad(f"segment {position} is a second TRN in one transaction (one trace per payment)")
        if len(e) < 3 or not e[2]:
            raise Bad(f"segment {position} TRN lacks TRN02 (check or EFT trace number)")
        tx.trace_number = e[2]
        tx.trace_originator = get(e, 3)
    elif tx.claim is None and len(e) > 1:  # N1 of the header (payer, payee)
        tx.header_loop = e[1]
        if e[1] == "PR":
            tx.payer_name = get(e, 2)
            tx.payer_n1_id = get(e, 4)
        elif e[1] == "PE":
            tx.payee_name = get(e, 2)
            if get(e, 3) == "XX":
                tx.payee_npi = get(e, 4)
            elif get(e, 3) == "FI":
                tx.payee_tax_id = get(e, 4)
