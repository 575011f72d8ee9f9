"""Operator actions shared by the console and the CLI: discard, resolve, replay, crosswalk edits.

Every action names its actor and lands in the audit log (through ``exceptions_repo`` and
``crosswalks``, which write the audit rows in the same transaction as the change).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from carefabric.console.queries import exception_detail, replay_command
from carefabric.console.queries.exceptions import replayable_ids
from carefabric.console.replay import replay_conf
from carefabric.store import audit, exceptions_repo
from carefabric.store import crosswalks as cw
from carefabric.store.db import session_scope
from carefabric.store.models import (
    ErpCompany,
    ErpCostCenter,
    ErpGlAccount,
    ErpItem,
    ErpLocation,
    ErpPayer,
    ExceptionRecord,
)

if TYPE_CHECKING:
    from carefabric.console.replay import ReplayTrigger
    from carefabric.console.security import Principal

#: ``replayer(engine, exception_ids, actor) -> dict``: map, route and post the records again.
Replayer = Callable[[Engine, list[int], str], dict[str, Any]]

ACTOR_MAX = 64


class ActionError(ValueError):
    """An action that cannot be done as asked (bad input); the message says why."""


class ConflictError(ActionError):
    """The record is not in a state that allows the action (e.g. discarding a closed exception)."""


def clean_actor(actor: str | None, default: str = "console") -> str:
    text = (actor or "").strip() or default
    if len(text) > ACTOR_MAX:
        raise ActionError(f"actor must be at most {ACTOR_MAX} characters")
    if any(ord(ch) < 32 for ch in text):
        raise ActionError("actor must not contain control characters")
    return text


def _open(session: Session, exception_id: int, action: str) -> ExceptionRecord:
    exc = session.get(ExceptionRecord, exception_id)
    if exc is None:
        raise LookupError(f"no exception {exception_id}")
    if exc.status != "open":
        raise ConflictError(f"exception {exception_id} is {exc.status}; only open exceptions can be {action}")
    return exc


def discard(session: Session, exception_id: int, *, actor: str, note: str | None) -> dict[str, Any]:
    """Discard an open exception (a note saying why is required); audited with the actor."""
    note = (note or "").strip()
    if not note:
        raise ActionError("discarding an exception needs a note saying why")
    actor = clean_actor(actor)
    exc = _open(session, exception_id, "discarded")
    exceptions_repo.discard(session, exc, actor=actor, note=note[:2000])
    return exception_detail(session, exception_id)


def resolve(session: Session, exception_id: int, *, actor: str, note: str | None = None) -> dict[str, Any]:
    """Mark an open exception resolved by hand; audited with the actor."""
    actor = clean_actor(actor)
    exc = _open(session, exception_id, "resolved")
    note = (note or "").strip() or "resolved by operator"
    exceptions_repo.resolve(session, exc, actor=actor, note=note[:2000])
    audit.record(
        session, actor, "exception.resolve",
        f"exception:{exc.id}:{exc.reason_code}:{exc.record_type}:{exc.record_key}"[:255],
        {"exception_id": exc.id, "note": note[:500]},
    )
    return exception_detail(session, exception_id)


def replay(
    engine: Engine,
    *,
    exception_ids: list[int] | None = None,
    reason_code: str | None = None,
    interface: str | None = None,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    actor: str,
    replayer: Replayer | None = None,
    trigger: ReplayTrigger | None = None,
    principal: Principal | None = None,
) -> dict[str, Any]:
    """Replay open exceptions: the ``exception_replay`` DAG run through ``trigger`` (the console,
    as the user), in process through ``replayer`` (callers holding billing/ERP clients), or else
    a dry run that says which would map now and gives the DAG command.

    Only records the DAG can post again are replayed (held charges, rejected ERP documents):
    parse errors and duplicates are fixed at the source, so asking to replay only those is refused.
    """
    from carefabric.interfaces.exception_replay import select_exceptions

    actor = clean_actor(actor)
    try:
        ids = select_exceptions(engine, exception_ids=exception_ids, reason_code=reason_code, interface=interface)
    except ValueError as exc:
        raise ActionError(str(exc)) from None
    with session_scope(engine) as s:
        replayable = replayable_ids(s, ids, date_from=date_from, date_to=date_to)
    if not ids or (not replayable and (date_from or date_to)):
        return {"mode": "none", "exception_ids": [], "message": "no open exception matches", "command": None}
    if not replayable:
        raise ActionError("none of these exceptions can be replayed (parse errors, duplicates and files "
                          "are fixed at the source and delivered again)")
    skipped = sorted(set(ids) - set(replayable))
    if trigger is not None and principal is not None:
        return _trigger(engine, trigger, principal, replayable, skipped, exception_ids, reason_code, interface,
                        date_from, date_to)
    if replayer is not None:
        result = replayer(engine, replayable, actor)
        return {"mode": "replayed", "exception_ids": replayable, "result": result, "command": None}
    would_map, still_held, not_charges = preview(engine, replayable)
    return {
        "mode": "dag", "exception_ids": replayable, "not_replayable": skipped,
        "would_map": would_map, "still_held": still_held, "not_charge_exceptions": not_charges,
        "message": "replay maps, routes to billing and posts to the ERP: it runs in the exception_replay DAG.",
        "command": replay_command(replayable),
    }


def _trigger(
    engine: Engine, trigger: ReplayTrigger, principal: Principal, ids: list[int], skipped: list[int],
    exception_ids: list[int] | None, reason_code: str | None, interface: str | None,
    date_from: dt.date | None, date_to: dt.date | None,
) -> dict[str, Any]:
    """Trigger the DAG as the user and audit the request with the run it started."""
    by_selection = bool(exception_ids) or bool(skipped) or bool(date_from or date_to)
    conf = replay_conf(exception_ids=ids if by_selection else None, reason_code=reason_code, interface=interface)
    would_map, still_held, _ = preview(engine, ids)
    run = trigger.trigger(principal, conf)
    with session_scope(engine) as s:
        for exc_id in ids:
            exc = s.get(ExceptionRecord, exc_id)
            assert exc is not None
            audit.record(
                s, principal.name, "exception.replay_requested",
                f"exception:{exc.id}:{exc.reason_code}:{exc.record_type}:{exc.record_key}"[:255],
                {"exception_id": exc.id, "dag_run_id": run.run_id},
            )
    return {
        "mode": "triggered", "exception_ids": ids, "not_replayable": skipped, "would_map": would_map,
        "still_held": still_held, "run": run.as_dict(), "command": None,
        "message": f"exception_replay run {run.run_id} started as {principal.name}",
    }


def preview(engine: Engine, ids: list[int]) -> tuple[list[int], dict[str, list[int]], list[int]]:
    """Which of these exceptions' charge lines map with today's crosswalks (read only)."""
    from carefabric.interfaces.erp_master_data import charge_from_row
    from carefabric.mapping import Held, map_charge
    from carefabric.store.crosswalks import Crosswalks
    from carefabric.store.models import Charge

    would_map: list[int] = []
    still: dict[str, list[int]] = {}
    with session_scope(engine) as s:
        table = Crosswalks.load(s)
        pairs = s.execute(
            select(ExceptionRecord.id, Charge)
            .join(Charge, Charge.line_key == ExceptionRecord.record_key)
            .where(ExceptionRecord.id.in_(ids), ExceptionRecord.record_type == "charge")
        ).all()
        seen = set()
        for exc_id, row in pairs:
            seen.add(exc_id)
            outcome = map_charge(charge_from_row(row), table)
            if isinstance(outcome, Held):
                still.setdefault(outcome.reason_code, []).append(exc_id)
            else:
                would_map.append(exc_id)
    return sorted(would_map), still, sorted(set(ids) - seen)


# --------------------------------------------------------------------------- crosswalks


def _check_known(session: Session, model: Any, column: Any, value: str | None, label: str, active: Any = None) -> None:
    """If the ERP master is replicated, the value must exist there (and be active)."""
    if not value:
        return
    if not session.scalar(select(func.count()).select_from(model)):
        return  # master data not replicated yet: nothing to check against
    row = session.execute(select(column, active if active is not None else column).where(column == value)).first()
    if row is None:
        raise ActionError(f"{label} {value} is not in the ERP master data")
    if active is not None and row[1] is False:
        raise ActionError(f"{label} {value} is inactive in the ERP")


def set_cdm(
    session: Session,
    code: str,
    *,
    revenue_account: str,
    erp_item: str | None = None,
    procedure_code: str | None = None,
    description: str | None = None,
    actor: str,
) -> dict[str, Any]:
    """Add or change a CDM mapping (versioned, history, audit); the account and item must be
    known to the ERP when its master data is replicated."""
    actor = clean_actor(actor)
    code = (code or "").strip()
    revenue_account = (revenue_account or "").strip()
    if not code or not revenue_account:
        raise ActionError("a CDM mapping needs a code and a revenue account")
    _check_known(session, ErpGlAccount, ErpGlAccount.account, revenue_account, "revenue account", ErpGlAccount.active)
    _check_known(session, ErpItem, ErpItem.item, (erp_item or "").strip() or None, "ERP item", ErpItem.active)
    try:
        row = cw.set_cdm(session, code, revenue_account, erp_item, procedure_code, description, actor=actor)
    except cw.CrosswalkError as exc:
        raise ActionError(str(exc)) from None
    return _row(row, "cdm")


def set_department(session: Session, facility: str, department: str, *, cost_center: str, actor: str) -> dict[str, Any]:
    """Map a facility's department to a cost center (which must be active in the ERP)."""
    actor = clean_actor(actor)
    if not (facility and department and cost_center):
        raise ActionError("a department mapping needs a facility, a department and a cost center")
    _check_known(session, ErpCostCenter, ErpCostCenter.cost_center, cost_center, "cost center", ErpCostCenter.active)
    try:
        row = cw.set_department(session, facility, department, cost_center, actor=actor)
    except cw.CrosswalkError as exc:
        raise ActionError(str(exc)) from None
    return _row(row, "departments")


