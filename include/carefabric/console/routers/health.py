"""Interface health (the console's home page) and who is logged in."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from carefabric.console import queries
from carefabric.console.schemas import SessionInfo
from carefabric.console.security import Reader, csrf_token
from carefabric.console.web import StoreSession, page, state_of

router = APIRouter()


@router.get("/api/session", tags=["api"], response_model=SessionInfo)
def api_session(request: Request, user: Reader) -> SessionInfo:
    """Who the console thinks you are, and the CSRF token a cookie-authenticated script must send."""
    return SessionInfo(user=user.name, role=user.role, can_read=user.can_read, can_act=user.can_act,
                       csrf_token=csrf_token(user, state_of(request).csrf_secret))


@router.get("/api/health", tags=["api"])
def api_health(user: Reader, s: StoreSession, day: dt.date | None = None) -> dict[str, Any]:
    return queries.health(s, day)


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def health_page(request: Request, user: Reader, s: StoreSession, day: dt.date | None = None) -> HTMLResponse:
    return page(request, "health.html.j2", data=queries.health(s, day), nav="health")
