"""The audit log of manual actions, newest first."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from carefabric.console import queries
from carefabric.console.queries.crosswalks import LIMIT_MAX
from carefabric.console.schemas import AuditEntry
from carefabric.console.security import Reader
from carefabric.console.web import StoreSession, page

router = APIRouter()


@router.get("/api/audit", tags=["api"], response_model=list[AuditEntry])
def api_audit(user: Reader, s: StoreSession, limit: int = Query(100, ge=1, le=LIMIT_MAX)) -> list[dict]:
    return queries.audit_entries(s, limit)


@router.get("/audit", response_class=HTMLResponse, include_in_schema=False)
def audit_page(request: Request, user: Reader, s: StoreSession, limit: int = Query(200, ge=1, le=LIMIT_MAX)) -> HTMLResponse:
    return page(request, "audit.html.j2", entries=queries.audit_entries(s, limit), nav="audit")
