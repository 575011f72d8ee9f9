"""The last reconciliation runs and what did not match (finance's page)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from carefabric.console.queries.common import recon_item_json, run_json
from carefabric.console.security import Reader
from carefabric.console.web import StoreSession, page
from carefabric.store.models import ReconciliationItem, ReconciliationRun

router = APIRouter()


def reconciliation(session: Session, day: dt.date | None, limit: int) -> dict[str, Any]:
    """The latest run (of ``day`` if given) with its unmatched items, and the recent runs."""
    runs = select(ReconciliationRun).order_by(ReconciliationRun.business_date.desc(), ReconciliationRun.run_number.desc())
    if day:
        runs = runs.where(ReconciliationRun.business_date == day)
    recent = list(session.scalars(runs.limit(20)))
    if not recent:
        return {"run": None, "unmatched": [], "runs": []}
    run = recent[0]
    items = session.scalars(
        select(ReconciliationItem).where(ReconciliationItem.run_id == run.id, ReconciliationItem.status != "matched")
        .order_by(ReconciliationItem.id).limit(limit)
    )
    return {"run": run_json(run), "unmatched": [recon_item_json(i, run) for i in items], "runs": [run_json(r) for r in recent]}


@router.get("/api/reconciliation", tags=["api"])
def api_reconciliation(user: Reader, s: StoreSession, day: dt.date | None = None,
                       limit: int = Query(200, ge=1, le=1000)) -> dict[str, Any]:
    return reconciliation(s, day, limit)


@router.get("/reconciliation", response_class=HTMLResponse, include_in_schema=False)
def reconciliation_page(request: Request, user: Reader, s: StoreSession, day: dt.date | None = None) -> HTMLResponse:
    return page(request, "reconciliation.html.j2", data=reconciliation(s, day, 500), nav="reconciliation")
