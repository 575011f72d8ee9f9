"""Exception replay: after a crosswalk or master-data fix, map and route held records again.

An operator (or ``erp_master_data``, for exceptions a new mapping resolves) names what to
replay: exception ids, a reason code, or every open exception of an interface. Held charge lines
are rebuilt from the store, mapped with today's crosswalks, routed to billing (idempotency key per
line) and posted to the ERP through the outbox for their business date (``erp_posting.post_day``:
only what no live document carries yet); their exceptions become ``replayed``. A line that still
does not map stays open with one more attempt recorded. An ``ERP_REJECTED`` document is rebuilt
from its records and sent again; its exception closes when its records post. A
``CONFLICTING_RESEND`` (an HL7 message re-sent under its MSH-10 with other content) is accepted
as a correction (``corrections``): the lines in effect are reversed and the new version's lines
routed and posted under their own keys. Every replay is in the audit log with its actor.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.engine import Engine

from carefabric.clients.billing import BillingClient
from carefabric.clients.erp import ErpClient
from carefabric.interfaces import corrections, payer_remittance
from carefabric.interfaces.ehr_ingest import route_charges, supply_row
from carefabric.interfaces.erp_master_data import charge_from_row
from carefabric.interfaces.erp_posting import post_day
from carefabric.mapping import Held, map_charge
from carefabric.money import to_cents
from carefabric.store import audit, exceptions_repo
from carefabric.store.bulk import insert_ignore, table_of
from carefabric.store.crosswalks import Crosswalks
from carefabric.store.db import session_scope
from carefabric.store.models import Charge, ErpPosting, ExceptionRecord, InboundFile, Remittance, SupplyUsage
from carefabric.store.types import utcnow

INTERFACE = "exception_replay"


def select_exceptions(
    engine: Engine, *, exception_ids: list[int] | None = None, reason_code: str | None = None, interface: str | None = None
) -> list[int]:
    """Ids of the open exceptions a replay request names (at least one criterion is required)."""
    if not (exception_ids or reason_code or interface):
        raise ValueError("name exception ids, a reason code or an interface to replay")
    with session_scope(engine) as s:
        query = select(ExceptionRecord.id).where(ExceptionRecord.status == "open")
        if exception_ids:
            query = query.where(ExceptionRecord.id.in_(exception_ids))
        if reason_code:
            query = query.where(ExceptionRecord.reason_code == reason_code)
        if interface:
            query = query.where(ExceptionRecord.interface == interface)
        return sorted(s.scalars(query))


def remap_charges(engine: Engine, exception_ids: list[int], *, actor: str) -> dict[str, Any]:
    """Map the held charges behind these exceptions again; returns the line keys now mapped."""
    with session_scope(engine) as s:
        cw = Crosswalks.load(s)
        pairs = s.execute(
            select(ExceptionRecord, Charge)
            .join(Charge, Charge.line_key == ExceptionRecord.record_key)
            .where(
                ExceptionRecord.id.in_(exception_ids),
                ExceptionRecord.record_type == "charge",
                ExceptionRecord.status == "open",  # a replayed or discarded one is not replayed again
            )
        ).all()
        mapped_keys: list[str] = []
        still: dict[str, int] = defaultdict(int)
        updates, supplies = [], []
        for exc, row in pairs:
            outcome = map_charge(charge_from_row(row), cw)
            if isinstance(outcome, Held):
                still[outcome.reason_code] += 1
                # Same cause: one more attempt on the same exception. New cause: its own exception.
                exceptions_repo.open_exception(
                    s, kind="business", reason_code=outcome.reason_code, interface=exc.interface, record_type="charge",
                    record_key=row.line_key, summary=outcome.summary, detail=outcome.detail, actor=actor,
                )
                if outcome.reason_code != exc.reason_code:
                    exceptions_repo.mark_replayed(s, exc, actor=actor, note=f"now held for {outcome.reason_code}")
                continue
            priced = outcome.charge  # a line that had no amount is priced from the chargemaster now
            updates.append({"b_key": row.line_key, "b_company": outcome.company, "b_cc": outcome.cost_center,
                            "b_acct": outcome.revenue_account, "b_item": outcome.erp_item,
                            "b_amount": to_cents(priced.extended_amount),
                            "b_unit": to_cents(priced.unit_amount) if priced.unit_amount is not None else None,
                            "b_priced": "cdm" if row.priced_from == "pending" else row.priced_from})
            if outcome.is_supply:
                supplies.append(supply_row(outcome, row.business_date or row.transaction_date))
            exceptions_repo.mark_replayed(s, exc, actor=actor, note="mapped after crosswalk fix")
            mapped_keys.append(row.line_key)
        if updates:
            table = table_of(Charge)
            s.connection().execute(
                update(table).where(table.c.line_key == bindparam("b_key")).values(
                    status="mapped", company=bindparam("b_company"), cost_center=bindparam("b_cc"),
                    revenue_account=bindparam("b_acct"), erp_item=bindparam("b_item"), amount_cents=bindparam("b_amount"),
                    unit_amount_cents=bindparam("b_unit"), priced_from=bindparam("b_priced"), updated_at=utcnow(),
                ),
                updates,
            )
        insert_ignore(s, SupplyUsage, supplies, ["line_key"])
        audit.record(s, actor, "replay", f"exceptions {exception_ids[:50]}", {"mapped": len(mapped_keys), "still_held": dict(still)})
    return {"mapped": mapped_keys, "still_held": dict(still)}


def rejected_document_dates(engine: Engine, exception_ids: list[int]) -> set[Any]:
    """Business dates of the rejected ERP documents behind these (``ERP_REJECTED``) exceptions."""
    with session_scope(engine) as s:
        return set(
            s.scalars(
                select(ErpPosting.business_date)
                .join(ExceptionRecord, ExceptionRecord.record_key == ErpPosting.external_id)
                .where(ExceptionRecord.id.in_(exception_ids), ExceptionRecord.record_type == "posting",
                       ExceptionRecord.status == "open")
            )
        )


def replay_files(engine: Engine, exception_ids: list[int], *, actor: str) -> set[Any]:
    """835 files held for a crosswalk gap (unknown payer or payee) read again; their dates.

    A file that now posts marks its exception replayed (its suspense clears when the date posts);
    one that still does not stays open with one more attempt.
    """
    with session_scope(engine) as s:
        held = [(e.id, e.record_key) for e in s.scalars(
            select(ExceptionRecord).where(ExceptionRecord.id.in_(exception_ids), ExceptionRecord.record_type == "file",
                                          ExceptionRecord.reason_code.in_(payer_remittance.REPLAYABLE_FILE_REASONS),
                                          ExceptionRecord.status == "open"))]
    dates: set[Any] = set()
    for exception_id, record_key in held:
        outcome = payer_remittance.reprocess_file(engine, record_key)
        if outcome.get("status") != "accepted":
            continue
        with session_scope(engine) as s:
            exceptions_repo.mark_replayed(s, exception_id, actor=actor,
                                          note=f"835 read again: {outcome.get('transactions', 0)} transaction(s) post")
            dates.update(s.scalars(
                select(Remittance.business_date).join(InboundFile, InboundFile.id == Remittance.file_id)
                .where(InboundFile.name == record_key.partition("|")[0], Remittance.status == "balanced")))
    return dates


def replay(
    engine: Engine, billing: BillingClient, erp: ErpClient, *, exception_ids: list[int], actor: str, mode: str = "summary"
) -> dict[str, Any]:
    """Re-map, route and post the records behind ``exception_ids``."""
    rejected_dates = rejected_document_dates(engine, exception_ids)
    # CONFLICTING_RESEND: replaying accepts the held version as a correction (reversal + new lines).
    corrected = corrections.accept(engine, exception_ids, actor=actor)
    remapped = remap_charges(engine, exception_ids, actor=actor)
    keys = remapped["mapped"] + corrected["line_keys"]
    routed = route_charges(engine, billing, line_keys=keys) if keys else {"routed": 0}
    dates = set(rejected_dates) | replay_files(engine, exception_ids, actor=actor)
    if keys:
        with session_scope(engine) as s:
            dates.update(s.scalars(select(Charge.business_date).where(Charge.line_key.in_(keys))))
    posted = {day.isoformat(): post_day(engine, erp, day, mode=mode) for day in sorted(dates)}
    return {"exceptions": len(exception_ids), "mapped": len(keys), "still_held": remapped["still_held"], "routed": routed,
            "posted": posted, "corrections": corrected["accepted"]}
