"""The exception queue: open (idempotently), resolve, mark replayed, discard, list.

One row per (reason_code, record_type, record_key): a re-run that hits the same problem bumps
``attempts`` and adds an event instead of opening a second exception. Summaries and details
must carry no PHI (tokens and masked values only).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import insert, select, tuple_, update
from sqlalchemy.orm import Session, selectinload

from carefabric.store import audit
from carefabric.store.bulk import insert_ignore, table_of
from carefabric.store.models import EXCEPTION_KINDS, ExceptionEvent, ExceptionRecord
from carefabric.store.models.ingest import RawMessageVersion
from carefabric.store.types import utcnow

SYSTEM = "system"
_LOOKUP_CHUNK = 500


def _event(exc: ExceptionRecord, action: str, actor: str, note: str | None = None) -> None:
    exc.events.append(ExceptionEvent(action=action, actor=actor, note=note, at=utcnow()))


def open_exception(
    session: Session,
    *,
    kind: str,
    reason_code: str,
    interface: str,
    record_type: str,
    record_key: str,
    summary: str,
    detail: dict[str, Any] | None = None,
    message_id: int | None = None,
    actor: str = SYSTEM,
) -> ExceptionRecord:
    """Open the exception for (reason_code, record_type, record_key), or count one more occurrence.

    New: status ``open``, attempts 1, event ``opened``. Already open: attempts + 1, event
    ``reoccurred``. Resolved or replayed: reopened (attempts + 1, event ``reopened``).
    Discarded: stays discarded (an operator decided so), attempts + 1, event ``reoccurred``.
    """
    return open_exceptions(
        session,
        [
            {
                "kind": kind,
                "reason_code": reason_code,
                "interface": interface,
                "record_type": record_type,
                "record_key": record_key,
                "summary": summary,
                "detail": detail,
                "message_id": message_id,
            }
        ],
        actor=actor,
    )[0]


def open_exceptions(
    session: Session, items: Sequence[dict[str, Any]], *, actor: str = SYSTEM, returning: bool = True
) -> list[ExceptionRecord]:
    """``open_exception`` for many at once (one lookup per 500 keys); returns rows in input order.

    Each item has the keyword arguments of ``open_exception``. The same key twice in ``items``
    counts as two occurrences. ``returning=False`` returns nothing and skips loading the rows
    this call created (an ingest batch opens hundreds and reads none of them back).
    """
    keys = [(i["reason_code"], i["record_type"], i["record_key"]) for i in items]
    for item in items:
        if item["kind"] not in EXCEPTION_KINDS:
            raise ValueError(f"exception kind must be one of {EXCEPTION_KINDS}, not {item['kind']!r}")
    now = utcnow()
    # Insert the keys not seen yet with attempts 0 (ON CONFLICT DO NOTHING: safe when two tasks
    # race); a row still at attempts 0 is one this call created.
    fresh: dict[tuple[str, str, str], dict[str, Any]] = {}
    for item, key in zip(items, keys, strict=True):
        fresh.setdefault(
            key,
            {
                "kind": item["kind"],
                "reason_code": key[0],
                "interface": item["interface"],
                "record_type": key[1],
                "record_key": key[2],
                "summary": str(item["summary"])[:500],
                "detail": item.get("detail"),
                "message_id": item.get("message_id"),
                "status": "open",
                "attempts": 0,
                "created_at": now,
                "updated_at": now,
            },
        )
    insert_ignore(
        session, ExceptionRecord, list(fresh.values()), ["reason_code", "record_type", "record_key"]
    )
    counts = Counter(keys)
    created = _open_created(session, [k for k, n in counts.items() if n == 1], fresh, actor)
    rest = [(item, key) for item, key in zip(items, keys, strict=True) if key not in created]
    existing = _by_keys(session, set(keys) if returning else {key for _, key in rest})
    for item, key in rest:
        _occurrence(existing[key], item, actor, now)
    session.flush()
    return [existing[key] for key in keys] if returning else []


def _open_created(
    session: Session, keys: list[tuple[str, str, str]], rows: dict[tuple[str, str, str], dict[str, Any]], actor: str
) -> set[tuple[str, str, str]]:
    """Set-based ``opened`` for keys this call just created (attempts 0 -> 1, one event each).

    The same outcome as ``_occurrence`` on a new row, without loading the rows: one UPDATE ...
    RETURNING per 500 keys and one multi-row INSERT of events, where the ORM issued an UPDATE
    per row (a file with 700 unmapped lines waited seconds on the database for it).
    """
    tbl = table_of(ExceptionRecord)
    cols = tuple_(tbl.c.reason_code, tbl.c.record_type, tbl.c.record_key)
    claimed: dict[tuple[str, str, str], int] = {}
    for start in range(0, len(keys), _LOOKUP_CHUNK):
        stmt = (
            update(tbl)
            .where(tbl.c.attempts == 0, cols.in_(keys[start : start + _LOOKUP_CHUNK]))
            .values(attempts=1)
            .returning(tbl.c.id, tbl.c.reason_code, tbl.c.record_type, tbl.c.record_key)
        )
        for exc_id, *key in session.execute(stmt):
            claimed[(key[0], key[1], key[2])] = exc_id
    if claimed:
        at = utcnow()
        session.execute(
            insert(table_of(ExceptionEvent)),
            [{"exception_id": exc_id, "action": "opened", "actor": actor, "note": rows[key]["summary"], "at": at}
             for key, exc_id in claimed.items()],
        )
    return set(claimed)


def _occurrence(exc: ExceptionRecord, item: dict[str, Any], actor: str, now: Any) -> None:
    """One occurrence of an exception: opened (first), reoccurred, or reopened (was closed)."""
    summary = str(item["summary"])[:500]
    exc.attempts += 1
    if exc.attempts == 1:
        _event(exc, "opened", actor, summary)
        return
    exc.summary = summary
    exc.kind = item["kind"]
    exc.interface = item["interface"]
    if item.get("detail") is not None:
        exc.detail = item["detail"]
    if item.get("message_id") is not None:
        exc.message_id = item["message_id"]
    exc.updated_at = now
    if exc.status in ("resolved", "replayed"):
        exc.status = "open"
        exc.closed_at = None
        _event(exc, "reopened", actor, summary)
    else:
        _event(exc, "reoccurred", actor, summary)


def _by_keys(
    session: Session, keys: Iterable[tuple[str, str, str]]
) -> dict[tuple[str, str, str], ExceptionRecord]:
    keys = list(keys)
    found: dict[tuple[str, str, str], ExceptionRecord] = {}
    cols = tuple_(ExceptionRecord.reason_code, ExceptionRecord.record_type, ExceptionRecord.record_key)
    for start in range(0, len(keys), _LOOKUP_CHUNK):
        chunk = keys[start : start + _LOOKUP_CHUNK]
        rows = session.scalars(
            select(ExceptionRecord).options(selectinload(ExceptionRecord.events)).where(cols.in_(chunk))
        )
        for exc in rows:
            found[(exc.reason_code, exc.record_type, exc.record_key)] = exc
    return found


def get(session: Session, exception_id: int) -> ExceptionRecord:
    """The exception with this id (``LookupError`` if there is none)."""
    exc = session.get(ExceptionRecord, exception_id)
    if exc is None:
        raise LookupError(f"no exception {exception_id}")
    return exc


def find(session: Session, reason_code: str, record_type: str, record_key: str) -> ExceptionRecord | None:
    """The exception for this key, whatever its status."""
    return session.scalars(
        select(ExceptionRecord).where(
            ExceptionRecord.reason_code == reason_code,
            ExceptionRecord.record_type == record_type,
            ExceptionRecord.record_key == record_key,
        )
    ).one_or_none()


def _close(
    session: Session, exc: ExceptionRecord | int, status: str, actor: str, note: str | None
) -> ExceptionRecord:
    exc = get(session, exc) if isinstance(exc, int) else exc
    now = utcnow()
    exc.status = status
    exc.updated_at = now
    exc.closed_at = now
    _event(exc, status, actor, note)
    session.flush()
    return exc


def resolve(
    session: Session, exc: ExceptionRecord | int, *, actor: str = SYSTEM, note: str | None = None
) -> ExceptionRecord:
    """Mark it resolved (the cause went away: a retry succeeded, a later run processed it)."""
    return _close(session, exc, "resolved", actor, note)


def resolve_for(
    session: Session,
    *,
    record_type: str,
    record_keys: Iterable[str],
    reason_codes: Iterable[str] | None = None,
    actor: str = SYSTEM,
    note: str | None = None,
) -> int:
    """Resolve every open exception about these records (optionally only these reasons); count them.

    What a flow calls once a record finally went through, e.g. after a replay or a retry.
    """
    keys = list(record_keys)
    reasons = list(reason_codes) if reason_codes is not None else None
    count = 0
    for start in range(0, len(keys), _LOOKUP_CHUNK):
        stmt = (
            select(ExceptionRecord)
            .options(selectinload(ExceptionRecord.events))
            .where(
                ExceptionRecord.status == "open",
                ExceptionRecord.record_type == record_type,
                ExceptionRecord.record_key.in_(keys[start : start + _LOOKUP_CHUNK]),
            )
        )
        if reasons is not None:
            stmt = stmt.where(ExceptionRecord.reason_code.in_(reasons))
        for exc in session.scalars(stmt):
            _close(session, exc, "resolved", actor, note)
            count += 1
    return count


def mark_replayed(
    session: Session, exc: ExceptionRecord | int, *, actor: str, note: str | None = None
) -> ExceptionRecord:
    """Mark it replayed (an operator fixed the cause and re-ran the record); audited."""
    exc = _close(session, exc, "replayed", actor, note)
    audit.record(session, actor, "exception.replay", _target(exc), {"exception_id": exc.id, "note": note})
    return exc


def discard(session: Session, exc: ExceptionRecord | int, *, actor: str, note: str) -> ExceptionRecord:
    """Discard it (an operator decided nothing is to be done); audited, ``note`` required."""
    if not note:
        raise ValueError("discarding an exception needs a note saying why")
    exc = _close(session, exc, "discarded", actor, note)
    audit.record(session, actor, "exception.discard", _target(exc), {"exception_id": exc.id, "note": note})
    if exc.record_type == "message_version" and exc.detail and exc.detail.get("version_id") is not None:
        _decide_version(session, int(exc.detail["version_id"]), actor)
    return exc


def _decide_version(session: Session, version_id: int, actor: str) -> None:
    """A discarded CONFLICTING_RESEND: its held message version is discarded too (the original
    stands). Here, not in the console, so every way of discarding (CLI, console, API) records it."""
    version = session.get(RawMessageVersion, version_id)
    if version is not None and version.status == "held":
        version.status, version.decided_at, version.decided_by = "discarded", utcnow(), actor
        session.flush()


def list_open(
    session: Session, interface: str | None = None, reason_code: str | None = None
) -> list[ExceptionRecord]:
    """Open exceptions, oldest first, optionally for one interface and/or reason."""
    stmt = select(ExceptionRecord).where(ExceptionRecord.status == "open")
    if interface is not None:
        stmt = stmt.where(ExceptionRecord.interface == interface)
    if reason_code is not None:
        stmt = stmt.where(ExceptionRecord.reason_code == reason_code)
    return list(session.scalars(stmt.order_by(ExceptionRecord.created_at, ExceptionRecord.id)))


def _target(exc: ExceptionRecord) -> str:
    return f"exception:{exc.id}:{exc.reason_code}:{exc.record_type}:{exc.record_key}"[:255]
