"""Billing sync: claims, claim status, payments and patient balances changed in each interval.

Nightly at 01:00 UTC for the previous day's window (``CronDataIntervalTimetable``: the run for
day D covers [D 01:00, D+1 01:00)), paginated, with retries that honour the billing platform's
Retry-After. Then 835 claim payments are matched to billing claims by patient control number.
The logic is in ``carefabric.interfaces.billing_sync``.
"""

from __future__ import annotations

import datetime as dt

import pendulum
from airflow.sdk import CronDataIntervalTimetable, Param, dag, get_current_context, task

from carefabric_airflow import DAGRUN_TIMEOUT, billing_client, business_date, default_args, engine, lineage
from carefabric_airflow.data_assets import BILLING

INTERFACE = "billing_sync"


@dag(
    dag_id=INTERFACE,
    doc_md=__doc__,
    dagrun_timeout=DAGRUN_TIMEOUT,
    description="Incremental pull of billing claims, status, payments and balances; 835-to-claim match",
    schedule=CronDataIntervalTimetable("0 1 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(INTERFACE),
    params={"business_date": Param(None, type=["null", "string"], description="YYYY-MM-DD; default: interval start")},
    tags=["carefabric", "billing", "rest", "incremental"],
)
def billing_sync() -> None:
    @task(pool="billing_api", inlets=lineage.peer(lineage.BILLING_API, "claims", "payments", "patient-balances"),
          outlets=lineage.store(*lineage.BILLING))
    def pull_changes() -> dict:
        from carefabric.interfaces.billing_sync import sync_window

        context = get_current_context()
        day = business_date(context)
        if (context.get("params") or {}).get("business_date"):
            # An explicit business date re-syncs everything billing changed up to its end.
            since = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
            before = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
        else:
            # A run without a data interval (triggered by hand or by an asset event) syncs its business day.
            start, end = context.get("data_interval_start"), context.get("data_interval_end")
            since = start or dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
            before = end or dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
        return sync_window(engine(), billing_client(), since=since, before=before)

    @task(pool="billing_api", inlets=lineage.peer(lineage.BILLING_API, "charges"), outlets=lineage.store("billing_charges"))
    def pull_accepted_charges() -> int:
        from carefabric.interfaces.billing_sync import sync_accepted_charges

        return sync_accepted_charges(engine(), billing_client(), business_date(get_current_context()))

    @task(outlets=[BILLING], inlets=lineage.store("remittances", "remit_claims", "billing_claims"))
    def match_remittances(pulled: dict, charges: int) -> dict:
        from carefabric.interfaces.billing_sync import match_remittance_claims

        return {**pulled, "accepted_charges": charges, **match_remittance_claims(engine())}

    match_remittances(pull_changes(), pull_accepted_charges())


billing_sync()
