"""Claims reconciliation: nightly charges, claims, cash, ledger and integrity checks across EHR,
billing, 835s, the bank and the ERP's own ledger (read back through its API), stored item by
item, and an HTML report emailed to finance.

Data-aware: runs when ``erp_posting`` updates the ``POSTINGS`` asset (business date from the
event's extra), or at 05:00 for the previous business date if postings never announced
themselves, whichever comes first; the later run finds the day closed (no posting since the last
reconciliation) and emails nothing twice. Deadline Alerts (``carefabric_airflow.deadlines``):
the email must be out by ``CAREFABRIC_CLOSE_DEADLINE`` local time (06:00) and any run must finish
within an hour; a miss opens a ``DEADLINE_MISSED`` exception and notifies finance, and a close
that finishes late resolves it. A finished close updates the ``RECONCILIATION`` asset. Billing's accepted charges are re-read first
so the check compares against billing as it stands. The email goes through the ``finance_smtp``
connection with the unmatched items attached as CSV (no PHI). The logic is in
``carefabric.interfaces.claims_reconciliation``.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, get_current_context, task

from carefabric_airflow import (
    DAGRUN_TIMEOUT,
    billing_client,
    business_date,
    default_args,
    engine,
    erp_client,
    lineage,
    variable,
)
from carefabric_airflow.data_assets import RECONCILIATION, announce, reconciliation_schedule
from carefabric_airflow.deadlines import close_deadlines

INTERFACE = "claims_reconciliation"


@dag(
    dag_id=INTERFACE,
    doc_md=__doc__,
    dagrun_timeout=DAGRUN_TIMEOUT,
    description="Nightly claims-to-ledger reconciliation and the finance data-quality email",
    schedule=reconciliation_schedule(),
    deadline=close_deadlines(),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(INTERFACE),
    params={"business_date": Param(None, type=["null", "string"], description="YYYY-MM-DD; default: the asset event's date, else interval start")},
    tags=["carefabric", "reconciliation", "finance", "report"],
)
def claims_reconciliation() -> None:
    @task.short_circuit
    def day_not_closed_yet() -> bool:
        """The later of the asset-triggered and the fallback close finds the day closed: nothing to send.

        A manual run (an operator, ``make demo``) always closes again.
        """
        from carefabric.nightly_close import day_closed

        context = get_current_context()
        if context["dag_run"].run_type == "manual":
            return True
        return not day_closed(engine(), business_date(context))

    @task(pool="billing_api", inlets=lineage.peer(lineage.BILLING_API, "charges"), outlets=lineage.store("billing_charges"))
    def refresh_billing_charges() -> int:
        from carefabric.interfaces.claims_reconciliation import refresh_billing_charges

        # the charge window, not just the day: a late charge is billed under an earlier service date
        return refresh_billing_charges(engine(), billing_client(), business_date(get_current_context()))

    @task(inlets=[*lineage.store("charges", "billing_charges", "remittances", "bank_deposits", "erp_postings"),
                  *lineage.peer(lineage.ERP_API, "journal-batches", "account-balances")],
          outlets=lineage.store(*lineage.RECONCILIATION))
    def reconcile(_: int) -> dict:
        from carefabric.interfaces.claims_reconciliation import reconcile_day

        window = int(variable("carefabric_reconciliation_tolerance_days", "3"))
        run_id, items, totals = reconcile_day(engine(), erp_client(), business_date(get_current_context()),
                                              window_days=window)
        return {"run_id": run_id, "items": len(items), "unmatched": totals.get("unmatched_total", 0)}

    @task(inlets=lineage.store(*lineage.RECONCILIATION), outlets=lineage.peer(lineage.FINANCE_MAIL, "reconciliation-report"))
    def email_finance(result: dict) -> str:
        from carefabric.interfaces.reconciliation_email import report_for_run
        from carefabric_airflow.email import send_report

        report = report_for_run(engine(), result["run_id"], business_date(get_current_context()))
        recipients = variable("carefabric_finance_recipients", "finance@hospital.example")
        message_id = send_report(report, conn_id="finance_smtp", recipients=recipients)
        return f"{report.subject} ({message_id})"

    @task
    def data_docs() -> dict:
        """The nightly GX checkpoint over the day's records; rebuilds the Data Docs the email links.

        Beside the reconciliation, not before the email: the link is known from the date alone,
        and a slow or failed GX run must not hold finance's email (docs/OPERATIONS.md).
        """
        from carefabric.quality.nightly import build_day_docs_dict

        return build_day_docs_dict(engine(), business_date(get_current_context()))

    @task(outlets=[RECONCILIATION])
    def close_day(sent: object) -> dict:
        """The close is done: a deadline missed tonight is resolved (late, not lost); consumers learn of it."""
        from carefabric.nightly_close import resolve_deadline_misses

        context = get_current_context()
        day = business_date(context)
        resolved = resolve_deadline_misses(engine(), day, run_id=context["dag_run"].run_id)
        summary = {"email": str(sent)[:200], "deadline_misses_resolved": resolved}
        announce(context, RECONCILIATION, day, summary)
        return summary

    guard = day_not_closed_yet()
    refreshed = refresh_billing_charges()
    guard >> refreshed
    guard >> data_docs()
    close_day(email_finance(reconcile(refreshed)))


claims_reconciliation()
