"""The audit log of manual actions: crosswalk edits, replays, discards. No PHI in ``detail``."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from carefabric.store.models import AuditLog


def record(
    session: Session, actor: str, action: str, target: str, detail: dict[str, Any] | None = None
) -> AuditLog:
    """Add one audit entry in the caller's transaction and return it."""
    entry = AuditLog(actor=actor, action=action, target=target, detail=detail)
    session.add(entry)
    return entry
