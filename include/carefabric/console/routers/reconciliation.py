"""Finance's reconciliation pages: a business date's close and the drill-down of one item."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse

from carefabric.console.queries.reconciliation import day_view, item_view
from carefabric.console.routers.data_docs import day_link
from carefabric.console.security import Reader
from carefabric.console.web import StoreSession, page

router = APIRouter()


@router.get("/api/reconciliation", tags=["api"])
def api_reconciliation(user: Reader, s: StoreSession, day: dt.date | None = None,
                       limit: int = Query(200, ge=1, le=1000)) -> dict[str, Any]:
    return day_view(s, day, limit)


@router.get("/api/reconciliation/items/{item_id}", tags=["api"])
def api_reconciliation_item(user: Reader, s: StoreSession, item_id: int) -> dict[str, Any]:
    found = item_view(s, item_id)
    if found is None:
        raise HTTPException(404, f"no reconciliation item {item_id}")
    return found


@router.get("/reconciliation", response_class=HTMLResponse, include_in_schema=False)
def reconciliation_page(request: Request, user: Reader, s: StoreSession, day: dt.date | None = None) -> HTMLResponse:
    data = day_view(s, day, 500)
    docs = day_link(request, data["run"]["business_date"] if data["run"] else None)
    return page(request, "reconciliation.html.j2", data=data, data_docs=docs, nav="reconciliation")


@router.get("/reconciliation/items/{item_id}", response_class=HTMLResponse, include_in_schema=False)
def reconciliation_item_page(request: Request, user: Reader, s: StoreSession, item_id: int) -> HTMLResponse:
    found = item_view(s, item_id)
    if found is None:
        raise HTTPException(404, f"no reconciliation item {item_id}")
    return page(request, "reconciliation_item.html.j2", data=found, nav="reconciliation")
