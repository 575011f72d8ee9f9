"""The nightly Data Docs site (``carefabric.quality.docs_site``), served read-only.

Behind the console's login like every page (``Reader``), GET only, and nothing outside the
site folder: a path that resolves out of it (``..``, an encoded ``%2e%2e``, a symlink) is a 404
like a missing page, so a probe learns nothing. The pages are GX's own static HTML with its
scripts; they are sent with a sandboxing CSP, so a script in them runs in an opaque origin and
cannot call the console's API with the user's cookie, and nothing is loaded from another host.
"""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, RedirectResponse

from carefabric.console.security import Reader
from carefabric.console.web import base
from carefabric.quality.docs_site import CONSOLE_ROUTE, day_page, resolve_in_site

router = APIRouter()

_HEADERS = {
    # sandbox: an opaque origin for GX's scripts; default-src: nothing fetched from elsewhere
    # (GX links Bootstrap and jQuery from public CDNs: the pages render plain instead of calling out)
    "Content-Security-Policy": "sandbox allow-scripts allow-popups; default-src 'self' 'unsafe-inline' data:",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
    "Referrer-Policy": "no-referrer",
}


@router.get(CONSOLE_ROUTE, include_in_schema=False)
def data_docs_index(request: Request, user: Reader) -> RedirectResponse:
    return RedirectResponse(f"{base(request)}{CONSOLE_ROUTE}/index.html", status_code=307)


@router.get(CONSOLE_ROUTE + "/{path:path}", include_in_schema=False)
def data_docs_file(user: Reader, path: str) -> FileResponse:
    found = resolve_in_site(path)
    if found is None:
        raise HTTPException(404, "no such Data Docs page (has the nightly close built the site yet?)")
    return FileResponse(found, headers=_HEADERS)


def day_link(request: Request, business_date: str | None) -> str | None:
    """The night's Data Docs page in the console, when the close has built it; else None."""
    if not business_date:
        return None
    page = day_page(dt.date.fromisoformat(business_date))
    return f"{base(request)}{CONSOLE_ROUTE}/{page}" if resolve_in_site(page) else None
