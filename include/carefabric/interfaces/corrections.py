"""Accepting a held re-send (``CONFLICTING_RESEND``) as a correction of the original message.

When a person replays a ``CONFLICTING_RESEND`` exception (``carefabric exceptions replay`` or
the ``exception_replay`` DAG), the version it holds replaces the message's lines in effect:

* every line in effect (mapped or routed, of the version that currently stands) gets a reversal
  line: same mapping, negated quantity and amount, its own line key ``<line_key>~rev<n>`` and
  ``reversal_of`` naming the line it undoes. Billing receives it as a credit under its own
  idempotency key, and the ERP's next CHARGES (and SUPPLY / INVENTORY) documents net it;
* every FT1 line of version ``n`` becomes a new line ``<source>|<MSH-10>|<line>~v<n>``, mapped
  with today's crosswalks (a line that does not map is held with its own exception, as at ingest);
* lines of the old version that were held are superseded: their exceptions are resolved with a
  note, so no later replay posts them.

Reversal and new lines carry the business date the re-send arrived with, and are ordinary
mapped rows: routing and ERP posting treat them like any other line. Nothing is sent here; the
caller (``exception_replay.replay``) routes the returned line keys and posts their dates.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from carefabric import hl7
from carefabric.interfaces import resends
from carefabric.interfaces.common import held_to_exceptions
from carefabric.interfaces.ingest_rows import apply_mapping, charge_row, supply_row
from carefabric.mapping import CHARGEABLE_TYPES, Held, map_charge
from carefabric.store import audit, exceptions_repo
from carefabric.store.bulk import insert_ignore
from carefabric.store.crosswalks import Crosswalks
from carefabric.store.db import session_scope
from carefabric.store.models import Charge, ExceptionRecord, RawMessage, SupplyUsage
from carefabric.store.models.ingest import RawMessageVersion
from carefabric.store.types import utcnow

_COPIED = ("source", "facility", "encounter_id", "message_control_id", "message_id", "line_number", "transaction_id",
           "transaction_date", "cdm_code", "unit_amount_cents", "department", "procedure_code", "modifiers",
           "patient_token", "company", "cost_center", "revenue_account", "erp_item", "priced_from")


def accept(engine: Engine, exception_ids: list[int], *, actor: str) -> dict[str, Any]:
    """Accept the held versions behind the open ``CONFLICTING_RESEND`` exceptions among these ids.

    Returns the line keys written as ``mapped`` (reversals and new lines) for the caller to route
    and post, and how many versions were accepted.
    """
    keys: list[str] = []
    accepted = 0
    if not exception_ids:
        return {"line_keys": keys, "accepted": accepted}
    with session_scope(engine) as s:
        found = list(s.scalars(select(ExceptionRecord).where(
            ExceptionRecord.id.in_(exception_ids), ExceptionRecord.reason_code == resends.REASON,
            ExceptionRecord.status == "open",
        ).order_by(ExceptionRecord.id)))
        if not found:
            return {"line_keys": keys, "accepted": accepted}
        cw = Crosswalks.load(s)
        for exc in found:
            written = _accept_one(s, exc, cw, actor)
            if written is not None:
                keys += written
                accepted += 1
    return {"line_keys": keys, "accepted": accepted}


def _version_of(s: Session, exc: ExceptionRecord) -> RawMessageVersion | None:
    version_id = (exc.detail or {}).get("version_id")
    return s.get(RawMessageVersion, int(version_id)) if version_id is not None else None


def current_version(s: Session, message_id: int) -> int:
    """The version whose lines are in effect: the latest accepted one, else the original (1)."""
    latest = s.scalar(select(func.max(RawMessageVersion.version)).where(
        RawMessageVersion.message_id == message_id, RawMessageVersion.status == "accepted"))
    return int(latest or 1)


def _lines_of(s: Session, original: RawMessage, version: int, statuses: tuple[str, ...]) -> list[Charge]:
    return list(s.scalars(select(Charge).where(
        Charge.source == original.sender, Charge.message_control_id == original.control_id,
        Charge.reversal_of.is_(None), func.coalesce(Charge.message_version, 1) == version,
        Charge.status.in_(statuses),
    ).order_by(Charge.line_number)))


def _accept_one(s: Session, exc: ExceptionRecord, cw: Crosswalks, actor: str) -> list[str] | None:
    version = _version_of(s, exc)
    original = s.get(RawMessage, version.message_id) if version is not None else None
    if version is None or original is None or version.status != "held":
        return None
    try:
        result = hl7.canonicalize(version.payload)
    except hl7.HL7ParseError as err:
        exceptions_repo.open_exception(
            s, kind="business", reason_code=exc.reason_code, interface=exc.interface, record_type=exc.record_type,
            record_key=exc.record_key, summary=f"version {version.version} no longer reads: {err.reason}"[:480], actor=actor,
        )
        return None
    day = version.business_date or dt.date.today()
    standing = current_version(s, original.id)
    reversals, reversal_supply = _reversals(s, original, standing, version.version, day)
    new_rows, new_supply, held = _new_lines(result, cw, version.version, day)
    insert_ignore(s, Charge, reversals + new_rows, ["line_key"])
    insert_ignore(s, SupplyUsage, reversal_supply + new_supply, ["line_key"])
    if held:
        exceptions_repo.open_exceptions(s, held_to_exceptions(held, interface=exc.interface), actor=actor)
    superseded = [c.line_key for c in _lines_of(s, original, standing, ("held", "received"))]
    exceptions_repo.resolve_for(s, record_type="charge", record_keys=superseded, actor=actor,
                                note=f"superseded: MSH-10 version {version.version} accepted as a correction")
    version.status, version.decided_at, version.decided_by = "accepted", utcnow(), actor
    note = (f"accepted as a correction: {len(reversals)} lines reversed, {len(new_rows)} new lines "
            f"({len(held)} held)")
    exceptions_repo.mark_replayed(s, exc, actor=actor, note=note)
    audit.record(s, actor, "correction.accept", exc.record_key[:255],
                 {"exception_id": exc.id, "version": version.version, "reversed": len(reversals), "new": len(new_rows)})
    return [r["line_key"] for r in reversals + new_rows if r["status"] == "mapped"]


def _reversals(s: Session, original: RawMessage, standing: int, number: int,
               day: dt.date) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One credit per line in effect (and one inventory return per supply line among them)."""
    lines = _lines_of(s, original, standing, ("mapped", "routed"))
    supply = {u.line_key: u for u in s.scalars(
        select(SupplyUsage).where(SupplyUsage.line_key.in_([c.line_key for c in lines])))} if lines else {}
    rows, returns = [], []
    for line in lines:
        key = f"{line.line_key}~rev{number}"
        row = {c: getattr(line, c) for c in _COPIED}
        row.update(line_key=key, reversal_of=line.line_key, message_version=number, status="mapped",
                   transaction_type="CD" if line.amount_cents > 0 else "CG", quantity=-line.quantity,
                   amount_cents=-line.amount_cents, business_date=day)
        rows.append(row)
        used = supply.get(line.line_key)
        if used is not None:
            returns.append({"line_key": key, "facility": used.facility, "transaction_date": used.transaction_date,
                            "business_date": day, "item": used.item, "location": used.location,
                            "quantity": -used.quantity, "unit_cost_cents": used.unit_cost_cents,
                            "cost_center": used.cost_center, "company": used.company, "status": "mapped"})
    return rows, returns


def _new_lines(result: hl7.CanonicalResult, cw: Crosswalks, number: int,
               day: dt.date) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[Held]]:
    """The version's FT1 lines under versioned keys, mapped as at ingest."""
    rows, supplies, held = [], [], []
    for charge in result.charges:
        charge = replace(charge, key_suffix=f"~v{number}")
        row = charge_row(charge, day)
        row["message_version"] = number
        rows.append(row)
        if charge.transaction_type not in CHARGEABLE_TYPES:
            continue
        outcome = map_charge(charge, cw)
        apply_mapping(row, outcome)
        if isinstance(outcome, Held):
            held.append(outcome)
        elif outcome.is_supply:
            supplies.append(supply_row(outcome, day))
    return rows, supplies, held
