"""Airflow side of the FHIR Bulk Data pull: the connection, a deferrable wait, the export window.

The wait for an ``$export`` job can take minutes to hours at a real EHR. ``WaitForBulkExport``
defers to ``BulkExportStatusTrigger``, which polls the status URL asynchronously in the
triggerer honouring ``Retry-After`` (no worker slot is held while the EHR works) and hands the
manifest back. What a status answer means is decided in one place,
``carefabric.fhir_bulk.status.interpret_status``, for this trigger and the synchronous client.

The trigger gets a short-lived access token, never the private key (trigger arguments are
stored in the metadata database, encrypted with the Fernet key); when the token expires during
a long wait, the task wakes, fetches a new one from the connection and defers again.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import AsyncIterator
from typing import Any

from airflow.sdk import BaseOperator, Connection
from airflow.sdk.definitions.retry_policy import ExceptionRetryPolicy, RetryAction, RetryRule
from airflow.triggers.base import BaseTrigger, TriggerEvent

from carefabric_airflow import RETRY_POLICY, default_args

log = logging.getLogger(__name__)

CONN_ID = "ehr_fhir"
MAX_TRANSIENT = 5
MAX_RENEWALS = 20
WAIT_TIMEOUT = dt.timedelta(hours=4)


#: A refused client or a failed export is the EHR's answer on the merits: fail at once (the
#: reason is in the exception queue); a new try would only sign another refused assertion.
BULK_RETRY_POLICY = ExceptionRetryPolicy(rules=[
    *RETRY_POLICY.rules,
    RetryRule(exception="carefabric.fhir_bulk.auth.BulkAuthError", action=RetryAction.FAIL,
              reason="the EHR refused our client credentials"),
    RetryRule(exception="carefabric.fhir_bulk.status.BulkExportError", action=RetryAction.FAIL,
              reason="the EHR reported the export failed"),
])


def bulk_default_args(interface: str) -> dict[str, Any]:
    """The project's default arguments with ``BULK_RETRY_POLICY``."""
    return {**default_args(interface), "retry_policy": BULK_RETRY_POLICY}


#: The connection extras that configure the pull, not the wire: ``HttpHook`` would send every
#: extra it does not know as a header, so these are taken off the session again.
BULK_EXTRAS = ("base_path", "scope", "token_url", "group_id")


def _no_basic_auth(*_: object) -> None:
    """The connection's login is the client id and its password the PEM private key: both only
    sign the JWT assertion. ``HttpHook`` would otherwise send them as HTTP Basic on every call."""
    return None


def bulk_client(conn_id: str = CONN_ID) -> Any:
    """A ``BulkClient`` whose session and base URL come from ``HttpHook``.

    The connection: host/port/schema (+ extra ``base_path``, default ``/fhir``), login = client id,
    password = the PEM private key; extra ``scope``, ``token_url`` (else discovered), ``group_id``,
    and the provider's own keys (``verify``, ``proxies``, ``cert``, ``timeout``). The session
    carries carefabric's one retry budget for GETs (``carefabric.clients.rest.retry_budget``).
    """
    from airflow.providers.http.hooks.http import HttpHook
    from requests_toolbelt.adapters.socket_options import TCPKeepAliveAdapter

    from carefabric.clients.rest import retry_budget
    from carefabric.fhir_bulk import BulkClient
    from carefabric_airflow.http import record_peer_calls

    record_peer_calls()  # the EHR's response times and status codes, into the task's store
    adapter = TCPKeepAliveAdapter(idle=120, count=20, interval=30, max_retries=retry_budget(idempotent_posts=False))
    hook = HttpHook(method="GET", http_conn_id=conn_id, auth_type=_no_basic_auth, adapter=adapter)
    session = hook.get_conn()
    conn = hook.get_connection(conn_id)
    extra = conn.extra_dejson
    for key in BULK_EXTRAS:
        session.headers.pop(key, None)
    return BulkClient(hook.url_from_endpoint(extra.get("base_path", "/fhir")), conn.login or "", conn.password or "",
                      scope=extra.get("scope", "system/*.read"), token_url=extra.get("token_url"),
                      timeout=float(hook.merged_extra.get("timeout") or 60.0), session=session)


