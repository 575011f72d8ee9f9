"""The nightly close's two questions that are not reconciliation itself.

* Was the close late? A missed deadline (finance must have the reconciliation email by a set
  local time) becomes a ``DEADLINE_MISSED`` exception: visible in the console's queue, counted
  in the metrics (``carefabric_deadline_misses_total``), and resolved by the close finishing.
* Is the day closed already? The close runs when postings are done or at its fallback time,
  whichever first; the later of the two must not email finance the same day twice.

No Airflow here: the Airflow side (the Deadline Alert's callback, the guard task) calls these.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from carefabric.store import exceptions_repo
from carefabric.store.db import session_scope
from carefabric.store.models import ErpPosting, ReconciliationRun

DEADLINE_MISSED = "DEADLINE_MISSED"
CLOSE_INTERFACE = "claims_reconciliation"


def deadline_key(dag_id: str, business_date: dt.date | None, run_id: str) -> str:
    """One exception per DAG and business date (a second miss the same night counts as a re-occurrence)."""
    return f"{dag_id}:{business_date.isoformat() if business_date else run_id}"[:255]


def record_deadline_miss(
    engine: Engine,
    *,
    dag_id: str,
    run_id: str,
    deadline_time: dt.datetime,
    business_date: dt.date | None,
    deadline_name: str,
    finished: bool = False,
) -> int:
    """Open (or count again) the ``DEADLINE_MISSED`` exception of this DAG and night; its id.

    ``finished``: the run had already succeeded when the miss was noticed (late, not lost), so
    the exception is resolved at once; it still counts in the metrics. Without a business date
    (an asset-triggered run) the key is the run id, which ``close_day`` resolves as well.
    """
    key = deadline_key(dag_id, business_date, run_id)
    with session_scope(engine) as session:
        exc = exceptions_repo.open_exception(
            session,
            kind="business",
            reason_code=DEADLINE_MISSED,
            interface=dag_id,
            record_type="dag_run",
            record_key=key,
            summary=f"{deadline_name}: {dag_id} not finished by {deadline_time.isoformat(timespec='minutes')}",
            detail={"run_id": run_id, "deadline": deadline_time.isoformat(), "deadline_name": deadline_name,
                    "business_date": business_date.isoformat() if business_date else None},
        )
        session.flush()
        if finished:
            exceptions_repo.resolve_for(session, record_type="dag_run", record_keys=[key], reason_codes=[DEADLINE_MISSED],
                                        note="the run had finished (late) when the miss was noticed")
        return int(exc.id)


def day_closed(engine: Engine, business_date: dt.date) -> bool:
    """True when a reconciliation of the day finished after the day's last ERP posting.

    The later of the asset-triggered close and the fallback close then has nothing new to say.
    A posting after the last close (a replay, a late file) makes the day open again.
    """
    with session_scope(engine) as session:
        closed = session.scalar(
            select(func.max(ReconciliationRun.finished_at)).where(
                ReconciliationRun.business_date == business_date, ReconciliationRun.finished_at.is_not(None)
            )
        )
        if closed is None:
            return False
        posted = session.scalar(
            select(func.max(ErpPosting.posted_at)).where(ErpPosting.business_date == business_date)
        )
    return posted is None or posted <= closed


def resolve_deadline_misses(
    engine: Engine, business_date: dt.date, dag_id: str = CLOSE_INTERFACE, run_id: str | None = None
) -> int:
    """The close finished: the night's open ``DEADLINE_MISSED`` exception is resolved (late, but done).

    ``run_id``: also the one keyed by this run (a miss of an asset-triggered run has no date).
    """
    keys = [deadline_key(dag_id, business_date, "")] + ([deadline_key(dag_id, None, run_id)] if run_id else [])
    with session_scope(engine) as session:
        return exceptions_repo.resolve_for(
            session, record_type="dag_run", record_keys=keys,
            reason_codes=[DEADLINE_MISSED], note="the close finished after its deadline",
        )
