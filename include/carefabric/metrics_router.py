"""``GET /metrics`` on the operator console (``/carefabric/metrics`` inside Airflow).

Served by the console, behind its authentication like every console route (the console checks
the login before any route runs; ``Reader`` asks for read rights): a Prometheus server scrapes it
with a bearer token of a read-only Airflow user (``authorization: {credentials: ...}`` in its
scrape config). No separate port: one less listener to secure, and the metrics say what the
console already shows (counts, codes, amounts in cents; no PHI).

The Airflow plugin adds this router to the console app (``app.include_router(router)``).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool

from carefabric.console.security import Reader
from carefabric.console.web import state_of
from carefabric.metrics import render

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request, user: Reader) -> Response:
    """The store's interface metrics in the Prometheus text format (queries off the event loop)."""
    body = await run_in_threadpool(render, state_of(request).engine)
    return Response(content=body, media_type=CONTENT_TYPE_LATEST)