def export_group(conn_id: str = CONN_ID) -> str | None:
    """The Group to export (extra ``group_id``), or None for a system-level export."""
    return Connection.get(conn_id).extra_dejson.get("group_id") or None


def export_window(context: Any) -> tuple[dt.datetime, dt.datetime]:
    """``_since``/``_until`` of a run: the business date given in params (a whole UTC day), else
    the run's data interval (a zero-length interval means the day before its start)."""
    value = (context.get("params") or {}).get("business_date")
    if value:
        start = dt.datetime.combine(dt.date.fromisoformat(str(value)), dt.time(), tzinfo=dt.UTC)
        return start, start + dt.timedelta(days=1)
    start, end = context["data_interval_start"], context["data_interval_end"]
    if start == end:
        start = end - dt.timedelta(days=1)
    return start, end


class BulkExportStatusTrigger(BaseTrigger):
    """Poll one export's status URL until the manifest, a failure or an expired token."""

    def __init__(self, status_url: str, access_token: str, max_transient: int = MAX_TRANSIENT) -> None:
        super().__init__()
        self.status_url, self.access_token, self.max_transient = status_url, access_token, max_transient

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{__name__}.BulkExportStatusTrigger",
                {"status_url": self.status_url, "access_token": self.access_token, "max_transient": self.max_transient})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        import httpx

        from carefabric.clients.rest import TransientError
        from carefabric.fhir_bulk import BulkExportError, Pending, TokenExpired, interpret_status

        transient = 0
        headers = {"Authorization": f"Bearer {self.access_token}", "Accept": "application/json"}
        async with httpx.AsyncClient(timeout=60.0) as client:
            while True:
                try:
                    response = await client.get(self.status_url, headers=headers)
                    answer = interpret_status(response.status_code, response.headers, response.text)
                except (TransientError, httpx.TransportError) as exc:
                    transient += 1
                    if transient > self.max_transient:
                        yield TriggerEvent({"status": "error", "message": f"status kept failing: {exc}"})
                        return
                    wait = getattr(exc, "retry_after", None) or 2.0 ** transient
                    log.warning("export status: %s; retry %d in %.0f s", exc, transient, wait)
                    await asyncio.sleep(wait)
                    continue
                except TokenExpired:
                    yield TriggerEvent({"status": "token_expired"})
                    return
                except BulkExportError as exc:
                    yield TriggerEvent({"status": "error", "message": str(exc)})
                    return
                if isinstance(answer, Pending):
                    log.info("export %s", answer)
                    await asyncio.sleep(answer.retry_after)
                    continue
                yield TriggerEvent({"status": "complete", "manifest": answer.as_dict()})
                return


class WaitForBulkExport(BaseOperator):
    """Defer until the export at ``status_url`` is done; returns its manifest (a dict) as XCom."""

    template_fields = ("status_url",)

    def __init__(self, *, status_url: Any, conn_id: str = CONN_ID, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.status_url, self.conn_id = status_url, conn_id

    def execute(self, context: Any) -> None:
        self._defer(renewals=0)

    def _defer(self, renewals: int) -> None:
        token = bulk_client(self.conn_id).access_token()
        self.defer(trigger=BulkExportStatusTrigger(str(self.status_url), token), method_name="resume",
                   kwargs={"renewals": renewals}, timeout=WAIT_TIMEOUT)

    def resume(self, context: Any, event: dict[str, Any], renewals: int = 0) -> dict[str, Any]:
        from carefabric.fhir_bulk import BulkAuthError, BulkExportError

        status = event.get("status")
        if status == "complete":
            return dict(event["manifest"])
        if status == "token_expired":
            if renewals >= MAX_RENEWALS:
                raise BulkAuthError(f"the EHR kept refusing fresh access tokens ({renewals} renewals)")
            log.info("access token expired while waiting; renewing")
            self._defer(renewals + 1)
        raise BulkExportError(str(event.get("message") or f"unexpected trigger event {status!r}"))
