"""The finance email of a stored reconciliation run: its items and totals read back, the report built.

The ``claims_reconciliation`` DAG stores the run in one task and emails it in the next; this is
what the second task reads, so a retried email is built from exactly what was stored (and the
DAG file carries no query). Sending is the Airflow adapter's (``carefabric_airflow.email``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from carefabric.store.db import session_scope
from carefabric.store.models import ReconciliationItem, ReconciliationRun

#: Item columns the report reads (``carefabric.report.build_finance_report``), from the stored row.
ITEM_COLUMNS = {
    "check": "check_name", "key": "item_key", "status": "status", "ehr_cents": "ehr_cents",
    "billing_cents": "billing_cents", "remit_cents": "remit_cents", "gl_cents": "gl_cents",
    "bank_cents": "bank_cents", "carefabric_cents": "carefabric_cents", "variance_cents": "variance_cents",
    "reason": "reason",
}


def stored_run(engine: Engine, run_id: int) -> tuple[Any, dict[str, Any]]:
    """(items as a DataFrame with the report's column names, the run's control totals)."""
    import pandas as pd

    with session_scope(engine) as session:
        run = session.get(ReconciliationRun, run_id)
        if run is None:
            raise LookupError(f"reconciliation run {run_id} is not stored")
        rows = session.scalars(select(ReconciliationItem).where(ReconciliationItem.run_id == run_id))
        items = pd.DataFrame([{col: getattr(row, attr) for col, attr in ITEM_COLUMNS.items()} for row in rows],
                             columns=list(ITEM_COLUMNS))
        totals = dict(run.control_totals or {})
    return items, totals


def report_for_run(engine: Engine, run_id: int, day: dt.date) -> Any:
    """The finance report (``carefabric.report.FinanceReport``) of a stored run."""
    from carefabric.interfaces.claims_reconciliation import build_report

    items, totals = stored_run(engine, run_id)
    return build_report(engine, day, items, totals)
