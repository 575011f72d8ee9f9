"""Who is asking, what they may do, and whether a state change really comes from our own pages.

The console does not authenticate anyone itself: the host hands ``create_app`` an
``Authenticator`` (in Airflow, ``plugins/carefabric_console.py`` resolves the UI's JWT through
Airflow's auth manager), so this package stays free of Airflow. The authenticator answers a
``Principal`` or raises ``AuthError``; everything here only reads that answer.

Two permissions: ``read`` (every page and GET) and ``act`` (discard, resolve, replay, crosswalk
edits). A state change also has to pass the CSRF check: browsers attach the session cookie to
any request, including a form auto-submitted by another site's page, so a cookie-authenticated
POST/PUT must carry a token only our own pages know (``csrf_token`` form field or the
``X-CSRF-Token`` header), derived from the session credential with a server secret, and must not
come from another origin. A bearer token in an ``Authorization`` header is never sent by a
browser on its own, so API clients using one need no CSRF token (the origin check still runs).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request

CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Principal:
    """The authenticated user as the console sees it.

    ``credential`` is the session's token: the CSRF token is derived from it, and actions done
    on the user's behalf elsewhere (triggering the replay DAG) present it, so they run with the
    user's own rights. ``ambient`` says the browser sent it by itself (a cookie), which is
    what makes CSRF possible.
    """

    name: str
    can_read: bool
    can_act: bool
    credential: str = ""
    ambient: bool = True
    role: str | None = None


class AuthError(Exception):
    """Not authenticated (401) or not allowed (403); the message is shown as is."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


#: ``await authenticate(request)`` -> the Principal, or raises AuthError.
Authenticator = Callable[[Request], Awaitable[Principal]]


def csrf_token(principal: Principal, secret: bytes) -> str:
    """The session's CSRF token: a keyed hash of its credential (unguessable without both)."""
    digest = hmac.new(secret, f"csrf|{principal.name}|{principal.credential}".encode(), hashlib.sha256)
    return digest.hexdigest()


def _same_origin(request: Request) -> bool:
    """False when the browser says the request comes from another origin (Origin, else Referer)."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source:
        return True  # not a browser-initiated cross-origin request (browsers send Origin on POST)
    if source == "null":
        return False
    host = request.headers.get("x-forwarded-host") or request.headers.get("host") or ""
    return urlsplit(source).netloc.lower() == host.split(",")[0].strip().lower()


async def current_principal(request: Request) -> Principal:
    """The user the app's middleware authenticated before routing (see ``app.create_app``)."""
    principal = getattr(request.state, "principal", None)
    if principal is None:
        principal = await request.app.state.console.authenticate(request)
        request.state.principal = principal
    return principal


async def reader(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
    """Any page or read: needs the read permission."""
    if not principal.can_read:
        raise AuthError(403, f"{principal.name} may not view the carefabric console")
    return principal


async def operator(request: Request, principal: Annotated[Principal, Depends(reader)]) -> Principal:
    """A state change: needs the act permission, our own origin and the session's CSRF token."""
    if not principal.can_act:
        raise AuthError(403, f"{principal.name} may view but not act (discard, resolve, replay, edit crosswalks)")
    if not _same_origin(request):
        raise AuthError(403, "cross-origin request refused")
    if principal.ambient:
        sent = request.headers.get(CSRF_HEADER)
        if sent is None and "form" in request.headers.get("content-type", ""):
            sent = str((await request.form()).get(CSRF_FIELD) or "")
        expected = csrf_token(principal, request.app.state.console.csrf_secret)
        if not sent or not hmac.compare_digest(sent, expected):
            raise AuthError(403, "missing or wrong CSRF token: reload the page and try again")
    return principal


Reader = Annotated[Principal, Depends(reader)]
Operator = Annotated[Principal, Depends(operator)]
