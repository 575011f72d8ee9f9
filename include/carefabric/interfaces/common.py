"""Pieces every interface shares: file registration and archiving, exceptions from held records,
quality results, and the record of a task that failed."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import shutil
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from carefabric.config import archive_dir
from carefabric.mapping import Held
from carefabric.store import exceptions_repo
from carefabric.store.bulk import insert_ignore, upsert
from carefabric.store.models import InboundFile, QualityResult

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")
DIGEST_CHUNK = 1 << 20


class UnsafeFileName(ValueError):
    """A remote or landing file name that could escape its folder (``..``, separators, control bytes)."""


def safe_name(name: str) -> str:
    """Return ``name`` if it is a plain file name, else raise ``UnsafeFileName``.

    Names come from peers we do not control (an SFTP listing, a shared folder); a name like
    ``../../etc/cron.d/x`` must never become a local path.
    """
    if not SAFE_NAME.fullmatch(name) or ".." in name:  # fullmatch: "$" would let a trailing "\n" through
        raise UnsafeFileName(f"unsafe file name {name!r}")
    return name


def file_digest(path: Path) -> tuple[str, int]:
    """sha256 and size of a file, streamed (bounded memory whatever the size)."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(DIGEST_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def archive_copy(path: Path, source: str, sha256: str, day: dt.date) -> Path:
    """Copy an inbound file into ``archive/<source>/<date>/<sha12>_<name>`` before parsing it."""
    target_dir = archive_dir() / source / day.isoformat()
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / f"{sha256[:12]}_{path.name}"
    if not target.exists():
        tmp = target.with_suffix(target.suffix + ".part")
        shutil.copyfile(path, tmp)
        tmp.replace(target)
    return target


def register_file(
    session: Session, *, source: str, interface: str, name: str, sha256: str, size: int
) -> tuple[InboundFile, bool]:
    """Record an inbound file once; returns (row, is_new). A known sha256 is the same file."""
    new = insert_ignore(
        session,
        InboundFile,
        [{"source": source, "interface": interface, "name": name, "sha256": sha256, "size_bytes": size, "status": "received"}],
        ["source", "sha256"],
    )
    row = session.scalars(select(InboundFile).where(InboundFile.source == source, InboundFile.sha256 == sha256)).one()
    return row, bool(new)


def held_to_exceptions(held: list[Held], *, interface: str, message_ids: dict[str, int] | None = None) -> list[dict[str, Any]]:
    """Business exceptions for held records, ready for ``exceptions_repo.open_exceptions``."""
    return [
        {
            "kind": "business",
            "reason_code": h.reason_code,
            "interface": interface,
            "record_type": h.record_type,
            "record_key": h.record_key,
            "summary": h.summary,
            "detail": h.detail,
            "message_id": (message_ids or {}).get(h.record_key),
        }
        for h in held
    ]


def open_business_exception(
    session: Session, *, reason_code: str, interface: str, record_type: str, record_key: str, summary: str, detail: dict[str, Any] | None = None
) -> None:
    exceptions_repo.open_exception(
        session,
        kind="business",
        reason_code=reason_code,
        interface=interface,
        record_type=record_type,
        record_key=record_key,
        summary=summary,
        detail=detail,
    )


def store_quality(session: Session, *, interface: str, dataset: str, scope: str, business_date: dt.date | None, result: Any) -> None:
    """Keep one GX result (``carefabric.quality.QualityResult``) for the nightly report."""
    upsert(
        session,
        QualityResult,
        [
            {
                "interface": interface,
                "dataset": dataset,
                "scope": scope,
                "business_date": business_date,
                "success": bool(result.success),
                "evaluated": int(result.evaluated),
                "failed": int(result.failed),
                "rows": int(result.rows),
                "results": result.to_dict(),
            }
        ],
        ["interface", "dataset", "scope"],
    )
    if not result.success:
        open_business_exception(
            session,
            reason_code="GX_VALIDATION_FAILED",
            interface=interface,
            record_type=dataset,
            record_key=scope,
            summary=f"{dataset}: {result.failed} of {result.evaluated} expectations failed",
            detail={"failed": [outcome.label for outcome in result.failures]},
        )


def record_task_failure(session: Session, *, interface: str, task_id: str, run_id: str, error: str, transient: bool) -> None:
    """What a failure callback writes: the failure is in the exception queue, not only in a log."""
    exceptions_repo.open_exception(
        session,
        kind="transient" if transient else "business",
        reason_code="TASK_FAILED" if not transient else "PEER_UNAVAILABLE",
        interface=interface,
        record_type="task",
        record_key=f"{run_id}:{task_id}",
        summary=error[:480],
        detail={"task_id": task_id, "run_id": run_id},
    )


def record_task_success(session: Session, *, task_id: str, run_id: str, try_number: int | None = None) -> int:
    """What a success callback writes: this task's failure exceptions for this run are resolved."""
    return exceptions_repo.resolve_for(
        session, record_type="task", record_keys=[f"{run_id}:{task_id}"],
        reason_codes=["PEER_UNAVAILABLE", "TASK_FAILED"],
        note=f"task succeeded on try {try_number}" if try_number else "task succeeded",
    )
