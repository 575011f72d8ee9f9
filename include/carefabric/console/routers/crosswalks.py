"""Every crosswalk viewable and editable, with its history as before/after diffs.

An edit that makes held charge lines mappable offers to replay them right away.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from carefabric.console import actions, queries
from carefabric.console.queries.crosswalks import LIMIT_MAX
from carefabric.console.schemas import CrosswalkBody, CrosswalkTable, HistoryEntry
from carefabric.console.security import Operator, Reader
from carefabric.console.web import StoreSession, page, state_of
from carefabric.store.crosswalks import SPECS
from carefabric.store.models import ExceptionRecord

router = APIRouter()
Table = Annotated[str, Path(max_length=40)]
OFFER_MAX = 500


def _check_columns(table: str, values: dict[str, Any]) -> None:
    if table not in SPECS:
        raise LookupError(f"no crosswalk {table!r} (one of {', '.join(SPECS)})")
    allowed = {*SPECS[table].key, *SPECS[table].values}
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise ValueError(f"{table} has no column {', '.join(unknown)} (columns: {', '.join(sorted(allowed))})")


def newly_mappable(request: Request, session: Session) -> list[int]:
    """Open held-charge exceptions that today's crosswalks would map (the 'replay them' offer)."""
    ids = list(session.scalars(
        select(ExceptionRecord.id).where(ExceptionRecord.status == "open", ExceptionRecord.record_type == "charge")
        .order_by(ExceptionRecord.id).limit(OFFER_MAX)
    ))
    if not ids:
        return []
    would_map, _, _ = actions.preview(state_of(request).engine(), ids)
    return would_map


@router.get("/api/crosswalks", tags=["api"])
def api_crosswalks(user: Reader, s: StoreSession) -> dict[str, Any]:
    return queries.crosswalks_overview(s)


@router.get("/api/crosswalks/{table}", tags=["api"], response_model=CrosswalkTable)
def api_crosswalk(user: Reader, s: StoreSession, table: Table) -> dict[str, Any]:
    return queries.crosswalk_rows(s, table)


@router.get("/api/crosswalks/{table}/history", tags=["api"], response_model=list[HistoryEntry])
def api_crosswalk_history(user: Reader, s: StoreSession, table: Table, key: str | None = Query(None, max_length=255),
                          limit: int = Query(100, ge=1, le=LIMIT_MAX)) -> list[dict[str, Any]]:
    queries.crosswalk_rows(s, table)  # 404 for an unknown table
    return queries.crosswalk_history(s, table, key, limit)


@router.put("/api/crosswalks/{table}", tags=["api"])
def api_set_crosswalk(request: Request, user: Operator, s: StoreSession, table: Table, body: CrosswalkBody) -> dict[str, Any]:
    _check_columns(table, body.values)
    row = actions.set_crosswalk(s, table, body.values, actor=user.name)
    s.commit()  # the mappability check reads through its own connection
    return {**row, "newly_mappable_exceptions": newly_mappable(request, s) if table != "facilities" else []}


@router.get("/crosswalks", response_class=HTMLResponse, include_in_schema=False)
def crosswalks_page(request: Request, user: Reader, s: StoreSession, table: str = Query("cdm", max_length=40),
                    edit: str | None = Query(None, max_length=255)) -> HTMLResponse:
    data = queries.crosswalk_rows(s, table)
    editing = next((r for r in data["rows"] if r["key"] == edit), None)
    return page(request, "crosswalks.html.j2", overview=queries.crosswalks_overview(s), data=data, editing=editing,
                history=queries.crosswalk_history(s, table, limit=50), nav="crosswalks")


@router.post("/crosswalks/{table}", include_in_schema=False)
async def set_crosswalk_form(request: Request, user: Operator, table: Table) -> Response:
    form = await request.form()
    values = {k: str(v) for k, v in form.items() if k != "csrf_token"}
    return _save(request, user.name, table, values)


def _save(request: Request, actor: str, table: str, values: dict[str, str]) -> Response:
    _check_columns(table, values)
    console = state_of(request)
    with Session(console.engine(), expire_on_commit=False) as s, s.begin():
        row = actions.set_crosswalk(s, table, dict(values), actor=actor)
    with Session(console.engine()) as s:
        offer = newly_mappable(request, s)
        data = queries.crosswalk_rows(s, table)
        overview = queries.crosswalks_overview(s)
        history = queries.crosswalk_history(s, table, limit=50)
    msg = f"{table} {row.get('key') or '|'.join(str(row[c]) for c in SPECS[table].key)} saved (version {row['version']})."
    return page(request, "crosswalks.html.j2", overview=overview, data=data, editing=None, history=history,
                nav="crosswalks", saved=msg, offer=offer)
