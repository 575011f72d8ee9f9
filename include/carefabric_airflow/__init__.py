"""Airflow glue shared by carefabric's DAGs: connections to clients, the store engine, the
business date of a run, default arguments, the retry policy and the failure notifier.

Kept apart from ``carefabric`` (the domain package imports no Airflow) and from ``dags/`` (so
each DAG file stays a short, readable story). Heavy imports happen inside functions: DAG files
import this module at parse time.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from functools import lru_cache
from typing import Any

from airflow.sdk import BaseNotifier, Variable
from airflow.sdk.definitions.retry_policy import ExceptionRetryPolicy, RetryAction, RetryRule

log = logging.getLogger(__name__)

OWNER = "integration-team"

# Transient peer faults are retried with backoff; a business rejection fails at once (it is in
# the exception queue already and retrying cannot fix a missing crosswalk entry). Dotted names
# keep DAG parsing free of those imports; Airflow resolves them and matches with isinstance
# (subclasses included), as ``is_transient`` does for the failure notifier.
RETRY_POLICY = ExceptionRetryPolicy(
    rules=[
        RetryRule(exception="carefabric.clients.rest.TransientError", action=RetryAction.RETRY, reason="peer unavailable or throttling"),
        RetryRule(exception="paramiko.ssh_exception.AuthenticationException", action=RetryAction.FAIL,
                  reason="SFTP login refused: fix the connection"),
        RetryRule(exception="paramiko.ssh_exception.SSHException", action=RetryAction.RETRY, reason="SFTP unavailable"),
        RetryRule(exception="carefabric.clients.rest.RejectedError", action=RetryAction.FAIL, reason="business rejection: see the exception queue"),
    ]
)


class ExceptionQueueNotifier(BaseNotifier):
    """Failure callback: a failed task becomes an exception in carefabric's queue, not just a log line."""

    template_fields = ("interface",)

    def __init__(self, interface: str) -> None:
        super().__init__()
        self.interface = interface

    def notify(self, context: Any) -> None:
        from carefabric.interfaces.common import record_task_failure
        from carefabric.store.db import session_scope

        ti = context["ti"]
        error = context.get("exception")
        transient = is_transient(error)
        with session_scope(engine()) as session:
            record_task_failure(
                session,
                interface=self.interface,
                task_id=ti.task_id,
                run_id=context["run_id"],
                error=f"{type(error).__name__}: {error}" if error else "task failed",
                transient=transient,
            )


class ExceptionQueueSuccessNotifier(BaseNotifier):
    """Success callback: the failure exceptions of this task in this run follow reality and close.

    A transient failure (ERP outage, SFTP down) that an operator cleared and re-ran is no longer
    a failing interface; its exception is resolved with an event naming the successful try.
    """

    template_fields = ("interface",)

    def __init__(self, interface: str) -> None:
        super().__init__()
        self.interface = interface

    def notify(self, context: Any) -> None:
        from carefabric.interfaces.common import record_task_success
        from carefabric.store.db import session_scope

        ti = context["ti"]
        with session_scope(engine()) as session:
            record_task_success(session, task_id=ti.task_id, run_id=context["run_id"], try_number=ti.try_number)


def is_transient(error: BaseException | None) -> bool:
    """Peer unavailable or throttling (retry), as opposed to a business rejection or a bug.

    Classified by type (``isinstance``), never by class name: a subclass counts as its parent.
    """
    import smtplib

    import paramiko

    from carefabric.clients.rest import TransientError

    if isinstance(error, paramiko.AuthenticationException):
        return False  # a refused login does not heal by waiting
    transient = (TransientError, paramiko.SSHException, smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError,
                 ConnectionError, TimeoutError)
    return isinstance(error, transient)


#: No task may run unbounded (a hung peer holds a worker and a pool slot); a whole run is
#: bounded too, so a stuck nightly run cannot block the next night's (``max_active_runs=1``).
EXECUTION_TIMEOUT = dt.timedelta(hours=2)
DAGRUN_TIMEOUT = dt.timedelta(hours=6)


def default_args(interface: str, retries: int = 3) -> dict[str, Any]:
    return {
        "execution_timeout": EXECUTION_TIMEOUT,
        "owner": OWNER,
        "retries": retries,
        "retry_delay": dt.timedelta(seconds=5),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": dt.timedelta(minutes=10),
        "retry_policy": RETRY_POLICY,
        "on_failure_callback": [ExceptionQueueNotifier(interface)],
        "on_success_callback": [ExceptionQueueSuccessNotifier(interface)],
    }


@lru_cache(maxsize=1)
def engine() -> Any:
    """The integration store's engine, one per worker process (URL from CAREFABRIC_DB_URL)."""
    from carefabric.store.db import get_engine

    return get_engine()


def billing_client(conn_id: str = "billing_api") -> Any:
    """The billing REST client from its Airflow connection (``carefabric_airflow.http``)."""
    from carefabric_airflow.http import billing_client as build

    return build(conn_id)


def erp_client(conn_id: str = "erp_api") -> Any:
    """The ERP REST client from its Airflow connection (``carefabric_airflow.http``)."""
    from carefabric_airflow.http import erp_client as build

    return build(conn_id)


def variable(name: str, default: str) -> str:
    try:
        return Variable.get(name, default=default)
    except Exception:  # noqa: BLE001 - a missing variable backend must not break a run
        return default


def json_variable(name: str, default: dict[str, Any]) -> dict[str, Any]:
    try:
        return json.loads(variable(name, json.dumps(default)))
    except json.JSONDecodeError:
        log.warning("variable %s is not JSON; using the default", name)
        return default


def business_date(context: Any) -> dt.date:
    """The business date a run works on: ``params.business_date`` if given, else the date the
    triggering asset events carry (asset-triggered runs have no interval), else the data
    interval's start as a local date (``CAREFABRIC_TIMEZONE``: a nightly run at 02:00 closes the
    previous day, also east of UTC)."""
    value = (context.get("params") or {}).get("business_date")
    if value:
        return dt.date.fromisoformat(str(value))
    from carefabric_airflow.data_assets import business_date_from_events, local_date

    if (from_events := business_date_from_events(context)) is not None:  # asset-triggered run
        return from_events
    start = context.get("data_interval_start") or context.get("logical_date")
    if start is None:
        return local_date(dt.datetime.now(dt.UTC)) - dt.timedelta(days=1)
    return local_date(start)


# Assets live in ``carefabric_airflow.data_assets`` (one home, with the schedules built on them).
def assets() -> dict[str, Any]:
    from carefabric_airflow.data_assets import ALL

    return dict(ALL)
