"""The three balancing rules a receiver checks on an 835 (DOMAIN.md, X12 835 section).

* line:        SVC02 - sum(line CAS) = SVC03
* claim:       CLP03 - sum(claim CAS + line CAS) = CLP04
* transaction: BPR02 = sum(CLP04) - sum(PLB amounts), with BPR02 taken as negative when BPR03 is
  ``D`` (a debit: the provider owes the payer; BPR02 itself is always written unsigned)

The line rule is checked on every service line, with or without adjustments (a line without
CAS must have SVC02 = SVC03); a claim without service lines has nothing to check at line level.
Comparisons are exact ``Decimal`` equality: a cent off is off, because the ERP will not reconcile.

Each failure is one line that names the claim by CLP01 (the provider's own claim id, not PHI),
the line by its 1-based position and SVC01, and every amount that went into the sum, so an
operator can redo the arithmetic from the message alone. The reader calls
:func:`check_claim` as each claim closes and :func:`check_transaction` at SE, so a 50 MB file is
checked while it streams; :func:`balance_errors` re-checks a finished ``Remittance``.
"""

from __future__ import annotations

from decimal import Decimal

from carefabric.canonical import Adjustment, RemitClaim, RemitServiceLine, Remittance

_ZERO = Decimal(0)


def fmt(amount: Decimal) -> str:
    """An amount for messages and JSON: at least two places (``-310`` -> ``-310.00``), never rounded."""
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -2:
        return format(amount, "f")
    return f"{amount:.2f}"


def cas_total(adjustments: list[Adjustment]) -> Decimal:
    total = _ZERO
    for adjustment in adjustments:  # a plain loop: this runs per line of a 50 MB file
        total += adjustment.amount
    return total


def check_line(claim_id: str, index: int, line: RemitServiceLine) -> str | None:
    """Line rule for line ``index`` (1-based) of claim ``claim_id``; None when it holds."""
    adjusted = cas_total(line.adjustments)
    expected = line.charge - adjusted
    if expected == line.paid:
        return None
    return (
        f"claim {claim_id} line {index} ({line.procedure}): SVC02 {fmt(line.charge)} - line CAS "
        f"{fmt(adjusted)} = {fmt(expected)}, but SVC03 is {fmt(line.paid)} (off by {fmt(line.paid - expected)})"
    )


def check_claim(claim: RemitClaim) -> list[str]:
    """Line rule on each service line, then the claim rule; an empty list when all hold."""
    errors: list[str] = []
    line_cas = _ZERO
    index = 0
    for line in claim.lines:
        index += 1
        adjusted = cas_total(line.adjustments)
        line_cas += adjusted
        if line.charge - adjusted != line.paid:
            errors.append(check_line(claim.patient_control_number, index, line) or "")
    claim_cas = cas_total(claim.adjustments)
    expected = claim.charge - claim_cas - line_cas
    if expected != claim.paid:
        errors.append(
            f"claim {claim.patient_control_number} (CLP02 {claim.status}): CLP03 {fmt(claim.charge)} - CAS "
            f"{fmt(claim_cas + line_cas)} (claim {fmt(claim_cas)} + lines {fmt(line_cas)}) = {fmt(expected)}, "
            f"but CLP04 is {fmt(claim.paid)} (off by {fmt(claim.paid - expected)})"
        )
    return errors


def check_transaction(remittance: Remittance) -> str | None:
    """Transaction rule: BPR02 = sum(CLP04) - sum(PLB); None when it holds."""
    paid = sum((c.paid for c in remittance.claims), _ZERO)
    plb = sum((p.amount for p in remittance.provider_adjustments), _ZERO)
    expected = paid - plb
    debit = remittance.credit_debit == "D"
    total = -remittance.payment_amount if debit else remittance.payment_amount
    if expected == total:
        return None
    shown = f"-{fmt(remittance.payment_amount)} (BPR03 D)" if debit else fmt(remittance.payment_amount)
    return (
        f"transaction {remittance.transaction_control} (TRN02 {remittance.trace_number}): BPR02 "
        f"{shown} != sum(CLP04) {fmt(paid)} - sum(PLB) {fmt(plb)} = {fmt(expected)} "
        f"over {len(remittance.claims)} claims (off by {fmt(total - expected)})"
    )


def balance_errors(remittance: Remittance) -> list[str]:
    """All three rules on a finished remittance, in file order (claims first, then the total)."""
    errors: list[str] = []
    for claim in remittance.claims:
        errors.extend(check_claim(claim))
    total = check_transaction(remittance)
    if total:
        errors.append(total)
    return errors
