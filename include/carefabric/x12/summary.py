"""The operator's view of an 835 file (``carefabric 835 FILE``), as a JSON-able dict.

It answers what an operator asks first about a remittance: who paid, how much, under which
trace number, for which claims, and whether it balances (and if not, by how much and where).
Amounts are strings (``"150000.00"``) so JSON never turns them into floats. Patient names and
member ids are masked with ``carefabric.phi.mask`` unless ``show_phi`` is set (an operator at a
terminal who is allowed to see them); claim ids (CLP01) are the provider's own ids, not PHI.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from carefabric.canonical import Adjustment, RemitClaim, Remittance
from carefabric.phi import mask
from carefabric.x12.balance import fmt
from carefabric.x12.errors import X12Error
from carefabric.x12.reader import read_file


def _date(value: dt.date | None) -> str | None:
    return value.isoformat() if value else None


def _adjustments(adjustments: list[Adjustment]) -> list[dict[str, Any]]:
    return [
        {
            "group": a.group,
            "reason": a.reason,
            "amount": fmt(a.amount),
            "quantity": str(a.quantity) if a.quantity is not None else None,
        }
        for a in adjustments
    ]


def _claim(claim: RemitClaim, show_phi: bool) -> dict[str, Any]:
    return {
        "claim_id": claim.patient_control_number,
        "status": claim.status,
        "reversal": claim.is_reversal,
        "denied": claim.is_denied,
        "charge": fmt(claim.charge),
        "paid": fmt(claim.paid),
        "patient_responsibility": fmt(claim.patient_responsibility)
        if claim.patient_responsibility is not None
        else None,
        "payer_claim_control": claim.payer_claim_control,
        "patient_name": claim.patient_name_phi if show_phi else mask(claim.patient_name_phi),
        "member_id": claim.member_id_phi if show_phi else mask(claim.member_id_phi),
        "adjustments": _adjustments(claim.adjustments),
        "service_lines": [
            {
                "procedure": line.procedure,
                "charge": fmt(line.charge),
                "paid": fmt(line.paid),
                "units": str(line.units) if line.units is not None else None,
                "service_date": _date(line.service_date),
                "line_ref": line.line_ref,
                "allowed": fmt(line.allowed) if line.allowed is not None else None,
                "adjustments": _adjustments(line.adjustments),
            }
            for line in claim.lines
        ],
    }


def transaction_summary(remittance: Remittance, *, show_phi: bool = False) -> dict[str, Any]:
    """One transaction set as the operator sees it."""
    return {
        "interchange_control": remittance.interchange_control,
        "group_control": remittance.group_control,
        "transaction_control": remittance.transaction_control,
        "version": remittance.version,
        "sender_id": remittance.sender_id,
        "payer": {"name": remittance.payer_name, "id": remittance.payer_id},
        "payee": {"name": remittance.payee_name, "npi": remittance.payee_npi},
        "payment_amount": fmt(remittance.payment_amount),
        "credit_debit": remittance.credit_debit,
        "payment_method": remittance.payment_method,
        "payment_date": _date(remittance.payment_date),
        "trace_number": remittance.trace_number,
        "trace_originator": remittance.trace_originator,
        "claim_count": len(remittance.claims),
        "claims": [_claim(c, show_phi) for c in remittance.claims],
        "provider_adjustments": [
            {
                "provider_id": p.provider_id,
                "fiscal_date": _date(p.fiscal_date),
                "reason": p.reason,
                "reference": p.reference,
                "amount": fmt(p.amount),
            }
            for p in remittance.provider_adjustments
        ],
        "balanced": remittance.balanced,
        "balance_errors": list(remittance.balance_errors),
        "findings": list(remittance.findings),
    }


def file_summary(path: Path, *, show_phi: bool = False) -> dict[str, Any]:
    """Summarize every transaction of an 835 file.

    Raises ``X12Error`` (one-line ``reason``) when the file is not a readable interchange or holds
    no transaction set at all (``carefabric 835`` exits 2).
    Transactions that cannot be read are listed under ``errors`` with their control numbers and
    reason, beside the readable ones; ``balanced`` is true only when every transaction was read
    and balances.
    """
    path = Path(path)
    result = read_file(path)
    if not result.transaction_count:  # nothing to show: the first envelope error says why, if any
        reason = result.errors[0].reason if result.errors else "no 835 transaction set (ST..SE) in the interchange"
        raise X12Error(reason)
    transactions = [transaction_summary(r, show_phi=show_phi) for r in result.remittances]
    return {
        "file": path.name,
        "transaction_count": result.transaction_count,
        "readable": result.ok,
        "balanced": result.balanced,
        "transactions": transactions,
        "errors": [e.to_dict() for e in result.errors],
        "findings": list(result.findings),
    }
