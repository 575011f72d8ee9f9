"""Canonical records: the one shape every feed is turned into.

HL7 v2 and FHIR both become ``Encounter`` and ``Charge``; X12 835 becomes ``Remittance``.
Mapping, routing, posting and reconciliation read only these, so a new feed format needs a
parser and nothing else. Records are versioned by ``SCHEMA_VERSION`` when they are stored.

Amounts are ``Decimal`` as parsed; posting turns them into integer cents. Fields named
``*_phi`` hold protected health information: they are kept in the message store for replay and
audit and are never copied into logs, exceptions, emails or ERP payloads (use
``carefabric.phi.token`` for a join key).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

SCHEMA_VERSION = 1


# --------------------------------------------------------------------------- EHR side


@dataclass(slots=True)
class Encounter:
    """One visit as the EHR describes it (ADT, or the PV1 of a DFT^P03, or FHIR Encounter)."""

    source: str  # sending application|facility (MSH-3|MSH-4) or "fhir"
    facility: str  # MSH-4 sending facility or PV1-39 servicing facility
    encounter_id: str  # PV1-19 visit number
    event_type: str  # A01, A03, A04, A08, A11, A13, P03 or FHIR status
    message_control_id: str  # MSH-10 (FHIR: resource id)
    patient_token: str | None  # phi.token(MRN)
    patient_class: str | None = None  # PV1-2
    hospital_service: str | None = None  # PV1-10
    location: str | None = None  # PV1-3 point of care
    financial_class: str | None = None  # PV1-20
    admit_time: dt.datetime | None = None  # PV1-44
    discharge_time: dt.datetime | None = None  # PV1-45
    insurance_plan: str | None = None  # IN1-2
    insurance_company: str | None = None  # IN1-3
    message_time: dt.datetime | None = None  # MSH-7
    mrn_phi: str | None = None  # PID-3 (type MR)
    patient_name_phi: str | None = None  # PID-5
    birth_date_phi: str | None = None  # PID-7


@dataclass(slots=True)
class Charge:
    """One FT1 line (or FHIR ChargeItem): a charge, a credit, or supply usage before mapping."""

    source: str
    facility: str
    encounter_id: str
    message_control_id: str  # MSH-10 of the DFT^P03
    line_number: int  # FT1-1 set id (1-based position when absent)
    transaction_id: str | None  # FT1-2
    transaction_date: dt.date  # FT1-4
    transaction_type: str  # FT1-6: CG charge, CD credit, PY payment, AJ adjustment
    cdm_code: str  # FT1-7
    quantity: Decimal  # FT1-10 (negative reverses)
    extended_amount: Decimal  # FT1-11; quantity * unit when FT1-11 is empty
    unit_amount: Decimal | None  # FT1-12
    department: str | None  # FT1-13
    procedure_code: str | None = None  # FT1-25
    modifiers: tuple[str, ...] = ()  # FT1-26
    patient_token: str | None = None
    # True when the source carried no amount (a DFT without FT1-11/12, a ChargeItem without
    # priceOverride): extended_amount is a placeholder 0 until mapping prices the line from the
    # chargemaster (CDM crosswalk price x quantity) or holds it as UNPRICED_CHARGE.
    needs_price: bool = False
    # A line from a correction accepted under the same MSH-10 (``~v2``) or a reversal credit of an
    # earlier line (``~rev2``): its own idempotency key, so billing and the ERP take it as new.
    key_suffix: str = ""

    @property
    def line_key(self) -> str:
        """Natural idempotency key of the line: sender, control id, line number (and suffix)."""
        return f"{self.source}|{self.message_control_id}|{self.line_number}{self.key_suffix}"


# --------------------------------------------------------------------------- payer side


@dataclass(slots=True)
class Adjustment:
    """One CAS reason/amount/quantity triplet."""

    group: str  # CO, PR, OA, PI (CR in 4010)
    reason: str  # CARC
    amount: Decimal
    quantity: Decimal | None = None


@dataclass(slots=True)
class RemitServiceLine:
    """Loop 2110: one SVC with its line-level adjustments."""

    procedure: str  # SVC01 as written, e.g. "HC:99213:25" (component separator normalized to ':')
    charge: Decimal  # SVC02
    paid: Decimal  # SVC03
    units: Decimal | None = None  # SVC05
    service_date: dt.date | None = None  # DTM*472 (or DTM*150)
    line_ref: str | None = None  # REF*6R
    allowed: Decimal | None = None  # AMT*B6
    adjustments: list[Adjustment] = field(default_factory=list)


@dataclass(slots=True)
class RemitClaim:
    """Loop 2100: one CLP with claim-level adjustments and its service lines."""

    patient_control_number: str  # CLP01, the provider's claim id
    status: str  # CLP02
    charge: Decimal  # CLP03
    paid: Decimal  # CLP04
    patient_responsibility: Decimal | None  # CLP05
    payer_claim_control: str | None  # CLP07
    adjustments: list[Adjustment] = field(default_factory=list)
    lines: list[RemitServiceLine] = field(default_factory=list)
    patient_name_phi: str | None = None  # NM1*QC
    member_id_phi: str | None = None  # NM1*QC id / NM1*IL

    @property
    def is_reversal(self) -> bool:
        return self.status == "22"

    @property
    def is_denied(self) -> bool:
        return self.status == "4"


@dataclass(slots=True)
class ProviderAdjustment:
    """One PLB reason/amount pair. A positive amount reduces the payment."""

    provider_id: str
    fiscal_date: dt.date | None
    reason: str  # L6 interest, WO, FB, 72, CV, CS ...
    reference: str | None
    amount: Decimal


@dataclass(slots=True)
class Remittance:
    """One 835 transaction set (ST..SE) with its envelope identifiers."""

    interchange_control: str  # ISA13
    group_control: str  # GS06
    transaction_control: str  # ST02
    version: str  # GS08, e.g. 005010X221A1
    sender_id: str  # ISA06
    payment_amount: Decimal  # BPR02
    credit_debit: str  # BPR03
    payment_method: str | None  # BPR04
    payment_date: dt.date | None  # BPR16 (None when impossible, with a finding)
    trace_number: str  # TRN02
    trace_originator: str | None  # TRN03
    payer_name: str | None  # N1*PR
    payer_id: str | None  # N1*PR id, or REF*2U, or TRN03
    payee_name: str | None  # N1*PE
    payee_npi: str | None  # N1*PE*..*XX
    claims: list[RemitClaim] = field(default_factory=list)
    provider_adjustments: list[ProviderAdjustment] = field(default_factory=list)
    balance_errors: list[str] = field(default_factory=list)  # empty when the three rules hold
    findings: list[str] = field(default_factory=list)  # TR3 deviations that do not touch money
    payee_tax_id: str | None = None  # N1*PE*..*FI: payers that name the payee by tax id, not NPI

    @property
    def balanced(self) -> bool:
        return not self.balance_errors


# --------------------------------------------------------------------------- ERP side


@dataclass(slots=True, frozen=True)
class JournalLine:
    """One ledger line. Exactly one of debit/credit is non-zero; amounts in cents."""

    account: str
    cost_center: str | None
    location: str | None
    facility: str | None
    debit_cents: int
    credit_cents: int
    memo: str = ""


@dataclass(slots=True)
class JournalBatch:
    """A journal the ERP posts whole or not at all; balanced by construction."""

    external_id: str
    company: str
    journal_date: dt.date
    source: str  # CHARGES, REMIT, SUPPLY
    lines: list[JournalLine]

    @property
    def total_debit_cents(self) -> int:
        return sum(line.debit_cents for line in self.lines)

    @property
    def total_credit_cents(self) -> int:
        return sum(line.credit_cents for line in self.lines)


# --------------------------------------------------------------------------- after mapping


@dataclass(slots=True)
class MappedCharge:
    """A charge that passed the crosswalks: everything posting and billing need, no PHI."""

    charge: Charge
    company: str
    cost_center: str  # department crosswalk (active in the ERP)
    revenue_account: str  # CDM crosswalk
    erp_item: str | None = None  # CDM crosswalk; set for supply lines
    item_unit_cost: Decimal | None = None  # ERP item master
    location: str | None = None  # facility's inventory location

    @property
    def is_supply(self) -> bool:
        return self.erp_item is not None


@dataclass(slots=True)
class MappedRemittance:
    """A balanced 835 transaction whose payer and payee resolved through the crosswalks."""

    remittance: Remittance
    company: str
    facility: str  # payee NPI -> facility
    erp_payer_id: str  # payer crosswalk
    business_date: dt.date  # the date it was received and is posted on


@dataclass(slots=True, frozen=True)
class InventoryMovementLine:
    """Summarized consumption of one item at one location for one cost center (quantity < 0)."""

    location: str
    item: str
    quantity: Decimal
    unit_cost: Decimal
    cost_center: str


@dataclass(slots=True)
class CashReceipt:
    """One EFT or check (TRN02) to apply in ERP accounts receivable."""

    external_id: str
    company: str
    receipt_date: dt.date
    trace_number: str
    payer_id: str
    amount_cents: int
    facility: str
