"""Incremental-sync watermarks: where each (interface, name) feed got to, as text."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from carefabric.store.bulk import upsert
from carefabric.store.models import Watermark


def get(session: Session, interface: str, name: str, default: str | None = None) -> str | None:
    """The stored value, or ``default`` when the feed never ran."""
    value = session.execute(
        select(Watermark.value).where(Watermark.interface == interface, Watermark.name == name)
    ).scalar_one_or_none()
    return default if value is None else value


def set(session: Session, interface: str, name: str, value: str) -> None:  # noqa: A001 - module API
    """Store ``value`` (insert or overwrite) in the caller's transaction."""
    upsert(
        session, Watermark, [{"interface": interface, "name": name, "value": value}], ["interface", "name"]
    )
