"""X12 835 (005010X221A1) writer for the sandbox payers.

One file holds one interchange with one functional group and one transaction set (one payer,
one payee facility), the way most clearinghouses deliver payee-split remittances:

- ``ISA`` is fixed width (106 characters); ``*`` separates elements, ``:`` components (ISA16),
  ``^`` repetitions (ISA11); every segment ends with ``~`` followed by a newline;
- ISA13, GS06 and ST02 come from one per-file control counter, so two files never share all
  three unless one is a byte copy of the other (the injected duplicate);
- ``BPR`` BPR02 is the payment, BPR16 the business date; ``TRN`` TRN02 a unique trace, TRN03 the
  payer's 10-character id; ``N1*PR`` names the payer with ``XV`` and the same id (also in
  ``REF*2U``); ``N1*PE`` names the facility with ``XX`` and its NPI;
- loop 2100 ``CLP`` (CLP01 = the billing claim id), claim-level ``CAS``, ``NM1*QC``, ``DTM*232``;
  loop 2110 ``SVC`` (``HC:<cpt>`` or ``NU:<revenue code>``), ``DTM*472``, line ``CAS``,
  ``REF*6R`` (the EHR transaction id of the line), ``AMT*B6`` allowed;
- ``PLB`` with the facility NPI, the fiscal period end and reason/amount pairs; a reason with a
  reference is written as the composite ``WO:CLM-F1-0000012`` (PLB03-1 reason, PLB03-2 the claim
  the adjustment is about: the patient control number of a recouped or forwarded claim).

The writer does not invent money: the generator decides every amount and the records here
carry them as integer cents. ``RemitTransaction.bpr_error_cents`` is the only way to break the
transaction balance (the injected unbalanced file).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sandbox.reference import Facility, Payer

RECEIVER_ID = "CAREFABRIC"
TERMINATOR = "~\n"


@dataclass(slots=True)
class Cas:
    """One CAS reason/amount triplet (group CO, PR, OA ...)."""

    group: str
    reason: str
    amount_cents: int


@dataclass(slots=True)
class RemitLine:
    """Loop 2110. Balances when ``charge - sum(adjustments) == paid``."""

    procedure: str  # SVC01 with ':' components, e.g. "HC:85025" or "NU:0120"
    revenue_code: str
    charge_cents: int
    paid_cents: int
    units: int
    service_date: dt.date
    line_ref: str
    allowed_cents: int | None
    adjustments: list[Cas] = field(default_factory=list)


@dataclass(slots=True)
class RemitClaim:
    """Loop 2100. Balances when ``charge - sum(claim and line adjustments) == paid``."""

    claim_id: str
    status: str  # CLP02
    charge_cents: int
    paid_cents: int
    patient_resp_cents: int
    filing_indicator: str
    payer_claim_control: str
    patient_family: str
    patient_given: str
    member_id: str
    statement_date: dt.date
    encounter_id: str
    facility: str
    patient_token: str
    adjustments: list[Cas] = field(default_factory=list)
    lines: list[RemitLine] = field(default_factory=list)

    def all_adjustments(self) -> list[Cas]:
        """Claim- and line-level adjustments together (what posting and balancing sum)."""
        result = list(self.adjustments)
        for line in self.lines:
            result.extend(line.adjustments)
        return result


@dataclass(slots=True)
class Plb:
    """One PLB reason/amount pair; a negative amount (interest, L6) increases the payment.

    ``reference``: the claim a non-interest adjustment is about (WO overpayment recovery, 72
    authorized return, FB forwarding balance), written as PLB03-2."""

    reason: str
    amount_cents: int
    reference: str | None = None


@dataclass(slots=True)
class RemitTransaction:
    """One 835 file: the payer, the payee facility and its claims."""

    payer: Payer
    facility: Facility
    business_date: dt.date
    control_number: int  # ISA13 / GS06; ST02 is its last four digits
    trace_number: str
    payment_method: str  # ACH or CHK
    file_name: str
    claims: list[RemitClaim] = field(default_factory=list)
    plbs: list[Plb] = field(default_factory=list)
    bpr_error_cents: int = 0  # fault only: added to BPR02 so the transaction does not balance

    @property
    def balanced_payment_cents(self) -> int:
        """sum(CLP04) - sum(PLB): what BPR02 must be."""
        return sum(claim.paid_cents for claim in self.claims) - sum(plb.amount_cents for plb in self.plbs)

    @property
    def payment_cents(self) -> int:
        """BPR02 as written."""
        return self.balanced_payment_cents + self.bpr_error_cents

    @property
    def isa13(self) -> str:
        return f"{self.control_number:09d}"

    @property
    def gs06(self) -> str:
        return str(self.control_number)

    @property
    def st02(self) -> str:
        return f"{self.control_number % 10000:04d}"


def amount(cents: int) -> str:
    """An X12 ``R`` amount: ``0`` for zero, else two decimals with a leading minus if negative."""
    if cents == 0:
        return "0"
    sign = "-" if cents < 0 else ""
    cents = abs(cents)
    return f"{sign}{cents // 100}.{cents % 100:02d}"


def _cas_segments(adjustments: list[Cas]) -> list[str]:
    """CAS segments: one per group, up to six triplets each, in first-seen group order."""
    segments: list[str] = []
    groups: dict[str, list[Cas]] = {}
    for adjustment in adjustments:
        groups.setdefault(adjustment.group, []).append(adjustment)
    for group, items in groups.items():
        for start in range(0, len(items), 6):
            chunk = items[start : start + 6]
            triplets = "**".join(f"{item.reason}*{amount(item.amount_cents)}" for item in chunk)
            segments.append(f"CAS*{group}*{triplets}")
    return segments


def _ach_fields(seed_text: str) -> tuple[str, str]:
    """Deterministic routing and account numbers (fictional)."""
    digits = "".join(str(ord(ch) % 10) for ch in seed_text)
    return ("0" + digits + "12345678")[:9], ("7" + digits + "000000000")[:10]


def render(tx: RemitTransaction) -> str:
    """The whole 835 file text."""
    payer = tx.payer
    fac = tx.facility
    date8 = tx.business_date.strftime("%Y%m%d")
    date6 = tx.business_date.strftime("%y%m%d")
    hhmm = f"{5 + (tx.control_number % 12):02d}{tx.control_number % 60:02d}"
    isa = (
        f"ISA*00*{'':10}*00*{'':10}*ZZ*{payer.x12_id:<15}*ZZ*{RECEIVER_ID:<15}*{date6}*{hhmm}*^*00501*"
        f"{tx.isa13}*0*P*:"
    )
    assert len(isa) == 105, isa  # + the segment terminator = the 106 fixed characters
    body: list[str] = [f"ST*835*{tx.st02}"]
    if tx.payment_method == "ACH":
        payer_routing, payer_account = _ach_fields(payer.x12_id)
        our_routing, our_account = _ach_fields(fac.npi)
        body.append(
            f"BPR*I*{amount(tx.payment_cents)}*C*ACH*CCP*01*{payer_routing}*DA*{payer_account}*{payer.x12_id}"
            f"**01*{our_routing}*DA*{our_account}*{date8}"
        )
    else:
        body.append(f"BPR*I*{amount(tx.payment_cents)}*C*CHK{'*' * 12}{date8}")
    body.append(f"TRN*1*{tx.trace_number}*{payer.x12_id}")
    body.append(f"DTM*405*{date8}")
    body.append(f"N1*PR*{payer.name}*XV*{payer.x12_id}")
    body.append("N3*PO BOX 1000")
    body.append("N4*HARTFORD*CT*06101")
    body.append(f"REF*2U*{payer.x12_id}")
    body.append("PER*BL*EDI SUPPORT*TE*8005550100")
    body.append(f"N1*PE*{fac.name}*XX*{fac.npi}")
    body.append("N3*100 HOSPITAL WAY")
    body.append(f"N4*{fac.city}*IL*62701")
    body.append(f"REF*TJ*{fac.npi[1:]}")
    body.append("LX*1")
    for claim in tx.claims:
        body.append(
            f"CLP*{claim.claim_id}*{claim.status}*{amount(claim.charge_cents)}*{amount(claim.paid_cents)}"
            f"*{amount(claim.patient_resp_cents)}*{claim.filing_indicator}*{claim.payer_claim_control}*13*1"
        )
        body.extend(_cas_segments(claim.adjustments))
        body.append(f"NM1*QC*1*{claim.patient_family}*{claim.patient_given}****MI*{claim.member_id}")
        body.append(f"DTM*232*{claim.statement_date:%Y%m%d}")
        for line in claim.lines:
            body.append(
                f"SVC*{line.procedure}*{amount(line.charge_cents)}*{amount(line.paid_cents)}"
                f"*{line.revenue_code}*{line.units}"
            )
            body.append(f"DTM*472*{line.service_date:%Y%m%d}")
            body.extend(_cas_segments(line.adjustments))
            body.append(f"REF*6R*{line.line_ref}")
            if line.allowed_cents is not None:
                body.append(f"AMT*B6*{amount(line.allowed_cents)}")
    if tx.plbs:
        fiscal = f"{tx.business_date.year}1231"
        pairs = "*".join(
            f"{plb.reason}{':' + plb.reference if plb.reference else ''}*{amount(plb.amount_cents)}" for plb in tx.plbs
        )
        body.append(f"PLB*{fac.npi}*{fiscal}*{pairs}")
    body.append(f"SE*{len(body) + 1}*{tx.st02}")
    segments = [
        isa,
        f"GS*HP*{payer.x12_id}*{RECEIVER_ID}*{date8}*{hhmm}*{tx.gs06}*X*005010X221A1",
        *body,
        f"GE*1*{tx.gs06}",
        f"IEA*1*{tx.isa13}",
    ]
    return TERMINATOR.join(segments) + TERMINATOR
