"""Data-aware scheduling: carefabric's assets and the schedules built on them, in one place.

The nightly chain runs on data, with the clock as the fallback:

    ehr_ingest ──CHARGES──┐
                          ├─(both, or the cut-off)──> erp_posting ──POSTINGS──> claims_reconciliation
    payer_remittance ─REMITTANCES─┘

* ``erp_posting`` starts when the day's charges AND remittances are updated, or at its cut-off
  time, whichever comes first (``AssetOrTimeSchedule``). A second run for the same day (the
  cut-off after an asset-triggered run) posts nothing twice: the outbox is idempotent.
* ``claims_reconciliation`` starts when postings are done, with the nightly close time as the
  fallback so that a night whose posting never finished is still closed (and says so).

Asset-triggered runs have no logical date and no data interval (Airflow 3). The business date
therefore travels in the asset event's ``extra`` (``business_date``) beside the counts the
producing task reports; ``business_date_from_events`` reads it back in the consumer.

Times are local to the hospital (``CAREFABRIC_TIMEZONE``, default UTC), read from the
environment at parse time: no Variable or database access at module scope.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

from airflow.sdk import Asset, AssetOrTimeSchedule, CronDataIntervalTimetable

#: Charges routed to billing by ``ehr_ingest`` (extra: business_date, files, routed ...).
CHARGES = Asset("carefabric://ehr/charges")
#: 835 remittances stored by ``payer_remittance`` (extra: business_date, files, by_status).
REMITTANCES = Asset("carefabric://payer/remittances")
#: Claims, payments and balances pulled by ``billing_sync``.
BILLING = Asset("carefabric://billing/claims-payments")
#: Crosswalk lists replicated by ``erp_master_data``.
MASTER_DATA = Asset("carefabric://erp/master-data")
#: The day's documents settled in the ERP by ``erp_posting`` (extra: business_date, posted ...).
POSTINGS = Asset("carefabric://erp/postings")
#: The nightly close (reconciliation stored and emailed) by ``claims_reconciliation``.
RECONCILIATION = Asset("carefabric://finance/reconciliation")

ALL = {
    "charges": CHARGES,
    "remittances": REMITTANCES,
    "billing": BILLING,
    "master_data": MASTER_DATA,
    "postings": POSTINGS,
    "reconciliation": RECONCILIATION,
}

#: Cron of erp_posting's cut-off: posts whatever the day has even if an asset never arrived.
POSTING_CUTOFF_CRON = os.environ.get("CAREFABRIC_POSTING_CUTOFF_CRON", "0 3 * * *")
#: Cron of the nightly close's fallback start, when postings never announced themselves.
CLOSE_FALLBACK_CRON = os.environ.get("CAREFABRIC_CLOSE_CRON", "0 5 * * *")
#: When finance must have the reconciliation email, local time on the day after the business date.
CLOSE_DEADLINE = os.environ.get("CAREFABRIC_CLOSE_DEADLINE", "06:00")


def timezone() -> str:
    return os.environ.get("CAREFABRIC_TIMEZONE", "UTC")


def local_date(value: dt.datetime) -> dt.date:
    """The hospital's calendar date of an instant (Airflow hands out UTC instants).

    East of UTC, a 03:00 local cut-off is the previous evening in UTC: taking ``.date()`` of the
    UTC value would name the day before the right business date. A naive value is taken as local.
    """
    from zoneinfo import ZoneInfo

    return value.astimezone(ZoneInfo(timezone())).date() if value.tzinfo is not None else value.date()


def posting_schedule() -> AssetOrTimeSchedule:
    """erp_posting: both feeds updated, or the cut-off, whichever first.

    A data-interval timetable keeps the cut-off run's business date the previous day (its
    interval starts yesterday at the cut-off), as before the data-aware schedule.
    """
    return AssetOrTimeSchedule(
        timetable=CronDataIntervalTimetable(POSTING_CUTOFF_CRON, timezone=timezone()),
        assets=(CHARGES & REMITTANCES),
    )


def reconciliation_schedule() -> AssetOrTimeSchedule:
    """claims_reconciliation: postings done, or the close's fallback time."""
    return AssetOrTimeSchedule(
        timetable=CronDataIntervalTimetable(CLOSE_FALLBACK_CRON, timezone=timezone()),
        assets=POSTINGS,
    )


def close_email_due(
    interval_start: dt.datetime | None,
    created: dt.datetime,
    deadline: str = CLOSE_DEADLINE,
    tz: str | None = None,
) -> dt.datetime:
    """When finance must have a close run's email (UTC): ``deadline`` local time, computed per run.

    * A run with a data interval (the fallback run) closes the interval's start date: the email
      is due at ``deadline`` local time on the following day.
    * An asset-triggered run has no interval (and its events are attached only after the run is
      created): the email is due at the first ``deadline`` local time after the run was created.

    Computed on the local calendar (``zoneinfo``), not as a fixed interval after the logical
    date: on the nights the clocks change the local day is 23 or 25 hours long, and a fixed
    ``1 day + (deadline - cron)`` would be an hour off.
    """
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(tz or timezone())
    due = dt.time.fromisoformat(deadline)
    if interval_start is not None:
        day = interval_start.astimezone(zone).date() + dt.timedelta(days=1)
        return dt.datetime.combine(day, due, tzinfo=zone).astimezone(dt.UTC)
    local = created.astimezone(zone)
    candidate = dt.datetime.combine(local.date(), due, tzinfo=zone)
    if candidate <= local:
        candidate = dt.datetime.combine(local.date() + dt.timedelta(days=1), due, tzinfo=zone)
    return candidate.astimezone(dt.UTC)


def event_extra(business_date: dt.date, summary: dict[str, Any]) -> dict[str, Any]:
    """The extra of an asset event: the business date and the task's counts (JSON scalars only)."""
    extra: dict[str, Any] = {"business_date": business_date.isoformat()}
    for key, value in summary.items():
        if isinstance(value, bool | int | float | str) or value is None:
            extra[key] = value
        elif isinstance(value, dict) and all(isinstance(v, int | float | str) for v in value.values()):
            extra[key] = {str(k): v for k, v in value.items()}
    return extra


def announce(
    context: Any, asset: Asset, business_date: dt.date, summary: dict[str, Any], *, require: str | None = None
) -> None:
    """Attach the counts and business date to the event this task's outlet emits.

    With ``require``, a run whose ``summary[require]`` is zero (no new files, nothing sent)
    emits no event: the task is skipped, so a quarter-hourly sensor run that found nothing, or
    a cut-off run after the asset-triggered one had posted the day, wakes no consumer.
    """
    if require is not None and not summary.get(require):
        from airflow.sdk.exceptions import AirflowSkipException

        raise AirflowSkipException(f"nothing new ({require}=0): no {asset.uri} event")
    context["outlet_events"][asset].extra = event_extra(business_date, summary)


def business_date_from_events(context: Any) -> dt.date | None:
    """The business date an asset-triggered run works on: the latest one its events carry.

    None when the run was not triggered by assets (or the events carry no date): the caller
    falls back to the data interval.
    """
    events = context.get("triggering_asset_events") or {}
    dates: list[dt.date] = []
    for asset_events in events.values():
        for event in asset_events:
            value = (getattr(event, "extra", None) or {}).get("business_date")
            if value:
                dates.append(dt.date.fromisoformat(str(value)))
    return max(dates) if dates else None
