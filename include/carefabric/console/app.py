"""The operator console: a FastAPI app with a JSON API under ``/api`` and HTML pages under ``/``.

``create_app(engine_factory, authenticate=..., csrf_secret=...)`` builds it. The host supplies
authentication (``carefabric.console.security``): the Airflow plugin hands in Airflow's own
login, so this package imports no Airflow and there is no way to build an app that answers
without one. Pages are rendered on the server with Jinja2 (autoescaped) and link relative to the
mount point, so they work inside Airflow's iframe.

No PHI is ever on screen: raw payloads are not read, and what the store holds outside them is
control ids, line keys, claim ids, file names, codes and amounts. Every action is done as the
authenticated user and lands in the audit log under that name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from carefabric.console import actions
from carefabric.console.replay import ReplayTrigger, TriggerError
from carefabric.console.routers import ROUTERS
from carefabric.console.security import Authenticator, AuthError, Reader
from carefabric.console.web import ConsoleState, base, page


def create_app(
    engine_factory: Callable[[], Engine],
    *,
    authenticate: Authenticator,
    csrf_secret: bytes,
    trigger: ReplayTrigger | None = None,
    login_url: str | None = None,
    title: str = "carefabric console",
) -> FastAPI:
    """The console app. ``engine_factory`` is called once, at the first request (importing the
    Airflow plugin opens no database). ``trigger`` starts ``exception_replay`` runs as the user;
    without it, replay answers with the DAG command (a dry run)."""
    if not csrf_secret or len(csrf_secret) < 16:
        raise ValueError("csrf_secret must be at least 16 bytes")
    app = FastAPI(title=title, docs_url=None, openapi_url=None, redoc_url=None)
    app.state.console = ConsoleState(engine_factory=engine_factory, authenticate=authenticate,
                                     csrf_secret=csrf_secret, trigger=trigger, title=title, login_url=login_url)
    _error_handlers(app)
    _authenticate_first(app)
    for router in ROUTERS:
        app.include_router(router)
    _docs(app)
    app.state.engine = app.state.console.engine
    return app


def _authenticate_first(app: FastAPI) -> None:
    """Every request, known route or not, is authenticated before anything else is looked at:
    a stranger learns nothing, not even which paths or bodies would be valid."""

    @app.middleware("http")
    async def authenticate(request: Request, call_next: Callable[[Request], Any]) -> Response:
        try:
            request.state.principal = await app.state.console.authenticate(request)
        except AuthError as exc:
            return _auth_error(request, exc)
        return await call_next(request)


def _auth_error(request: Request, exc: AuthError) -> Response:
    response = _error(request, exc.status_code, exc.message)
    if exc.status_code == 401:
        response.headers["WWW-Authenticate"] = "Bearer"
    return response


def _docs(app: FastAPI) -> None:
    """The OpenAPI schema and Swagger UI, behind the same login as everything else."""

    @app.get("/api/openapi.json", include_in_schema=False)
    def openapi(user: Reader) -> dict[str, Any]:
        return app.openapi()

    @app.get("/api/docs", include_in_schema=False)
    def docs(request: Request, user: Reader) -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=f"{base(request)}/api/openapi.json", title=f"{app.title} API")


def _is_api(request: Request) -> bool:
    path = request.url.path.removeprefix(base(request))
    return path.startswith("/api") or "application/json" in request.headers.get("accept", "")[:40]


def _error(request: Request, status: int, message: str) -> Response:
    """JSON for the API, a page for a browser; short messages, never a traceback."""
    if _is_api(request):
        return JSONResponse({"detail": message}, status_code=status)
    return page(request, "error.html.j2", status_code=status, status=status, message=message)


def _error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AuthError)
    async def _auth(request: Request, exc: AuthError) -> Response:
        return _auth_error(request, exc)

    @app.exception_handler(TriggerError)
    async def _trigger(request: Request, exc: TriggerError) -> Response:
        return _error(request, exc.status_code, f"Airflow: {exc.message}")

    @app.exception_handler(LookupError)
    async def _not_found(request: Request, exc: LookupError) -> Response:
        return _error(request, 404, str(exc).strip("'\""))

    @app.exception_handler(actions.ConflictError)
    async def _conflict(request: Request, exc: actions.ConflictError) -> Response:
        return _error(request, 409, str(exc))

    @app.exception_handler(ValueError)
    async def _bad(request: Request, exc: ValueError) -> Response:
        return _error(request, 400, str(exc)[:300])

    @app.exception_handler(OverflowError)
    async def _overflow(request: Request, exc: OverflowError) -> Response:
        return _error(request, 400, "a number is out of range")

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        return _error(request, 400, _validation_message(exc))

    @app.exception_handler(SQLAlchemyError)
    async def _store(request: Request, exc: SQLAlchemyError) -> Response:
        orig = getattr(exc, "orig", None)  # DBAPIError carries the driver's message
        first = (str(orig) if orig else str(exc)).splitlines()[0][:200]
        return _error(request, 503, f"the integration store is not available: {first}")


def _validation_message(exc: RequestValidationError) -> str:
    """'page: Input should be ...' for the first few problems (no echo of long input)."""
    parts = []
    for err in exc.errors()[:3]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("query", "path", "body", "form"))
        parts.append(f"{where or 'request'}: {err.get('msg', 'invalid')}"[:150])
    return "; ".join(parts) or "invalid request"