def set_payer(session: Session, x12_payer_id: str, *, erp_payer_id: str, actor: str) -> dict[str, Any]:
    """Map an X12 payer id to an ERP payer (which must be known to the ERP)."""
    actor = clean_actor(actor)
    if not (x12_payer_id and erp_payer_id):
        raise ActionError("a payer mapping needs an X12 payer id and an ERP payer id")
    _check_known(session, ErpPayer, ErpPayer.payer_id, erp_payer_id, "ERP payer", ErpPayer.active)
    try:
        row = cw.set_payer(session, x12_payer_id, erp_payer_id, actor=actor)
    except cw.CrosswalkError as exc:
        raise ActionError(str(exc)) from None
    return _row(row, "payers")


def set_facility(session: Session, facility: str, *, company: str, npi: str | None = None,
                 tax_id: str | None = None, location: str | None = None, actor: str) -> dict[str, Any]:
    """Map a facility to its ERP company (and NPI, tax id, inventory location for 835 payees)."""
    actor = clean_actor(actor)
    if not (facility and company):
        raise ActionError("a facility mapping needs a facility and a company")
    _check_known(session, ErpCompany, ErpCompany.company_id, company, "company")
    _check_known(session, ErpLocation, ErpLocation.location, location or None, "location")
    try:
        row = cw.set_facility(session, facility, company, npi, location, tax_id, actor=actor)
    except cw.CrosswalkError as exc:
        raise ActionError(str(exc)) from None
    return _row(row, "facilities")


