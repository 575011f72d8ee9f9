"""What every console router shares: the app's state, the one session dependency, page rendering.

Routers are module-level ``APIRouter``s; what differs per app (engine, authenticator, replay
trigger, secret) lives in ``ConsoleState`` on ``app.state.console`` so one set of routers serves
every app ``create_app`` builds (tests build many).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from carefabric.console.replay import ReplayTrigger
from carefabric.console.security import Authenticator, Principal, csrf_token
from carefabric.store.models import EXCEPTION_KINDS, EXCEPTION_STATUSES

TEMPLATES = Path(__file__).resolve().parent / "templates"


@dataclass
class ConsoleState:
    """Per-app settings and the lazily made engine (importing the plugin opens no database)."""

    engine_factory: Callable[[], Engine]
    authenticate: Authenticator
    csrf_secret: bytes
    trigger: ReplayTrigger | None = None
    title: str = "carefabric console"
    login_url: str | None = None
    env: Environment = field(default_factory=lambda: environment())
    _engine: Engine | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def engine(self) -> Engine:
        if self._engine is None:
            with self._lock:
                if self._engine is None:
                    self._engine = self.engine_factory()
        return self._engine


def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(("html", "j2")),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["q"] = lambda value: quote(str(value), safe="")
    env.filters["short_time"] = short_time
    env.globals["statuses"] = EXCEPTION_STATUSES
    env.globals["kinds"] = EXCEPTION_KINDS
    return env


def short_time(value: str | None) -> str:
    if not value:
        return "-"
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return value
    return moment.strftime("%Y-%m-%d %H:%M:%S") + (" UTC" if moment.tzinfo else "")


def state_of(request: Request) -> ConsoleState:
    return request.app.state.console


def get_session(request: Request) -> Iterator[Session]:
    """One store session per request, committed when the handler returns without an error."""
    session = Session(state_of(request).engine(), expire_on_commit=False)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


#: ``scope="function"``: commit before the response is sent, so a client that follows the
#: redirect (or reads right after a 200) sees the change.
StoreSession = Annotated[Session, Depends(get_session, scope="function")]


def base(request: Request) -> str:
    """The mount point (``/carefabric`` inside Airflow): every link is made relative to it."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def page(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render a page; the user and their CSRF token go to every template (forms embed it)."""
    console = state_of(request)
    principal: Principal | None = getattr(request.state, "principal", None)
    html = console.env.get_template(template).render(
        base=base(request), title=console.title, request_path=request.url.path,
        msg=request.query_params.get("msg"), user=principal, login_url=console.login_url,
        csrf=csrf_token(principal, console.csrf_secret) if principal else "", **context,
    )
    return HTMLResponse(html, status_code=status_code)


def redirect(request: Request, path: str, **params: Any) -> RedirectResponse:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return RedirectResponse(f"{base(request)}{path}" + (f"?{query}" if query else ""), status_code=303)
