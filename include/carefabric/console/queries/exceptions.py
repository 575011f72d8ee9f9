"""The exception queue: filtered, sorted pages with what is at stake, and one exception's detail.

Triage needs money and time next to the reason: the amount at stake and the business date come
from the record an exception holds back (a charge line, a remittance, an ERP document), joined
at query time so no migration is needed and the figures are never stale. Files and unreadable
messages carry no amount.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, literal, select
from sqlalchemy.orm import Session

from carefabric.console.queries.common import exception_json, iso, money, replay_command
from carefabric.store.models import AuditLog, Charge, ErpPosting, ExceptionRecord, Remittance

#: Records the exception_replay DAG can map and post again; files and messages are redelivered
#: at the source and duplicates are nothing to replay. ``message_version``: a CONFLICTING_RESEND,
#: whose replay accepts the held version as a correction (``interfaces.corrections``).
REPLAYABLE_RECORD_TYPES = frozenset({"charge", "posting", "message_version"})
PAGE_SIZE_MAX = 500
SORTS = ("id", "amount", "age", "business_date", "interface", "reason_code", "status")


@dataclass(frozen=True)
class QueueFilter:
    """What the queue shows: each field narrows it; ``sort`` is a key of ``SORTS``, ``-`` for descending."""

    status: str | None = None
    interface: str | None = None
    reason_code: str | None = None
    kind: str | None = None
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    min_amount_cents: int | None = None
    older_than_days: int | None = None
    sort: str = "-id"


def _remit_key() -> ColumnElement[str]:
    r = Remittance
    sep = literal("|")
    return r.interchange_control + sep + r.group_control + sep + r.transaction_control + sep + r.sender_id


def _amount() -> ColumnElement[Any]:
    return func.coalesce(Charge.amount_cents, Remittance.payment_cents, ErpPosting.debit_cents)


def _business_date() -> ColumnElement[Any]:
    return func.coalesce(Charge.business_date, Remittance.business_date, ErpPosting.business_date)


def _with_stakes(stmt: Select[Any]) -> Select[Any]:
    """Outer-join the record behind each exception (at most one of the three matches)."""
    rt = ExceptionRecord.record_type
    return (
        stmt.outerjoin(Charge, and_(rt == "charge", Charge.line_key == ExceptionRecord.record_key))
        .outerjoin(Remittance, and_(rt == "remittance", _remit_key() == ExceptionRecord.record_key))
        .outerjoin(ErpPosting, and_(rt == "posting", ErpPosting.external_id == ExceptionRecord.record_key))
    )


def _filtered(stmt: Select[Any], f: QueueFilter) -> Select[Any]:
    stmt = _with_stakes(stmt)
    if f.status and f.status != "all":
        stmt = stmt.where(ExceptionRecord.status == f.status)
    for column, value in ((ExceptionRecord.interface, f.interface), (ExceptionRecord.reason_code, f.reason_code),
                          (ExceptionRecord.kind, f.kind)):
        if value:
            stmt = stmt.where(column == value)
    if f.date_from:
        stmt = stmt.where(_business_date() >= f.date_from)
    if f.date_to:
        stmt = stmt.where(_business_date() <= f.date_to)
    if f.min_amount_cents is not None:
        stmt = stmt.where(func.abs(_amount()) >= f.min_amount_cents)
    if f.older_than_days is not None:
        cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(days=f.older_than_days)
        stmt = stmt.where(ExceptionRecord.created_at <= cutoff)
    return stmt


def _order(f: QueueFilter) -> list[Any]:
    key = f.sort.lstrip("-")
    if key not in SORTS:
        raise ValueError(f"sort must be one of {', '.join(SORTS)} (prefix - for descending)")
    column: Any = {
        "id": ExceptionRecord.id, "amount": func.abs(_amount()), "business_date": _business_date(),
        "interface": ExceptionRecord.interface, "reason_code": ExceptionRecord.reason_code,
        "status": ExceptionRecord.status,
        # Older first when ascending by age: age grows as created_at shrinks.
        "age": ExceptionRecord.created_at.desc() if not f.sort.startswith("-") else ExceptionRecord.created_at,
    }[key]
    if key != "age":
        column = column.desc() if f.sort.startswith("-") else column.asc()
    return [column.nulls_last(), ExceptionRecord.id.desc()]


def queue_item(e: ExceptionRecord, amount_cents: int | None, business_date: Any, now: dt.datetime) -> dict[str, Any]:
    """One queue row: the exception plus amount at stake, business date, age and whether replay applies."""
    created = e.created_at if e.created_at.tzinfo else e.created_at.replace(tzinfo=dt.UTC)
    if isinstance(business_date, str):  # SQLite returns coalesce() of dates as text
        business_date = dt.date.fromisoformat(business_date)
    return {
        **exception_json(e),
        "amount": money(amount_cents),
        "business_date": iso(business_date),
        "age_hours": round((now - created).total_seconds() / 3600, 1),
        "replayable": e.status == "open" and e.record_type in REPLAYABLE_RECORD_TYPES,
    }


def list_exceptions(
    session: Session, f: QueueFilter | None = None, *, page: int = 1, page_size: int = 50, **filters: Any
) -> dict[str, Any]:
    """One page of the queue (newest first unless sorted otherwise) with the total."""
    f = f or QueueFilter(**filters)
    page = max(1, page)
    page_size = max(1, min(page_size, PAGE_SIZE_MAX))
    total = session.scalar(_filtered(select(func.count(ExceptionRecord.id)).select_from(ExceptionRecord), f)) or 0
    pages = max(1, -(-total // page_size))
    if page > pages and total:
        raise LookupError(f"page {page} is past the last page ({pages})")
    rows = session.execute(
        _filtered(select(ExceptionRecord, _amount(), _business_date()), f)
        .order_by(*_order(f)).offset((page - 1) * page_size).limit(page_size)
    ).all()
    now = dt.datetime.now(dt.UTC)
    out_filters = {k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in asdict(f).items()}
    return {
        "total": total, "page": page, "page_size": page_size, "pages": pages, "filters": out_filters,
        "items": [queue_item(e, amount, day, now) for e, amount, day in rows],
    }


def exception_facets(session: Session) -> dict[str, list[str]]:
    """Distinct statuses, interfaces and reason codes present (for filter menus)."""
    return {
        "status": sorted(set(session.scalars(select(ExceptionRecord.status).distinct()))),
        "interface": sorted(set(session.scalars(select(ExceptionRecord.interface).distinct()))),
        "reason_code": sorted(set(session.scalars(select(ExceptionRecord.reason_code).distinct()))),
    }


def exception_detail(session: Session, exception_id: int) -> dict[str, Any]:
    """One exception with its stakes, event history and related audit entries."""
    row = session.execute(
        _with_stakes(select(ExceptionRecord, _amount(), _business_date())).where(ExceptionRecord.id == exception_id)
    ).first()
    if row is None:
        raise LookupError(f"no exception {exception_id}")
    exc = row[0]
    out = queue_item(exc, row[1], row[2], dt.datetime.now(dt.UTC))
    out.update(exception_json(exc, events=True))
    out["audit"] = [
        {"at": iso(a.at), "actor": a.actor, "action": a.action, "detail": a.detail}
        for a in session.scalars(
            select(AuditLog)
            .where(AuditLog.target.startswith(f"exception:{exc.id}:", autoescape=True))
            .order_by(AuditLog.id)
        )
    ]
    out["trace_key"] = trace_key_for(exc)
    out["replay_command"] = replay_command([exc.id]) if out["replayable"] else None
    return out


def replayable_ids(
    session: Session, ids: list[int], *, date_from: dt.date | None = None, date_to: dt.date | None = None
) -> list[int]:
    """Of these exception ids, the open, replayable ones whose business date is in range."""
    if not ids:
        return []
    f = QueueFilter(status="open", date_from=date_from, date_to=date_to)
    stmt = _filtered(select(ExceptionRecord.id), f).where(
        ExceptionRecord.id.in_(ids), ExceptionRecord.record_type.in_(sorted(REPLAYABLE_RECORD_TYPES))
    )
    return sorted(session.scalars(stmt))


def trace_key_for(exc: ExceptionRecord) -> str:
    """The key to trace an exception's record with (a line key, a file name, a message key)."""
    if exc.record_type == "file" and "|" in exc.record_key:
        return exc.record_key.split("|", 1)[0]
    if exc.record_type == "message" and exc.detail and exc.detail.get("control_id"):
        return str(exc.detail["control_id"])
    return exc.record_key