def set_crosswalk(session: Session, table: str, values: dict[str, str | None], *, actor: str) -> dict[str, Any]:
    """Add or change one row of any crosswalk from its column values (the console's one edit form)."""
    if table not in cw.SPECS:
        raise LookupError(f"no crosswalk {table!r} (one of {', '.join(cw.SPECS)})")
    v = {k: ((values.get(k) or "").strip() or None) for k in (*cw.SPECS[table].key, *cw.SPECS[table].values)}
    if table == "cdm":
        return set_cdm(session, v["cdm_code"] or "", revenue_account=v["revenue_account"] or "", erp_item=v["erp_item"],
                       procedure_code=v["procedure_code"], description=v["description"], actor=actor)
    if table == "departments":
        return set_department(session, v["facility"] or "", v["department"] or "", cost_center=v["cost_center"] or "",
                              actor=actor)
    if table == "payers":
        return set_payer(session, v["x12_payer_id"] or "", erp_payer_id=v["erp_payer_id"] or "", actor=actor)
    return set_facility(session, v["facility"] or "", company=v["company"] or "", npi=v["npi"], tax_id=v["tax_id"],
                        location=v["location"], actor=actor)


def _row(row: Any, table: str) -> dict[str, Any]:
    spec = cw.SPECS[table]
    out = {c: getattr(row, c) for c in (*spec.key, *spec.values)}
    out.update(table=table, version=row.version, changed_by=row.changed_by,
               valid_from=row.valid_from.isoformat() if row.valid_from else None)
    return out
