"""Deadline Alerts of the nightly close (Airflow 3.3's ``DeadlineAlert``, which replaced SLAs).

Two alerts guard ``claims_reconciliation``:

* ``email_by``: finance must have the email by ``CAREFABRIC_CLOSE_DEADLINE`` local time
  (default 06:00). The due time is computed per run on the local calendar
  (``data_assets.close_email_due``) by a custom deadline reference, ``CloseEmailDue``: a fixed
  interval after the logical date would be an hour off on the nights the clocks change. The
  fallback run is due the morning after its business date; an asset-triggered run (no logical
  date, no interval) at the first deadline time after it was created. Airflow's scheduler finds
  a custom reference through a plugin (``plugins/carefabric_deadlines.py``).
* ``max_duration``: every run must finish within ``CAREFABRIC_CLOSE_MAX_MINUTES`` (default 60;
  decimals allowed, e.g. ``0.02`` for the live test that must see a miss) of being queued.

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
from airflow.sdk.definitions.deadline import (
    BaseDeadlineReference,
    DeadlineAlert,
    DeadlineReference,
    deadline_reference,
)

from carefabric_airflow.data_assets import CLOSE_DEADLINE, close_email_due, local_date

log = logging.getLogger(__name__)

SMTP_CONN = "finance_smtp"


@deadline_reference
class CloseEmailDue(BaseDeadlineReference):
    """The close's email deadline for one run, evaluated by the scheduler when the run is created.

    Registered with the SDK by the decorator (DAG parsing) and with the scheduler by the
    ``carefabric_deadlines`` plugin (it finds custom references by class path).
    """

    required_kwargs = {"dag_id", "run_id"}

    def _evaluate_with(self, *, session: Any, **kwargs: Any) -> dt.datetime | None:
        from airflow.models import DagRun
        from sqlalchemy import select

        row = session.execute(
            select(DagRun.data_interval_start, DagRun.run_after)
            .where(DagRun.dag_id == kwargs["dag_id"], DagRun.run_id == kwargs["run_id"])
        ).first()
        if row is None:
            return None
        return close_email_due(row.data_interval_start, row.run_after)


def _business_date(dag_run: dict[str, Any]) -> dt.date | None:
    """The night the run closes: its ``business_date`` param, else its data interval's start.

    None for an asset-triggered run: its date travels in the triggering events, which the
    scheduler does not hand the callback; the miss is then keyed by the run id.
    """
    conf = dag_run.get("conf") or {}
    if conf.get("business_date"):
        return dt.date.fromisoformat(str(conf["business_date"]))
    start = dag_run.get("data_interval_start") or dag_run.get("logical_date")
    return local_date(dt.datetime.fromisoformat(str(start))) if start else None


def handle_miss(context: dict[str, Any], deadline_name: str) -> int:
    """Open the exception (and try the email) for a missed deadline; the exception id."""
    from carefabric.nightly_close import record_deadline_miss
    from carefabric_airflow import engine

    dag_run = context.get("dag_run") or {}
    deadline = context.get("deadline") or {}
    due = deadline.get("deadline_time")
    due_at = dt.datetime.fromisoformat(str(due)) if due else dt.datetime.now(dt.UTC)
    day = _business_date(dag_run)
    # The scheduler hands the run as Airflow's REST model (DAGRunResponse): ``dag_run_id``, a
    # snapshot taken when it noticed the miss; a run already successful then was late, not lost.
    run_id = str(dag_run.get("dag_run_id") or dag_run.get("run_id") or "?")
    finished = dag_run.get("state") == "success"
    exception_id = record_deadline_miss(
        engine(), dag_id=str(dag_run.get("dag_id", "claims_reconciliation")), run_id=run_id,
        deadline_time=due_at, business_date=day, deadline_name=deadline_name, finished=finished,
    )
    if finished:  # finance has the (late) report already: a "not finished" notice would be wrong
        log.info("deadline %r missed by %s, finished by then: exception %s recorded resolved", deadline_name,
                 run_id, exception_id)
        return exception_id
    try:
        _email(deadline_name, str(dag_run.get("dag_id")), day or run_id, due_at, exception_id)
    except Exception:  # noqa: BLE001 - the exception queue holds the miss; a mail outage must not lose it
        log.exception("deadline notice e-mail not sent (exception %s is open)", exception_id)
    return exception_id


def _email(deadline_name: str, dag_id: str, night: dt.date | str, due_at: dt.datetime, exception_id: int) -> None:
    """The notice; ``night`` is the business date, or the run id of an asset-triggered run (no date known)."""
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    from carefabric_airflow import variable

    recipients = [r.strip() for r in variable("carefabric_finance_recipients", "finance@hospital.example").split(",")]
    which, label = (f"business date {night}", f" {night}") if isinstance(night, dt.date) else (f"run {night}", "")
    subject = f"carefabric: nightly close{label} late ({deadline_name})"
    body = (f"<p>The nightly close ({dag_id}) for {which} had not finished by "
            f"{due_at.isoformat(timespec='minutes')}.</p><p>Exception #{exception_id} (DEADLINE_MISSED) is open "
            "in the carefabric console; it resolves itself when the close finishes.</p>")
    with SmtpHook(smtp_conn_id=SMTP_CONN) as hook:
        hook.send_email_smtp(to=recipients, subject=subject, html_content=body)


async def close_deadline_missed(deadline_name: str, context: dict[str, Any] | None = None) -> int:
    """The ``AsyncCallback`` the triggerer runs on a miss (store and SMTP calls off the event loop)."""
    return await asyncio.to_thread(handle_miss, context or {}, deadline_name)


def close_deadlines() -> list[DeadlineAlert]:
    """The nightly close's alerts (see the module docstring).

    ``CAREFABRIC_DEADLINE_ALERTS=off`` leaves them out. ``tools/airflow_runtime.run_dag`` (``airflow
    dags test``: the demo, the benches) and ``tools/dag_test_runner`` (in-process ``dag.test()``: the
    whole-DAG tests) set it, and only they: in Airflow 3.3.2 a run either of them finished with
    success is turned into a failure, because ``DagRun.update_state`` treats the in-process DAG's
    alert objects as alert ids (``'dict' object has no attribute 'hex'`` in
    ``DeadlineAlertModel.get_by_id``). The scheduler path serializes the DAG first and is
    unaffected (``tests/test_asset_chain_scheduler.py`` fires a miss live).
    """
    if os.environ.get("CAREFABRIC_DEADLINE_ALERTS", "on").lower() in {"off", "0", "false", "no"}:
        return []
    longest = max_duration()
    return [
        DeadlineAlert(
            name="email_by",
            reference=CloseEmailDue(),
            interval=dt.timedelta(0),
            callback=AsyncCallback(close_deadline_missed, kwargs={"deadline_name": f"email by {CLOSE_DEADLINE}"}),
        ),
        DeadlineAlert(
            name="max_duration",
            reference=DeadlineReference.DAGRUN_QUEUED_AT,
            interval=longest,
            callback=AsyncCallback(close_deadline_missed, kwargs={"deadline_name": f"finish within {_span(longest)}"}),
        ),
    ]


def max_duration() -> dt.timedelta:
    """``CAREFABRIC_CLOSE_MAX_MINUTES`` (decimals allowed: a test sets a few seconds to see a miss)."""
    minutes = float(os.environ.get("CAREFABRIC_CLOSE_MAX_MINUTES", "60"))
    if not minutes > 0:
        raise ValueError(f"CAREFABRIC_CLOSE_MAX_MINUTES must be positive, not {minutes}")
    return dt.timedelta(minutes=minutes)


def _span(delta: dt.timedelta) -> str:
    seconds = delta.total_seconds()
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"
