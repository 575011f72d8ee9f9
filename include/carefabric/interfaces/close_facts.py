"""The facts of a business date the finance email reports beside the reconciliation items.

Money that did not post (held charge lines, 835 cash not posted or parked in suspense) by
reason in dollars, open exceptions counted by the business date of their record, the day's data
quality results, whether anything arrived at all, and the feeds that did not arrive. Kept apart
from ``claims_reconciliation`` (which runs the checks) because each reads the store on its own.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from carefabric.interfaces.bank_statement import deposits_on
from carefabric.store import outbox
from carefabric.store.db import session_scope
from carefabric.store.models import (
    Charge,
    ErpPosting,
    ExceptionRecord,
    QualityResult,
    Remittance,
)

POSTED_REMIT = ("balanced", "posted")


def money_held(engine: Engine, day: dt.date) -> dict[str, Any]:
    """Money of the date that did not post, in cents, by reason: held charge lines (by the reason
    of their open exception), 835 cash not posted, and 835 cash posted to suspense because the
    bank confirmed it (by the remittance's status)."""
    with session_scope(engine) as s:
        charges = s.execute(
            select(ExceptionRecord.reason_code, func.count(), func.coalesce(func.sum(Charge.amount_cents), 0))
            .join(ExceptionRecord, (ExceptionRecord.record_key == Charge.line_key) & (ExceptionRecord.record_type == "charge"))
            .where(Charge.business_date == day, Charge.status == "held", ExceptionRecord.status == "open")
            .group_by(ExceptionRecord.reason_code)
        ).all()
        remits = s.execute(
            select(Remittance.status, Remittance.trace_number, Remittance.payment_cents)
            .where(Remittance.business_date == day, Remittance.status.not_in(POSTED_REMIT))
        ).all()
        in_suspense = outbox.posted_keys(s, "SUSPENSE", "suspense", [t for _, t, _ in remits if t])
    not_posted: dict[str, dict[str, int]] = {}
    suspense: dict[str, dict[str, int]] = {}
    for status, trace, cents in remits:
        into = (suspense if trace in in_suspense else not_posted).setdefault(status, {"transactions": 0, "cents": 0})
        into["transactions"] += 1
        into["cents"] += int(cents or 0)
    return {
        "charges": {reason: {"lines": int(n), "cents": int(c)} for reason, n, c in charges},
        "remittances": not_posted,
        "suspense": suspense,
        "charges_cents": sum(int(c) for _, _, c in charges),
        "remittances_cents": sum(v["cents"] for v in not_posted.values()),
        "suspense_cents": sum(v["cents"] for v in suspense.values()),
    }


def exceptions_opened(engine: Engine, day: dt.date) -> dict[str, int]:
    """Open exceptions of the business date, by reason code: what still holds the day back.

    An exception belongs to the date of its record where the record has one (a held charge line,
    an ERP document); file, remittance and task exceptions have none, and count for the date
    when they were opened on it or on the morning after (the close runs the next morning), so a
    later day's exceptions never land in this day's email.
    """
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    end = start + dt.timedelta(days=2)
    by_record = (
        (Charge, "charge", Charge.line_key, Charge.business_date),
        (ErpPosting, "posting", ErpPosting.external_id, ErpPosting.business_date),
    )
    counts: dict[str, int] = {}
    with session_scope(engine) as s:
        for model, record_type, key, date in by_record:
            rows = s.execute(
                select(ExceptionRecord.reason_code, func.count(func.distinct(ExceptionRecord.id)))
                .join(model, key == ExceptionRecord.record_key)
                .where(ExceptionRecord.record_type == record_type, ExceptionRecord.status == "open", date == day)
                .group_by(ExceptionRecord.reason_code)
            ).all()
            for reason, n in rows:
                counts[reason] = counts.get(reason, 0) + int(n)
        rows = s.execute(
            select(ExceptionRecord.reason_code, func.count())
            .where(ExceptionRecord.record_type.not_in([t for _, t, _, _ in by_record]), ExceptionRecord.status == "open",
                   ExceptionRecord.created_at >= start, ExceptionRecord.created_at < end)
            .group_by(ExceptionRecord.reason_code)
        ).all()
    for reason, n in rows:
        counts[reason] = counts.get(reason, 0) + int(n)
    return counts


def quality_results(engine: Engine, day: dt.date) -> list[dict[str, Any]]:
    """GX results of the day, one per dataset: files validated separately are merged (rows add up,
    an expectation failed in any file is failed, with the unexpected counts summed)."""
    with session_scope(engine) as s:
        stored = [r.results for r in s.scalars(select(QualityResult).where(QualityResult.business_date == day)) if r.results]
    merged: dict[str, dict[str, Any]] = {}
    for result in stored:
        into = merged.get(result["dataset"])
        if into is None:
            merged[result["dataset"]] = {**result, "results": [dict(o) for o in result.get("results", [])], "files": 1}
            continue
        into["files"] += 1
        into["rows"] += result.get("rows", 0)
        into["duration_ms"] = into.get("duration_ms", 0) + result.get("duration_ms", 0)
        outcomes = {(o["expectation_type"], o.get("column")): o for o in into["results"]}
        for outcome in result.get("results", []):
            key = (outcome["expectation_type"], outcome.get("column"))
            if key not in outcomes:
                into["results"].append(dict(outcome))
                continue
            kept = outcomes[key]
            kept["success"] = kept["success"] and outcome["success"]
            if outcome.get("unexpected_count"):
                kept["unexpected_count"] = (kept.get("unexpected_count") or 0) + outcome["unexpected_count"]
                kept["unexpected_values"] = (kept.get("unexpected_values") or []) + (outcome.get("unexpected_values") or [])
    for result in merged.values():
        result["evaluated"] = len(result["results"])
        result["failed"] = sum(1 for o in result["results"] if not o["success"])
        result["success"] = result["failed"] == 0
    return sorted(merged.values(), key=lambda r: r["dataset"])


def no_activity(engine: Engine, day: dt.date) -> bool:
    """Nothing reached carefabric for the date: no charge, no remittance, no ERP document."""
    with session_scope(engine) as s:
        return not any(
            s.scalar(select(func.count()).select_from(model).where(model.business_date == day))
            for model in (Charge, Remittance, ErpPosting)
        )


def missing_feeds(engine: Engine, day: dt.date, *, lookback_days: int = 7) -> list[str]:
    """Feeds a finance user expects for the date that did not arrive: no EHR extract at all, or
    no 835 from a payer that sent one on most of the previous ``lookback_days`` days."""
    since = day - dt.timedelta(days=lookback_days)
    with session_scope(engine) as s:
        charges = s.scalar(select(func.count()).select_from(Charge).where(Charge.business_date == day)) or 0
        history = s.execute(
            select(Remittance.payer_id, func.count(func.distinct(Remittance.business_date)))
            .where(Remittance.business_date >= since, Remittance.business_date < day)
            .group_by(Remittance.payer_id)
        ).all()
        today = set(s.scalars(select(Remittance.payer_id).where(Remittance.business_date == day)))
    warnings = [] if charges else [f"no EHR charges arrived for {day.isoformat()} (no extract, or an empty one)"]
    if not deposits_on(engine, day):
        warnings.append(f"no bank statement for {day.isoformat()}: deposits could not be tied to the 835s")
    for payer, days in sorted(history, key=lambda r: str(r[0])):
        if days * 2 > lookback_days and payer not in today:
            warnings.append(f"no 835 from payer {payer} for {day.isoformat()} (it sent one on {days} of the "
                            f"previous {lookback_days} days)")
    return warnings
