"""The posting policy of docs/CONTRACTS.md as constants and small pure rules.

Kept apart from the builders so the accounts and the decision rules are read in one place and
checked against the contract line by line; the builders only apply them set-based.
"""

from __future__ import annotations

from typing import Literal

# --------------------------------------------------------------------------- chart of accounts
CASH_CLEARING = "1010"  # Dr per CLP04 paid; Cr per PLB amount
AR_INSURANCE = "1200"  # Dr per charge; Cr per CLP04 and every CAS
AR_SELF_PAY = "1210"  # Dr per CAS PR
INVENTORY = "1400"  # Cr per supply at item cost (location, no cost center)
CONTRACTUAL_ALLOWANCE = "4900"  # Dr per non-PR CAS on a claim that is not denied
DENIAL_WRITE_OFF = "4910"  # Dr per non-PR CAS on a denied claim (CLP02 = 4)
SUPPLY_EXPENSE = "6500"  # Dr per supply at item cost (department cost center)
INTEREST_INCOME = "7100"  # Dr per PLB L6 amount (negative, so it nets to a credit)

# --------------------------------------------------------------------------- sources
SOURCE_CHARGES = "CHARGES"
SOURCE_SUPPLY = "SUPPLY"
SOURCE_REMIT = "REMIT"
SOURCE_INVENTORY = "INVENTORY"  # the movement document, not a journal
SOURCE_CASH = "CASH"  # the cash receipt document, not a journal

JOURNAL_SOURCES = frozenset({SOURCE_CHARGES, SOURCE_SUPPLY, SOURCE_REMIT})

# --------------------------------------------------------------------------- charge rules
CHARGE_TYPES = frozenset({"CG", "CD"})  # FT1-6 types that post; PY/AJ belong to billing
CREDIT_TYPE = "CD"  # a credit is negative whatever sign FT1-11 was written with

# --------------------------------------------------------------------------- remittance rules
PATIENT_RESPONSIBILITY_GROUP = "PR"
DENIED_STATUS = "4"  # CLP02
INTEREST_REASON = "L6"  # PLB reason

# --------------------------------------------------------------------------- contribution vocabulary
RecordType = Literal["charge", "claim", "trace", "plb"]

COMPONENT_CHARGE = "charge"  # Dr 1200 of a charge
COMPONENT_REVENUE = "revenue"  # Cr revenue of a charge
COMPONENT_SUPPLY_EXPENSE = "supply_expense"  # Dr 6500
COMPONENT_INVENTORY = "inventory"  # Cr 1400
COMPONENT_PAYMENT = "payment"  # CLP04: Dr 1010 (trace) / Cr 1200 (claim)
COMPONENT_PATIENT_RESP = "patient_responsibility"  # CAS PR
COMPONENT_CONTRACTUAL = "contractual"  # non-PR CAS, claim not denied
COMPONENT_DENIAL = "denial"  # non-PR CAS, claim denied
COMPONENT_PLB = "plb"  # PLB: Cr 1010 (trace) / Dr 7100 or 1200 (plb)

Mode = Literal["summary", "detail"]
_MODES: dict[str, Mode] = {"summary": "summary", "detail": "detail"}


def adjustment_component(group: str, claim_status: str) -> str:
    """Which rule a CAS adjustment follows: PR moves AR to self-pay, the rest are written off.

    Contractual vs denial depends on the claim status, not on the CAS group, because finance
    tracks denial write-offs separately from negotiated allowances (CONTRACTS.md).
    """
    if group == PATIENT_RESPONSIBILITY_GROUP:
        return COMPONENT_PATIENT_RESP
    if claim_status == DENIED_STATUS:
        return COMPONENT_DENIAL
    return COMPONENT_CONTRACTUAL


ADJUSTMENT_DEBIT_ACCOUNT = {
    COMPONENT_PATIENT_RESP: AR_SELF_PAY,
    COMPONENT_DENIAL: DENIAL_WRITE_OFF,
    COMPONENT_CONTRACTUAL: CONTRACTUAL_ALLOWANCE,
}


def plb_debit_account(reason: str) -> str:
    """PLB L6 is interest income; any other provider adjustment goes back to insurance AR."""
    return INTEREST_INCOME if reason == INTEREST_REASON else AR_INSURANCE


def check_mode(mode: str) -> Mode:
    """Reject an unknown posting mode early: a typo must not silently post detail as summary.

    Returns the mode as a ``Mode``: settings arrive as text (an Airflow Variable, a CLI flag)."""
    known = _MODES.get(mode)
    if known is None:
        raise ValueError(f"posting mode must be 'summary' or 'detail', not {mode!r}")
    return known
