"""Claims reconciliation: nightly charges, claims, cash, ledger and integrity checks across EHR,
billing, 835s, the bank and the ERP's own ledger (read back through its API), stored item by
item, and an HTML report emailed to finance.

Runs at 05:00 UTC for the previous business date. Billing's accepted charges are re-read first
so the check compares against billing as it stands. The email goes through the ``finance_smtp``
connection with the unmatched items attached as CSV (no PHI). The logic is in
``carefabric.interfaces.claims_reconciliation``.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import CronDataIntervalTimetable, Param, dag, get_current_context, task

from carefabric_airflow import (
    DAGRUN_TIMEOUT,
    billing_client,
    business_date,
    default_args,
    engine,
    erp_client,
    variable,
)

INTERFACE = "claims_reconciliation"


@dag(
    dag_id=INTERFACE,
    doc_md=__doc__,
    dagrun_timeout=DAGRUN_TIMEOUT,
    description="Nightly claims-to-ledger reconciliation and the finance data-quality email",
    schedule=CronDataIntervalTimetable("0 5 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(INTERFACE),
    params={"business_date": Param(None, type=["null", "string"], description="YYYY-MM-DD; default: interval start")},
    tags=["carefabric", "reconciliation", "finance", "report"],
)
def claims_reconciliation() -> None:
    @task(pool="billing_api")
    def refresh_billing_charges() -> int:
        from carefabric.interfaces.billing_sync import sync_accepted_charges

        return sync_accepted_charges(engine(), billing_client(), business_date(get_current_context()))

    @task
    def reconcile(_: int) -> dict:
        from carefabric.interfaces.claims_reconciliation import reconcile_day

        window = int(variable("carefabric_reconciliation_tolerance_days", "3"))
        run_id, items, totals = reconcile_day(engine(), erp_client(), business_date(get_current_context()),
                                              window_days=window)
        return {"run_id": run_id, "items": len(items), "unmatched": totals.get("unmatched_total", 0)}

    @task
    def email_finance(result: dict) -> str:
        import pandas as pd
        from airflow.sdk import Connection
        from sqlalchemy import select

        from carefabric.interfaces.claims_reconciliation import build_report
        from carefabric.report import send
        from carefabric.store.db import session_scope
        from carefabric.store.models import ReconciliationItem, ReconciliationRun

        day = business_date(get_current_context())
        with session_scope(engine()) as session:
            run = session.get(ReconciliationRun, result["run_id"])
            items = pd.DataFrame(
                [
                    {"check": i.check_name, "key": i.item_key, "status": i.status, "ehr_cents": i.ehr_cents,
                     "billing_cents": i.billing_cents, "remit_cents": i.remit_cents, "gl_cents": i.gl_cents,
                     "bank_cents": i.bank_cents, "carefabric_cents": i.carefabric_cents,
                     "variance_cents": i.variance_cents, "reason": i.reason}
                    for i in session.scalars(select(ReconciliationItem).where(ReconciliationItem.run_id == result["run_id"]))
                ]
            )
            totals = dict(run.control_totals or {})
        report = build_report(engine(), day, items, totals)
        recipients = [r.strip() for r in variable("carefabric_finance_recipients", "finance@hospital.example").split(",")]
        # The report has an inline chart (multipart/related), which SmtpHook.send_email_smtp cannot
        # build; the connection still comes from Airflow (``finance_smtp``).
        conn = Connection.get("finance_smtp")
        extra = conn.extra_dejson
        message_id = send(
            report, host=conn.host, port=int(conn.port or 25), sender=extra.get("from_email", "carefabric@hospital.example"),
            recipients=recipients, username=conn.login or None, password=conn.password or None,
            use_tls=not extra.get("disable_tls", False), use_ssl=not extra.get("disable_ssl", True),
        )
        return f"{report.subject} ({message_id})"

    email_finance(reconcile(refresh_billing_charges()))


claims_reconciliation()
