"""Crosswalk rows, their version history, and the audit log."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from carefabric.console.queries.common import (
    iso,
)
from carefabric.store.crosswalks import SPECS
from carefabric.store.models import (
    AuditLog,
    CrosswalkHistory,
)

# --------------------------------------------------------------------------- crosswalks


def crosswalk_rows(session: Session, table: str) -> dict[str, Any]:
    """Every row of one crosswalk with its version and who changed it last."""
    if table not in SPECS:
        raise LookupError(f"no crosswalk {table!r} (one of {', '.join(SPECS)})")
    spec = SPECS[table]
    order = [getattr(spec.model, c) for c in spec.key]
    rows = []
    for r in session.scalars(select(spec.model).order_by(*order)):
        row = {c: getattr(r, c) for c in (*spec.key, *spec.values)}
        row.update(key="|".join(str(getattr(r, c)) for c in spec.key), version=r.version,
                   valid_from=iso(r.valid_from), changed_by=r.changed_by)
        rows.append(row)
    return {"table": table, "key": list(spec.key), "values": list(spec.values), "rows": rows}


def crosswalks_overview(session: Session) -> dict[str, Any]:
    out = {}
    for name, spec in SPECS.items():
        count, version = session.execute(select(func.count(), func.max(spec.model.version)).select_from(spec.model)).one()
        out[name] = {"rows": count, "max_version": version or 0}
    return out


LIMIT_MAX = 1000


def changes(before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Field by field, what an edit changed (a new row: every field set; bookkeeping fields skipped)."""
    before, after = before or {}, after or {}
    skip = {"version", "valid_from", "changed_by", "changed_at"}
    fields = [k for k in dict.fromkeys([*before, *after]) if k not in skip]
    return [{"field": k, "before": before.get(k), "after": after.get(k)} for k in fields if before.get(k) != after.get(k)]


def crosswalk_history(session: Session, table: str | None = None, key: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Newest changes first, each with its before/after diff."""
    stmt = select(CrosswalkHistory)
    if table:
        stmt = stmt.where(CrosswalkHistory.crosswalk == table)
    if key:
        stmt = stmt.where(CrosswalkHistory.key == key)
    return [
        {"crosswalk": h.crosswalk, "key": h.key, "version": h.version, "action": h.action, "before": h.before,
         "after": h.after, "changes": changes(h.before, h.after), "changed_at": iso(h.changed_at),
         "changed_by": h.changed_by}
        for h in session.scalars(stmt.order_by(CrosswalkHistory.id.desc()).limit(max(1, min(limit, LIMIT_MAX))))
    ]


def audit_summary(action: str, target: str, detail: dict[str, Any] | None) -> str:
    """One readable line for an audit entry (the detail dict is kept for the JSON API)."""
    d = detail or {}
    if action == "crosswalk.set":
        fields = ", ".join(f"{k}={v}" for k, v in d.items() if k != "version" and v not in (None, ""))
        return f"{target.removeprefix('crosswalk:')} set to version {d.get('version')}: {fields}"
    if action.startswith("exception."):
        parts = target.split(":")
        what = f"exception {parts[1]} ({parts[2]})" if len(parts) > 2 else target
        extra = f": {d['note']}" if d.get("note") else ""
        run = f" as run {d['dag_run_id']}" if d.get("dag_run_id") else ""
        return f"{action.removeprefix('exception.').replace('_', ' ')} {what}{run}{extra}"
    return f"{action} {target} " + ", ".join(f"{k}={v}" for k, v in d.items())


def audit_entries(session: Session, limit: int = 100) -> list[dict[str, Any]]:
    return [
        {"id": a.id, "at": iso(a.at), "actor": a.actor, "action": a.action, "target": a.target, "detail": a.detail,
         "summary": audit_summary(a.action, a.target, a.detail)}
        for a in session.scalars(select(AuditLog).order_by(AuditLog.id.desc()).limit(max(1, min(limit, LIMIT_MAX))))
    ]
