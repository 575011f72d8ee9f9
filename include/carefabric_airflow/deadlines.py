"""Deadline Alerts of the nightly close (Airflow 3.3's ``DeadlineAlert``, which replaced SLAs).

Two alerts guard ``claims_reconciliation``:

* ``email_by``: the fallback (time-scheduled) run must finish by ``CAREFABRIC_CLOSE_DEADLINE``
  local time (default 06:00) on the day after its business date. Its logical date is the start
  of its data interval (the business day at the close cron's time), so the interval is computed
  from the cron and the deadline (``data_assets.close_deadline_interval``). Asset-triggered runs
  have no logical date; Airflow creates no logical-date deadline for them.
* ``max_duration``: every run, asset-triggered ones included, must finish within
  ``CAREFABRIC_CLOSE_MAX_MINUTES`` (default 60) of being queued.

A miss runs ``close_deadline_missed`` in the triggerer (``AsyncCallback``): it opens a
``DEADLINE_MISSED`` exception (``carefabric.nightly_close``), which the console's queue and the
metrics show, and emails the finance recipients a notice without PHI. The email is best effort
(logged on failure): the exception is the record.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
from typing import Any

# The names are exported by airflow.sdk at runtime but missing from its type stub (__init__.pyi) in 3.3.
from airflow.sdk.definitions.callback import AsyncCallback
from airflow.sdk.definitions.deadline import DeadlineAlert, DeadlineReference

from carefabric_airflow.data_assets import CLOSE_DEADLINE, close_deadline_interval

log = logging.getLogger(__name__)

SMTP_CONN = "finance_smtp"


def _business_date(dag_run: dict[str, Any]) -> dt.date | None:
    """The night the run closes: its ``business_date`` param, else its data interval's start."""
    conf = dag_run.get("conf") or {}
    if conf.get("business_date"):
        return dt.date.fromisoformat(str(conf["business_date"]))
    start = dag_run.get("data_interval_start") or dag_run.get("logical_date")
    return dt.datetime.fromisoformat(str(start)).date() if start else None


def handle_miss(context: dict[str, Any], deadline_name: str) -> int:
    """Open the exception (and try the email) for a missed deadline; the exception id."""
    from carefabric.nightly_close import record_deadline_miss
    from carefabric_airflow import engine

    dag_run = context.get("dag_run") or {}
    deadline = context.get("deadline") or {}
    due = deadline.get("deadline_time")
    due_at = dt.datetime.fromisoformat(str(due)) if due else dt.datetime.now(dt.UTC)
    day = _business_date(dag_run)
    exception_id = record_deadline_miss(
        engine(), dag_id=str(dag_run.get("dag_id", "claims_reconciliation")), run_id=str(dag_run.get("run_id", "?")),
        deadline_time=due_at, business_date=day, deadline_name=deadline_name,
    )
    try:
        _email(deadline_name, str(dag_run.get("dag_id")), day, due_at, exception_id)
    except Exception:  # noqa: BLE001 - the exception queue holds the miss; a mail outage must not lose it
        log.exception("deadline notice e-mail not sent (exception %s is open)", exception_id)
    return exception_id


def _email(deadline_name: str, dag_id: str, day: dt.date | None, due_at: dt.datetime, exception_id: int) -> None:
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    from carefabric_airflow import variable

    recipients = [r.strip() for r in variable("carefabric_finance_recipients", "finance@hospital.example").split(",")]
    subject = f"carefabric: nightly close {day or ''} late ({deadline_name})"
    body = (f"<p>The nightly close ({dag_id}) for business date {day or 'unknown'} had not finished by "
            f"{due_at.isoformat(timespec='minutes')}.</p><p>Exception #{exception_id} (DEADLINE_MISSED) is open "
            "in the carefabric console; it resolves itself when the close finishes.</p>")
    with SmtpHook(smtp_conn_id=SMTP_CONN) as hook:
        hook.send_email_smtp(to=recipients, subject=subject, html_content=body)


async def close_deadline_missed(deadline_name: str, context: dict[str, Any] | None = None) -> int:
    """The ``AsyncCallback`` the triggerer runs on a miss (store and SMTP calls off the event loop)."""
    return await asyncio.to_thread(handle_miss, context or {}, deadline_name)


def close_deadlines() -> list[DeadlineAlert]:
    """The nightly close's alerts (see the module docstring).

    ``CAREFABRIC_DEADLINE_ALERTS=off`` leaves them out. ``tools/airflow_runtime.run_dag`` sets it
    for ``airflow dags test`` only: in Airflow 3.3.2 a run that ``dags test`` finished with success
    is turned into a failure, because ``DagRun.update_state`` treats the in-process DAG's alert
    objects as alert ids (``'dict' object has no attribute 'hex'`` in ``DeadlineAlertModel.get_by_id``).
    The scheduler path serializes the DAG first and is unaffected.
    """
    if os.environ.get("CAREFABRIC_DEADLINE_ALERTS", "on").lower() in {"off", "0", "false", "no"}:
        return []
    max_minutes = int(os.environ.get("CAREFABRIC_CLOSE_MAX_MINUTES", "60"))
    return [
        DeadlineAlert(
            name="email_by",
            reference=DeadlineReference.DAGRUN_LOGICAL_DATE,
            interval=close_deadline_interval(),
            callback=AsyncCallback(close_deadline_missed, kwargs={"deadline_name": f"email by {CLOSE_DEADLINE}"}),
        ),
        DeadlineAlert(
            name="max_duration",
            reference=DeadlineReference.DAGRUN_QUEUED_AT,
            interval=dt.timedelta(minutes=max_minutes),
            callback=AsyncCallback(close_deadline_missed, kwargs={"deadline_name": f"finish within {max_minutes} min"}),
        ),
    ]
