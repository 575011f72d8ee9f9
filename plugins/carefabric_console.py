"""Airflow plugin: the carefabric operator console inside the Airflow API server and UI.

Mounts the console's FastAPI app at ``/carefabric`` (``fastapi_apps``) and adds it to the UI's
navigation (``external_views``: the UI shows it in an iframe at ``/plugin/carefabric``).

Plugin apps are not behind Airflow's login by themselves, so this plugin hands the console
Airflow's own authentication: the UI's JWT (``_token`` cookie) or a bearer token, resolved by
Airflow's ``get_user`` through the configured auth manager, and permissions asked of that auth
manager on the ``exception_replay`` DAG, so every auth manager (Simple, FAB, Keycloak) applies
its own roles:

- read (every page): may read the ``exception_replay`` DAG (SimpleAuthManager: VIEWER and up);
- act (discard, resolve, replay, crosswalk edits): may trigger ``exception_replay`` runs
  (SimpleAuthManager: USER and up), which is exactly what a replay does.

Replay triggers ``exception_replay`` through Airflow's REST API with the user's own token, so the
run is theirs and Airflow checks their rights again.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from typing import Any
from urllib.parse import quote

from airflow.configuration import conf
from airflow.plugins_manager import AirflowPlugin
from fastapi import HTTPException, Request

from carefabric.console import create_app
from carefabric.console.replay import REPLAY_DAG, TriggeredRun, TriggerError
from carefabric.console.security import AuthError, Principal
from carefabric.metrics_router import router as metrics_router
from carefabric.store.db import get_engine

URL_PREFIX = "/carefabric"
TIMEOUT_S = 20.0


async def authenticate(request: Request) -> Principal:
    """The Airflow user behind this request (401 without a valid session) and what they may do."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
    from airflow.api_fastapi.core_api.security import bearer_scheme, get_user

    credentials = await bearer_scheme(request)
    try:
        user = await get_user(request, None, credentials)
    except HTTPException as exc:
        raise AuthError(401, f"log in to Airflow first ({exc.detail})") from None
    manager = get_auth_manager()
    details = DagDetails(id=REPLAY_DAG)
    bearer = credentials.credentials if credentials and credentials.scheme.lower() == "bearer" else None
    return Principal(
        name=user.get_name(),
        can_read=manager.is_authorized_dag(method="GET", details=details, user=user),
        can_act=manager.is_authorized_dag(method="POST", access_entity=DagAccessEntity.RUN, details=details, user=user),
        credential=bearer or request.cookies.get(COOKIE_NAME_JWT_TOKEN, ""),
        ambient=bearer is None,
        role=getattr(user, "role", None),
    )


def csrf_secret() -> bytes:
    """Stable across API-server workers: derived from Airflow's JWT secret (else one per process)."""
    base = conf.get("api_auth", "jwt_secret", fallback="") or os.environ.get("CAREFABRIC_CSRF_SECRET", "")
    if not base:
        return secrets.token_bytes(32)
    return hashlib.sha256(b"carefabric-console-csrf|" + base.encode()).digest()


def _api_url() -> str:
    """Where the API server answers this process (itself): the console calls its REST API."""
    explicit = os.environ.get("CAREFABRIC_AIRFLOW_API_URL")
    if explicit:
        return explicit.rstrip("/")
    base = conf.get("api", "base_url", fallback="") or ""
    if base.startswith("http"):
        return base.rstrip("/")
    host = conf.get("api", "host", fallback="127.0.0.1")
    host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    return f"http://{host}:{conf.getint('api', 'port', fallback=8080)}{base.rstrip('/')}"


def _ui_url() -> str:
    base = conf.get("api", "base_url", fallback="") or ""
    return base.rstrip("/") if base.startswith("http") else _api_url()


class AirflowReplayTrigger:
    """Starts and reads ``exception_replay`` runs through Airflow's REST API as the user."""

    def __init__(self, api_url: str | None = None, ui_url: str | None = None, client: Any = None) -> None:
        self.api_url = api_url
        self.ui_url = ui_url
        self.client = client  # tests pass an httpx-compatible client bound to an in-process app

    def _request(self, principal: Principal, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        import httpx

        url = f"{self.api_url or _api_url()}/api/v2/dags/{REPLAY_DAG}/dagRuns{path}"
        headers = {"Authorization": f"Bearer {principal.credential}"}
        try:
            if self.client is not None:
                response = self.client.request(method, url, headers=headers, **kwargs)
            else:
                response = httpx.request(method, url, headers=headers, timeout=TIMEOUT_S, **kwargs)
        except httpx.HTTPError as exc:
            raise TriggerError(502, f"the API server did not answer ({type(exc).__name__})") from None
        if response.status_code >= 400:
            detail = response.json().get("detail") if "json" in response.headers.get("content-type", "") else None
            raise TriggerError(response.status_code if response.status_code in (401, 403, 404, 409) else 502,
                               str(detail or response.text)[:300])
        return response.json()

    def _run(self, body: dict[str, Any]) -> TriggeredRun:
        run_id = body["dag_run_id"]
        url = f"{self.ui_url or _ui_url()}/dags/{REPLAY_DAG}/runs/{quote(run_id, safe='')}"
        return TriggeredRun(dag_id=REPLAY_DAG, run_id=run_id, state=str(body.get("state")), url=url,
                            conf=body.get("conf") or {})

    def trigger(self, principal: Principal, conf_: dict[str, Any]) -> TriggeredRun:
        body = {"logical_date": None, "conf": conf_, "note": f"replay requested from the carefabric console by {principal.name}"}
        return self._run(self._request(principal, "POST", "", json=body))

    def status(self, principal: Principal, run_id: str) -> TriggeredRun:
        return self._run(self._request(principal, "GET", f"/{quote(run_id, safe='')}"))


def build_app(**overrides: Any) -> Any:
    """The console as Airflow serves it (tests pass ``trigger=`` and ``engine_factory=``)."""
    options: dict[str, Any] = {
        "authenticate": authenticate,
        "csrf_secret": csrf_secret(),
        "trigger": AirflowReplayTrigger(),
        "login_url": "/auth/login",
    }
    options.update(overrides)
    engine_factory = options.pop("engine_factory", get_engine)
    return create_app(engine_factory, **options)


#: The console app; its engine is made at the first request (importing this opens no database).
app = build_app()
app.include_router(metrics_router)  # GET /carefabric/metrics (Prometheus), behind the same login


class CarefabricConsolePlugin(AirflowPlugin):
    name = "carefabric_console"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "carefabric console"}]
    external_views = [
        {
            "name": "carefabric console",
            "href": "carefabric/",  # relative to the UI's base URL (works behind a proxy prefix)
            "url_route": "carefabric",
            "destination": "nav",
        }
    ]
