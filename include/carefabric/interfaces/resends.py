"""HL7 messages re-sent under an MSH-10 already stored: silent when identical, held when not.

MSH-10 with MSH-3/4 is the message's idempotency key, so the raw store keeps one row per key and
a re-run never posts twice. A sender that re-sends the same key with *other* content (a corrected
amount, an added line) must not be dropped silently either. The policy (``docs/CONTRACTS.md``,
README "Decisions"):

* an identical re-send (same payload as the stored message or any stored version) is skipped
  without a trace, as before;
* a different one is kept in ``raw_message_versions`` as version 2, 3 ... (``held``), and one
  business exception ``CONFLICTING_RESEND`` opens for a person to decide. Nothing from it routes
  or posts until then: its encounter and lines are not written.
* The decision goes through the ordinary exception actions: ``discard`` keeps the original
  (the version becomes ``discarded``); ``replay`` accepts it as a correction
  (``carefabric.interfaces.corrections``).

Called by ``ehr_ingest`` once per written batch, and only when the batch met a key it did not
insert (a re-send) or repeated a key inside itself, so the usual path costs no query.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select, tuple_
from sqlalchemy.orm import Session

from carefabric import phi
from carefabric.hl7.canonical import type_label
from carefabric.store import exceptions_repo
from carefabric.store.models import Charge, RawMessage
from carefabric.store.models.ingest import RawMessageVersion

REASON = "CONFLICTING_RESEND"
RECORD_TYPE = "message_version"
_CHUNK = 500

Key = tuple[str, str, str]  # (sender, control id, message type): the raw store's natural key


def key_of(row: dict[str, Any]) -> Key:
    return (row["sender"], row["control_id"], row["message_type"])


def sha256(payload: str) -> str:
    return hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()


def _stored(session: Session, keys: Iterable[Key]) -> dict[Key, RawMessage]:
    keys = list(set(keys))
    found: dict[Key, RawMessage] = {}
    cols = tuple_(RawMessage.sender, RawMessage.control_id, RawMessage.message_type)
    for start in range(0, len(keys), _CHUNK):
        for row in session.scalars(select(RawMessage).where(cols.in_(keys[start : start + _CHUNK]))):
            found[(row.sender, row.control_id, row.message_type)] = row
    return found


def _versions(session: Session, message_ids: Iterable[int]) -> dict[int, dict[str, int]]:
    """Per stored message: content sha256 -> version number of every later version."""
    ids = sorted(set(message_ids))
    out: dict[int, dict[str, int]] = {i: {} for i in ids}
    for start in range(0, len(ids), _CHUNK):
        rows = session.execute(
            select(RawMessageVersion.message_id, RawMessageVersion.content_sha256, RawMessageVersion.version).where(
                RawMessageVersion.message_id.in_(ids[start : start + _CHUNK])
            )
        )
        for message_id, sha, version in rows:
            out[message_id][sha] = version
    return out


def triage(
    session: Session, candidates: list[tuple[int, dict[str, Any], list[dict[str, Any]]]], *,
    interface: str, business_date: dt.date | None,
) -> set[int]:
    """Which of these messages are re-sends; the different ones become held versions.

    ``candidates`` are ``(index, raw row, charge rows)`` for the HL7 messages of a batch whose key
    was already stored (by an earlier batch, or by this one for a repeat inside it). Returns the
    indexes that must not be written as records (identical re-sends and held versions alike).
    """
    stored = _stored(session, (key_of(raw) for _, raw, _ in candidates))
    versions = _versions(session, (m.id for m in stored.values()))
    resent: set[int] = set()
    for index, raw, lines in candidates:
        original = stored.get(key_of(raw))
        if original is None:
            continue  # not stored after all (the caller only guessed): a new message
        if original.file_id == raw.get("file_id") and original.position == raw.get("position"):
            continue  # the row this batch just inserted
        resent.add(index)
        if original.payload == raw["payload"]:
            continue
        digest = sha256(raw["payload"])
        known = versions[original.id]
        if digest in known:
            continue
        number = max(known.values(), default=1) + 1
        known[digest] = number
        version = RawMessageVersion(
            message_id=original.id, version=number, content_sha256=digest, payload=raw["payload"],
            file_id=raw.get("file_id"), position=raw.get("position"), business_date=business_date, status="held",
        )
        session.add(version)
        session.flush()
        _hold(session, original, version, lines, interface=interface)
    return resent


def _hold(session: Session, original: RawMessage, version: RawMessageVersion, lines: list[dict[str, Any]],
          *, interface: str) -> None:
    """Open the CONFLICTING_RESEND exception, with the money at stake on each side (no PHI)."""
    in_effect = session.execute(
        select(func.count(), func.coalesce(func.sum(Charge.amount_cents), 0)).where(
            Charge.source == original.sender, Charge.message_control_id == original.control_id,
            Charge.status.in_(("mapped", "routed")),
        )
    ).one()
    cid = phi.code(original.control_id, "MSH-10")
    kind = type_label(original.message_type)
    exceptions_repo.open_exception(
        session, kind="business", reason_code=REASON, interface=interface, record_type=RECORD_TYPE,
        record_key=record_key(original, version.version), message_id=original.id,
        summary=(f"{kind} MSH-10 {cid} re-sent with different content: version {version.version} held for a "
                 "decision (replay accepts it as a correction, discard keeps the original)"),
        detail={
            "version_id": version.id, "version": version.version, "message_type": kind, "control_id": cid,
            "file_id": version.file_id, "position": version.position,
            "lines_in_effect": int(in_effect[0]), "amount_in_effect_cents": int(in_effect[1]),
            "new_lines": len(lines), "new_amount_cents": sum(int(r["amount_cents"]) for r in lines),
        },
    )


def record_key(original: RawMessage, version: int) -> str:
    """The exception's key: the raw store key and the version number (codes, no PHI)."""
    return f"{original.sender}|{original.control_id}|{original.message_type}|v{version}"[:255]
