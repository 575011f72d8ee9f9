"""Trace a key to everything that came of it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from carefabric.console import queries
from carefabric.console.security import Reader
from carefabric.console.web import StoreSession, page

router = APIRouter()
KEY_MAX = 255


@router.get("/api/trace", tags=["api"])
def api_trace(user: Reader, s: StoreSession, key: str = Query(..., max_length=KEY_MAX)) -> dict[str, Any]:
    return queries.trace(s, key)


@router.get("/trace", response_class=HTMLResponse, include_in_schema=False)
def trace_page(request: Request, user: Reader, s: StoreSession, key: str = Query("", max_length=KEY_MAX)) -> HTMLResponse:
    data = queries.trace(s, key) if key.strip() else None
    return page(request, "trace.html.j2", key=key, data=data, nav="trace")
