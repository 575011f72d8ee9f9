"""The exception queue: triage (filter, sort, bulk), discard, resolve and replay.

Every action is done as the logged-in user; a note is the only free text. Replay asks Airflow
to run ``exception_replay`` as that user and shows the run with a link to it.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, Response

from carefabric.console import actions, queries
from carefabric.console.queries.exceptions import PAGE_SIZE_MAX, QueueFilter
from carefabric.console.replay import TriggerError
from carefabric.console.schemas import (
    ID_MAX,
    BulkBody,
    BulkResult,
    ExceptionDetail,
    ExceptionIdField,
    ExceptionPage,
    NoteBody,
    ReplayBody,
    ReplayResult,
    Run,
)
from carefabric.console.security import Operator, Principal, Reader
from carefabric.console.web import StoreSession, page, redirect, state_of

router = APIRouter()
ExceptionId = Annotated[int, Path(ge=1, le=ID_MAX)]
DONE = {"discard": "discarded", "resolve": "resolved"}
RUN_ID = Path(min_length=1, max_length=250, pattern=r"^[\w.:+\-]+$")


def queue_filter(
    status: str | None = Query(None, max_length=16),
    interface: str | None = Query(None, max_length=40),
    reason_code: str | None = Query(None, max_length=40),
    kind: str | None = Query(None, max_length=16),
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    min_amount: float | None = Query(None, ge=0, le=1e12),
    older_than_days: int | None = Query(None, ge=0, le=36500),
    sort: str = Query("-id", max_length=20),
) -> QueueFilter:
    """The queue's filters from the query string ('' means no filter, as the HTML form sends it)."""
    return QueueFilter(status=status or None, interface=interface or None, reason_code=reason_code or None,
                       kind=kind or None, date_from=date_from, date_to=date_to,
                       min_amount_cents=round(min_amount * 100) if min_amount is not None else None,
                       older_than_days=older_than_days, sort=sort or "-id")


Filter = Annotated[QueueFilter, Depends(queue_filter)]
PageNo = Annotated[int, Query(alias="page", ge=1, le=1_000_000)]
PageSize = Annotated[int, Query(ge=1, le=PAGE_SIZE_MAX)]


def _act(s: Any, action: str, exception_id: int, user: Principal, note: str | None) -> dict[str, Any]:
    if action == "discard":
        return actions.discard(s, exception_id, actor=user.name, note=note)
    return actions.resolve(s, exception_id, actor=user.name, note=note)


def _replay(request: Request, user: Principal, **selection: Any) -> dict[str, Any]:
    console = state_of(request)
    return actions.replay(console.engine(), actor=user.name, trigger=console.trigger, principal=user, **selection)


# ------------------------------------------------------------------ JSON API


@router.get("/api/exceptions", tags=["api"], response_model=ExceptionPage)
def api_exceptions(user: Reader, s: StoreSession, f: Filter, page_no: PageNo = 1, page_size: PageSize = 50) -> dict:
    return queries.list_exceptions(s, f, page=page_no, page_size=page_size)


@router.get("/api/exceptions/{exception_id}", tags=["api"], response_model=ExceptionDetail)
def api_exception(user: Reader, s: StoreSession, exception_id: ExceptionId) -> dict:
    return queries.exception_detail(s, exception_id)


@router.post("/api/exceptions/{exception_id}/{action}", tags=["api"], response_model=ExceptionDetail)
def api_act(user: Operator, s: StoreSession, exception_id: ExceptionId,
            action: Annotated[str, Path(pattern="^(discard|resolve)$")], body: NoteBody | None = None) -> dict:
    return _act(s, action, exception_id, user, body.note if body else None)


@router.post("/api/bulk/{action}", tags=["api"], response_model=BulkResult)
def api_bulk(user: Operator, s: StoreSession, action: Annotated[str, Path(pattern="^(discard|resolve)$")],
             body: BulkBody) -> BulkResult:
    return _bulk(s, action, body.exception_ids, user, body.note)


def _bulk(s: Any, action: str, ids: list[int], user: Principal, note: str | None) -> BulkResult:
    """Each selected exception on its own (a closed one does not stop the others)."""
    done, failed = [], {}
    for exc_id in dict.fromkeys(ids):
        try:
            _act(s, action, exc_id, user, note)
            done.append(exc_id)
        except (LookupError, ValueError) as exc:
            failed[exc_id] = str(exc).strip("'\"")
    return BulkResult(done=done, failed=failed)


@router.post("/api/replay", tags=["api"], response_model=ReplayResult)
def api_replay(request: Request, user: Operator, body: ReplayBody) -> dict:
    return _replay(request, user, exception_ids=body.exception_ids, reason_code=body.reason_code,
                   interface=body.interface, date_from=body.business_date_from, date_to=body.business_date_to)


