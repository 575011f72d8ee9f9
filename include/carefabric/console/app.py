"""The operator console: a FastAPI app with a JSON API under ``/api`` and HTML pages under ``/``.

``create_app(engine_factory, replayer=None)`` builds it; the Airflow plugin mounts it at
``/carefabric`` inside the API server, and it runs just as well under uvicorn on its own. Pages
are rendered on the server with Jinja2 (templates in this package, autoescaped) and link
relative to the mount point (``root_path``), so they work inside Airflow's iframe.

No PHI is ever on screen: raw payloads are not read, and what the store holds outside them is
control ids, line keys, claim ids, file names, codes and amounts. Actions (discard, resolve,
replay, crosswalk edits) name an actor: header ``X-Carefabric-Actor``, query parameter or form
field ``actor``, default ``console``; all are in the audit log.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import FastAPI, Form, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from carefabric.console import actions, queries
from carefabric.store.models import EXCEPTION_KINDS, EXCEPTION_STATUSES

TEMPLATES = Path(__file__).resolve().parent / "templates"
ACTOR_HEADER = "X-Carefabric-Actor"


class NoteBody(BaseModel):
    note: str | None = None
    actor: str | None = None


class ReplayBody(BaseModel):
    exception_ids: list[int] | None = None
    reason_code: str | None = None
    interface: str | None = None
    actor: str | None = None


class CdmBody(BaseModel):
    revenue_account: str
    erp_item: str | None = None
    procedure_code: str | None = None
    description: str | None = None
    actor: str | None = None


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(("html", "j2")),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["q"] = lambda value: quote(str(value), safe="")
    env.filters["short_time"] = _short_time
    env.globals["statuses"] = EXCEPTION_STATUSES
    env.globals["kinds"] = EXCEPTION_KINDS
    return env


def _short_time(value: str | None) -> str:
    if not value:
        return "-"
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return value
    return moment.strftime("%Y-%m-%d %H:%M:%S") + (" UTC" if moment.tzinfo else "")


def create_app(
    engine_factory: Callable[[], Engine],
    *,
    replayer: actions.Replayer | None = None,
    title: str = "carefabric console",
) -> FastAPI:
    """The console app. ``engine_factory`` is called once, at the first request (importing the
    Airflow plugin opens no database). ``replayer(engine, ids, actor)`` runs a full replay (map,
    route, post); without it, replay answers with the ``exception_replay`` DAG command."""
    app = FastAPI(title=title, docs_url="/api/docs", openapi_url="/api/openapi.json", redoc_url=None)
    env = _environment()
    lock = threading.Lock()
    state: dict[str, Engine] = {}

    def engine() -> Engine:
        if "engine" not in state:
            with lock:
                if "engine" not in state:
                    state["engine"] = engine_factory()
        return state["engine"]

    @contextmanager
    def session() -> Iterator[Session]:
        s = Session(engine(), expire_on_commit=False)
        try:
            yield s
            s.commit()
        except BaseException:
            s.rollback()
            raise
        finally:
            s.close()

    def actor_of(request: Request, body_actor: str | None = None) -> str:
        return actions.clean_actor(
            request.headers.get(ACTOR_HEADER) or request.query_params.get("actor") or body_actor
        )

    def base(request: Request) -> str:
        return str(request.scope.get("root_path", "")).rstrip("/")

    def page(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        html = env.get_template(template).render(
            base=base(request), title=title, request_path=request.url.path,
            msg=request.query_params.get("msg"), **context,
        )
        return HTMLResponse(html, status_code=status_code)

    def redirect(request: Request, path: str, **params: Any) -> RedirectResponse:
        query = urlencode({k: v for k, v in params.items() if v is not None})
        return RedirectResponse(f"{base(request)}{path}" + (f"?{query}" if query else ""), status_code=303)

    # ------------------------------------------------------------------ errors

    def _error(request: Request, status: int, message: str) -> Response:
        if request.url.path.startswith(f"{base(request)}/api") or request.url.path.startswith("/api"):
            return JSONResponse({"detail": message}, status_code=status)
        return page(request, "error.html.j2", status_code=status, status=status, message=message)

    @app.exception_handler(LookupError)
    async def _not_found(request: Request, exc: LookupError) -> Response:
        return _error(request, 404, str(exc).strip("'\""))

    @app.exception_handler(actions.ConflictError)
    async def _conflict(request: Request, exc: actions.ConflictError) -> Response:
        return _error(request, 409, str(exc))

    @app.exception_handler(ValueError)
    async def _bad(request: Request, exc: ValueError) -> Response:
        return _error(request, 422, str(exc))

    @app.exception_handler(SQLAlchemyError)
    async def _store(request: Request, exc: SQLAlchemyError) -> Response:
        first = (str(exc.orig) if getattr(exc, "orig", None) else str(exc)).splitlines()[0][:300]
        return _error(request, 503, f"the integration store is not available: {first}")

    # ------------------------------------------------------------------ JSON API

    @app.get("/api/health", tags=["api"])
    def api_health(day: dt.date | None = None) -> dict[str, Any]:
        with session() as s:
            return queries.health(s, day)

    @app.get("/api/exceptions", tags=["api"])
    def api_exceptions(
        status: str | None = None,
        interface: str | None = None,
        reason_code: str | None = None,
        kind: str | None = None,
        page_no: int = Query(1, alias="page", ge=1),
        page_size: int = Query(50, ge=1, le=500),
    ) -> dict[str, Any]:
        with session() as s:
            return queries.list_exceptions(
                s, status=status, interface=interface, reason_code=reason_code, kind=kind,
                page=page_no, page_size=page_size,
            )

    @app.get("/api/exceptions/{exception_id}", tags=["api"])
    def api_exception(exception_id: int) -> dict[str, Any]:
        with session() as s:
            return queries.exception_detail(s, exception_id)

    @app.post("/api/exceptions/{exception_id}/discard", tags=["api"])
    def api_discard(exception_id: int, request: Request, body: NoteBody | None = None) -> dict[str, Any]:
        body = body or NoteBody()
        actor = actor_of(request, body.actor)
        with session() as s:
            return actions.discard(s, exception_id, actor=actor, note=body.note)

    @app.post("/api/exceptions/{exception_id}/resolve", tags=["api"])
    def api_resolve(exception_id: int, request: Request, body: NoteBody | None = None) -> dict[str, Any]:
        body = body or NoteBody()
        actor = actor_of(request, body.actor)
        with session() as s:
            return actions.resolve(s, exception_id, actor=actor, note=body.note)

    @app.post("/api/exceptions/{exception_id}/replay", tags=["api"])
    def api_replay_one(exception_id: int, request: Request, body: NoteBody | None = None) -> dict[str, Any]:
        with session() as s:
            queries.exception_detail(s, exception_id)  # 404 when unknown
        actor = actor_of(request, body.actor if body else None)
        return actions.replay(engine(), exception_ids=[exception_id], actor=actor, replayer=replayer)

    @app.post("/api/replay", tags=["api"])
    def api_replay(request: Request, body: ReplayBody) -> dict[str, Any]:
        return actions.replay(
            engine(), exception_ids=body.exception_ids, reason_code=body.reason_code, interface=body.interface,
            actor=actor_of(request, body.actor), replayer=replayer,
        )

    @app.get("/api/trace", tags=["api"])
    def api_trace(key: str) -> dict[str, Any]:
        with session() as s:
            return queries.trace(s, key)

    @app.get("/api/crosswalks", tags=["api"])
    def api_crosswalks() -> dict[str, Any]:
        with session() as s:
            return queries.crosswalks_overview(s)

    @app.get("/api/crosswalks/{table}", tags=["api"])
    def api_crosswalk(table: str) -> dict[str, Any]:
        with session() as s:
            return queries.crosswalk_rows(s, table)

    @app.get("/api/crosswalks/{table}/history", tags=["api"])
    def api_crosswalk_history(table: str, key: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        with session() as s:
            queries.crosswalk_rows(s, table)  # 404 for an unknown table
            return queries.crosswalk_history(s, table, key, limit)

    @app.put("/api/crosswalks/cdm/{code}", tags=["api"])
    def api_set_cdm(code: str, request: Request, body: CdmBody) -> dict[str, Any]:
        actor = actor_of(request, body.actor)
        with session() as s:
            return actions.set_cdm(
                s, code, revenue_account=body.revenue_account, erp_item=body.erp_item,
                procedure_code=body.procedure_code, description=body.description, actor=actor,
            )

    @app.get("/api/audit", tags=["api"])
    def api_audit(limit: int = 100) -> list[dict[str, Any]]:
        with session() as s:
            return queries.audit_entries(s, limit)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    # ------------------------------------------------------------------ HTML pages

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def health_page(request: Request, day: dt.date | None = None) -> HTMLResponse:
        with session() as s:
            data = queries.health(s, day)
        return page(request, "health.html.j2", data=data, nav="health")

    @app.get("/exceptions", response_class=HTMLResponse, include_in_schema=False)
    def exceptions_page(
        request: Request,
        status: str | None = "open",
        interface: str | None = None,
        reason_code: str | None = None,
        kind: str | None = None,
        page_no: int = Query(1, alias="page", ge=1),
        page_size: int = Query(50, ge=1, le=500),
    ) -> HTMLResponse:
        with session() as s:
            data = queries.list_exceptions(
                s, status=status or None, interface=interface or None, reason_code=reason_code or None,
                kind=kind or None, page=page_no, page_size=page_size,
            )
            facets = queries.exception_facets(s)
        filters = {k: v for k, v in data["filters"].items() if v}
        if not status:
            filters["status"] = "all"
        return page(request, "exceptions.html.j2", data=data, facets=facets, filters=filters, nav="exceptions",
                    replay_cmd=queries.replay_command(reason_code=reason_code, interface=interface)
                    if (reason_code or interface) else None)

    @app.get("/exceptions/{exception_id}", response_class=HTMLResponse, include_in_schema=False)
    def exception_page(request: Request, exception_id: int) -> HTMLResponse:
        with session() as s:
            data = queries.exception_detail(s, exception_id)
        return page(request, "exception.html.j2", exc=data, nav="exceptions", has_replayer=replayer is not None)

    @app.post("/exceptions/{exception_id}/discard", include_in_schema=False)
    def discard_form(
        request: Request, exception_id: int, note: str = Form(""), actor: str = Form("")
    ) -> Response:
        with session() as s:
            actions.discard(s, exception_id, actor=actor_of(request, actor), note=note)
        return redirect(request, f"/exceptions/{exception_id}", msg="Exception discarded.")

    @app.post("/exceptions/{exception_id}/resolve", include_in_schema=False)
    def resolve_form(
        request: Request, exception_id: int, note: str = Form(""), actor: str = Form("")
    ) -> Response:
        with session() as s:
            actions.resolve(s, exception_id, actor=actor_of(request, actor), note=note)
        return redirect(request, f"/exceptions/{exception_id}", msg="Exception resolved.")

    @app.post("/exceptions/{exception_id}/replay", include_in_schema=False)
    def replay_form(request: Request, exception_id: int, actor: str = Form("")) -> Response:
        with session() as s:
            queries.exception_detail(s, exception_id)
        result = actions.replay(engine(), exception_ids=[exception_id], actor=actor_of(request, actor), replayer=replayer)
        return page(request, "replay.html.j2", result=result, exception_id=exception_id, nav="exceptions")

    @app.post("/replay", include_in_schema=False)
    def replay_bulk_form(
        request: Request, reason_code: str = Form(""), interface: str = Form(""), actor: str = Form("")
    ) -> Response:
        result = actions.replay(
            engine(), reason_code=reason_code or None, interface=interface or None,
            actor=actor_of(request, actor), replayer=replayer,
        )
        return page(request, "replay.html.j2", result=result, exception_id=None, nav="exceptions")

    @app.get("/trace", response_class=HTMLResponse, include_in_schema=False)
    def trace_page(request: Request, key: str = "") -> HTMLResponse:
        data = None
        if key.strip():
            with session() as s:
                data = queries.trace(s, key)
        return page(request, "trace.html.j2", key=key, data=data, nav="trace")

    @app.get("/crosswalks", response_class=HTMLResponse, include_in_schema=False)
    def crosswalks_page(request: Request, table: str = "cdm") -> HTMLResponse:
        with session() as s:
            overview = queries.crosswalks_overview(s)
            data = queries.crosswalk_rows(s, table)
            history = queries.crosswalk_history(s, table, limit=50)
        return page(request, "crosswalks.html.j2", overview=overview, data=data, history=history, nav="crosswalks")

    @app.post("/crosswalks/cdm", include_in_schema=False)
    def set_cdm_form(
        request: Request,
        cdm_code: str = Form(""),
        revenue_account: str = Form(""),
        erp_item: str = Form(""),
        procedure_code: str = Form(""),
        description: str = Form(""),
        actor: str = Form(""),
    ) -> Response:
        with session() as s:
            row = actions.set_cdm(
                s, cdm_code, revenue_account=revenue_account, erp_item=erp_item or None,
                procedure_code=procedure_code or None, description=description or None,
                actor=actor_of(request, actor),
            )
        return redirect(request, "/crosswalks", table="cdm", msg=f"CDM {row['cdm_code']} saved (version {row['version']}).")

    @app.get("/audit", response_class=HTMLResponse, include_in_schema=False)
    def audit_page(request: Request, limit: int = 200) -> HTMLResponse:
        with session() as s:
            entries = queries.audit_entries(s, limit)
        return page(request, "audit.html.j2", entries=entries, nav="audit")

    app.state.engine = engine
    return app
