"""ERP posting: the day's balanced journals (charges, supplies, remittances), inventory movements
and cash receipts, each posted exactly once.

Daily at 03:00 UTC for the previous business date, after ingest and remittance. Summary or
detail posting follows the ``carefabric_posting_mode`` variable. External ids hash each
document's content, so a rerun or a retry is a no-op in the ERP; a 503 is retried with backoff,
a rejection goes to the exception queue. The logic is in ``carefabric.interfaces.erp_posting``.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import CronDataIntervalTimetable, Param, dag, get_current_context, task

from carefabric_airflow import assets, business_date, default_args, engine, erp_client, variable

INTERFACE = "erp_posting"


@dag(
    dag_id=INTERFACE,
    description="Balanced, idempotent journals, inventory movements and cash receipts to the ERP",
    schedule=CronDataIntervalTimetable("0 3 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(INTERFACE, retries=4),
    params={"business_date": Param(None, type=["null", "string"], description="YYYY-MM-DD; default: interval start")},
    tags=["carefabric", "erp", "gl", "posting"],
)
def erp_posting() -> None:
    @task(pool="erp_api")
    def resend_pending() -> int:
        """Documents an interrupted run stored but never confirmed go first (same external id)."""
        from carefabric.interfaces.erp_posting import retry_pending

        return retry_pending(engine(), erp_client(), business_date(get_current_context()))

    @task(pool="erp_api")
    def post_charges_and_supplies(_: int) -> dict:
        from carefabric.interfaces.erp_posting import post_charges

        mode = variable("carefabric_posting_mode", "summary")
        return post_charges(engine(), erp_client(), business_date(get_current_context()), mode=mode)

    @task(pool="erp_api", outlets=[assets()["postings"]])
    def post_remittances_and_cash(_: dict) -> dict:
        from carefabric.interfaces.erp_posting import post_remittances

        mode = variable("carefabric_posting_mode", "summary")
        return post_remittances(engine(), erp_client(), business_date(get_current_context()), mode=mode)

    post_remittances_and_cash(post_charges_and_supplies(resend_pending()))


erp_posting()
