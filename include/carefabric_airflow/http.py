"""REST clients from Airflow HTTP connections, through the http provider's ``HttpHook``.

The hook builds the session from the connection: base URL (``schema://host[:port]``; a host
that is already a URL, e.g. ``https://gateway.example/erp``, is taken as it is; no port means
none, never ``:None``), TLS verification, proxies, extra headers (every connection extra the
provider does not know becomes a header, so keep extras to headers and the provider's own keys),
TCP keep-alive, and auth: ``BearerAuth`` from the connection's login (the client's name) and
password (the token). carefabric's one retry budget (``carefabric.clients.rest.retry_budget``)
is mounted as the hook's adapter, and the domain client gets the finished session.

Every client built here records its calls' response times and status codes into the task's
store (``record_peer_calls``; ``carefabric.peer_calls``), written when the task process exits.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from carefabric.clients.billing import BillingClient
    from carefabric.clients.erp import ErpClient
    from carefabric.clients.rest import RestClient

#: Where both peers' APIs live under the connection's base URL.
API_ROOT = "/api/v1"
DEFAULT_TIMEOUT = 30.0


def _task_store() -> Engine | None:
    """The task's store engine (``carefabric_airflow.engine``), or None where there is no store.

    A SQLite store file that does not exist is not created for the metrics (a process that only
    talks to a peer, e.g. a transport test): the recorder keeps its sums and writes them nowhere.
    """
    from sqlalchemy.engine import make_url

    from carefabric import config
    from carefabric_airflow import engine

    if not engine.cache_info().currsize:
        url = make_url(config.db_url())
        if url.get_backend_name() == "sqlite" and not (url.database and Path(url.database).is_file()):
            return None
    return engine()


def record_peer_calls() -> None:
    """Peer calls of this process are recorded into the task's store (``carefabric.peer_calls``)."""
    from carefabric import peer_calls

    peer_calls.RECORDER.bind(_task_store)


def rest_client(conn_id: str, *, idempotent_posts: bool = False, api_root: str = API_ROOT) -> RestClient:
    """A ``RestClient`` whose session, base URL, auth and retries come from ``HttpHook``."""
    from airflow.providers.http.hooks.http import HttpHook
    from requests_toolbelt.adapters.socket_options import TCPKeepAliveAdapter

    from carefabric.clients.rest import BearerAuth, RestClient, retry_budget

    # The hook's own keep-alive adapter, with the retry budget mounted on it.
    adapter = TCPKeepAliveAdapter(idle=120, count=20, interval=30,
                                  max_retries=retry_budget(idempotent_posts=idempotent_posts))
    hook = HttpHook(method="GET", http_conn_id=conn_id, auth_type=BearerAuth, adapter=adapter)
    session = hook.get_conn()
    timeout = float(hook.merged_extra.get("timeout") or DEFAULT_TIMEOUT)
    record_peer_calls()
    return RestClient(hook.url_from_endpoint(api_root), session, timeout=timeout)


def billing_client(conn_id: str = "billing_api") -> BillingClient:
    """Billing: charge batches carry an idempotency key per line, so their POSTs may be retried."""
    from carefabric.clients.billing import BillingClient

    return BillingClient(rest_client(conn_id, idempotent_posts=True))


def erp_client(conn_id: str = "erp_api") -> ErpClient:
    """ERP: documents are POSTed single-shot (``ErpClient.send``); the outbox decides re-sends."""
    from carefabric.clients.erp import ErpClient

    return ErpClient(rest_client(conn_id))