@router.get("/api/replay/runs/{run_id}", tags=["api"], response_model=Run)
def api_replay_run(request: Request, user: Reader, run_id: str = RUN_ID) -> dict:
    trigger = state_of(request).trigger
    if trigger is None:
        raise TriggerError(404, "no orchestrator is connected to this console")
    return trigger.status(user, run_id).as_dict()


# ------------------------------------------------------------------ pages


@router.get("/exceptions", response_class=HTMLResponse, include_in_schema=False)
def exceptions_page(request: Request, user: Reader, s: StoreSession, f: Filter,
                    page_no: PageNo = 1, page_size: PageSize = 50) -> HTMLResponse:
    if "status" not in request.query_params:
        f = QueueFilter(**{**f.__dict__, "status": "open"})
    data = queries.list_exceptions(s, f, page=page_no, page_size=page_size)
    filters = {k: v for k, v in data["filters"].items() if v not in (None, "")}
    if "min_amount_cents" in filters:  # the query string speaks in currency units
        filters["min_amount"] = f"{filters.pop('min_amount_cents') / 100:.2f}"
    return page(request, "exceptions.html.j2", data=data, facets=queries.exception_facets(s), nav="exceptions",
                filters=filters)


@router.get("/exceptions/{exception_id}", response_class=HTMLResponse, include_in_schema=False)
def exception_page(request: Request, user: Reader, s: StoreSession, exception_id: ExceptionId) -> HTMLResponse:
    return page(request, "exception.html.j2", exc=queries.exception_detail(s, exception_id), nav="exceptions")


@router.post("/exceptions/{exception_id}/replay", include_in_schema=False)
def replay_form(request: Request, user: Operator, exception_id: ExceptionId) -> Response:
    result = _replay(request, user, exception_ids=[exception_id])
    return page(request, "replay.html.j2", result=result, nav="exceptions")


@router.post("/exceptions/{exception_id}/{action}", include_in_schema=False)
def act_form(request: Request, user: Operator, s: StoreSession, exception_id: ExceptionId,
             action: Annotated[str, Path(pattern="^(discard|resolve)$")], note: str = Form("", max_length=2000)) -> Response:
    _act(s, action, exception_id, user, note)
    return redirect(request, f"/exceptions/{exception_id}", msg=f"Exception {DONE[action]} by {user.name}.")


@router.post("/bulk", include_in_schema=False)
def bulk_form(request: Request, user: Operator, s: StoreSession,
              action: Annotated[str, Form(pattern="^(discard|resolve|replay)$")],
              ids: Annotated[list[ExceptionIdField], Form(max_length=500)], note: Annotated[str, Form(max_length=2000)] = "") -> Response:
    if action == "replay":
        return page(request, "replay.html.j2", result=_replay(request, user, exception_ids=ids), nav="exceptions")
    result = _bulk(s, action, ids, user, note)
    msg = f"{action.capitalize()}: {len(result.done)} done" + (f", {len(result.failed)} refused" if result.failed else "")
    if result.failed:
        msg += " (" + "; ".join(f"{k}: {v}" for k, v in list(result.failed.items())[:5]) + ")"
    return redirect(request, "/exceptions", msg=msg)


@router.post("/replay", include_in_schema=False)
def replay_bulk_form(request: Request, user: Operator, reason_code: str = Form("", max_length=40),
                     interface: str = Form("", max_length=40), date_from: str = Form(""), date_to: str = Form(""),
                     ids: Annotated[list[ExceptionIdField] | None, Form(max_length=500)] = None) -> Response:
    result = _replay(request, user, exception_ids=ids or None, reason_code=reason_code or None,
                     interface=interface or None, date_from=_date(date_from), date_to=_date(date_to))
    return page(request, "replay.html.j2", result=result, nav="exceptions")


@router.get("/replay/runs/{run_id}", response_class=HTMLResponse, include_in_schema=False)
def replay_run_page(request: Request, user: Reader, s: StoreSession, run_id: str = RUN_ID) -> HTMLResponse:
    """The run's state (the page reloads itself while it runs) and, once it ended, the
    exceptions it was asked to replay as they are now."""
    run = api_replay_run(request, user, run_id)
    conf = run.get("conf") or {}
    ids = [int(i) for i in conf.get("exception_ids") or [] if str(i).isdigit()]
    outcome = None
    if run["state"] not in ("queued", "running") and (ids or conf.get("reason_code") or conf.get("interface")):
        f = QueueFilter(reason_code=None if ids else conf.get("reason_code"),
                        interface=None if ids else conf.get("interface"))
        items = queries.list_exceptions(s, f, page=1, page_size=PAGE_SIZE_MAX)["items"]
        outcome = [e for e in items if not ids or e["id"] in ids]
    result = {"mode": "triggered", "run": run, "exception_ids": ids, "outcome": outcome}
    return page(request, "replay.html.j2", result=result, nav="exceptions")


def _date(text: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text) if text else None
    except ValueError:
        raise ValueError(f"not a date (YYYY-MM-DD): {text[:20]!r}") from None
