"""A small REST client over a ready ``requests.Session``: JSON, cursor pagination, error classes.

Transport (base URL, auth, TLS, proxies, keep-alive, retries) is the session's business, not this
module's: in Airflow the session comes from the http provider's ``HttpHook`` with the retry
budget below mounted on it (``carefabric_airflow.http``); the CLI, tests and tools build the same
session with ``bearer_session``. The domain package imports no Airflow.

The retry budget (one, and only this one, inside a task try)
-------------------------------------------------------------
``retry_budget()`` is a urllib3 ``Retry`` with ONE counter, ``total=3``, shared by connection
failures, read failures and 429/502/503/504 answers: at most 4 attempts per request. Between
attempts it waits the server's ``Retry-After`` (seconds or an HTTP date, capped at 60 s; ``0``
means now), else 0 s, 2 s, 4 s. Then the request fails with ``TransientError`` and Airflow's
task retries (``carefabric_airflow.default_args``: backoff from 5 s up to 10 min) are the outer
layer for outages longer than a minute; a request is never retried by a loop of carefabric's
own. Worst case per request: 4 attempts x (task retries + 1) tries.

Writes that a peer may not de-duplicate (ERP documents) are sent with ``retry=False``: exactly
one attempt, whatever the session's policy, because a 503 or a dropped connection can come after
the peer committed; the ERP outbox looks the document up before it decides to send again.
Billing's charge batches carry an idempotency key per line, so its POSTs may be retried
(``retry_budget(idempotent_posts=True)``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from carefabric import peer_calls

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
#: One counter for every kind of retry: connection, read and status (see the module docstring).
RETRY_TOTAL = 3
BACKOFF_FACTOR = 1.0  # urllib3: 0 s before the first retry, then 2 s, 4 s
RETRY_AFTER_MAX = 60  # a peer asking for longer is answered by the task's own retry

# Set while a single-shot request is on the wire in this thread (``RestClient.request(retry=False)``).
_SINGLE_SHOT: ContextVar[bool] = ContextVar("carefabric_single_shot", default=False)


class TransientError(RuntimeError):
    """The peer is throttling or unavailable: retry later (never a business exception)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RejectedError(RuntimeError):
    """The peer refused the request on its merits (4xx): a business exception, never retried."""

    def __init__(self, status: int, code: str, message: str, body: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.body = body or {}


class RetryBudget(Retry):
    """urllib3 ``Retry`` that honours ``Retry-After: 0``, logs each wait, and knows single-shot calls.

    ``sleep_fn`` is how it waits (``time.sleep``; tests pass a no-op). A request made with
    ``RestClient.request(retry=False)`` is never retried, even on a connection error.
    """

    sleep_fn: Callable[[float], None] = staticmethod(time.sleep)

    def new(self, **kw: Any) -> RetryBudget:
        retry = super().new(**kw)
        retry.sleep_fn = self.sleep_fn
        return retry

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        return not _SINGLE_SHOT.get() and super().is_retry(method, status_code, has_retry_after)

    def increment(self, method: str | None = None, url: str | None = None, *args: Any, **kwargs: Any) -> RetryBudget:
        if _SINGLE_SHOT.get():  # exhausted at once: urllib3 raises the error as MaxRetryError
            return Retry.increment(self.new(total=0), method, url, *args, **kwargs)
        return super().increment(method, url, *args, **kwargs)

    def sleep_for_retry(self, response: Any) -> bool:
        wait = self.get_retry_after(response)
        if wait is None:
            return False
        log.warning("peer answered %s with Retry-After: waiting %.1fs (retry %d of %s)",
                    response.status, wait, len(self.history), RETRY_TOTAL)
        self.sleep_fn(wait)
        return True

    def _sleep_backoff(self) -> None:
        wait = self.get_backoff_time()
        if wait > 0:
            log.warning("peer unavailable: retry %d in %.1fs", len(self.history), wait)
            self.sleep_fn(wait)


def retry_budget(*, idempotent_posts: bool = False, sleep: Callable[[float], None] | None = None) -> RetryBudget:
    """The one per-request retry policy (module docstring). ``idempotent_posts``: POST may be retried."""
    retry = RetryBudget(
        total=RETRY_TOTAL,
        status_forcelist=RETRYABLE_STATUS,
        allowed_methods=None if idempotent_posts else Retry.DEFAULT_ALLOWED_METHODS,
        backoff_factor=BACKOFF_FACTOR,
        respect_retry_after_header=True,
        retry_after_max=RETRY_AFTER_MAX,
        raise_on_status=False,  # the last 429/5xx answer comes back and becomes a TransientError
    )
    if sleep is not None:
        retry.sleep_fn = sleep
    return retry


class BearerAuth(requests.auth.AuthBase):
    """``Authorization: Bearer <token>``. Takes (login, password) like the auth types ``HttpHook``
    accepts; the token is the password (masked by Airflow), the login names the client."""

    def __init__(self, login: str | None = None, password: str | None = None) -> None:
        if not password:
            raise ValueError("bearer auth needs the HTTP connection's login (the client's name) and password (its token)")
        self.token = password

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.token}"
        return request


def bearer_session(token: str, retry: Retry | None = None) -> requests.Session:
    """A session with bearer auth and the retry budget, for callers without Airflow (CLI, tests)."""
    session = requests.Session()
    session.auth = BearerAuth(password=token)
    adapter = HTTPAdapter(max_retries=retry if retry is not None else retry_budget())
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _check_single_shot_safe(session: requests.Session) -> None:
    """Only ``RetryBudget`` knows single-shot calls: any other retrying adapter would re-send them."""
    for prefix, adapter in session.adapters.items():
        retries = getattr(adapter, "max_retries", None)
        if isinstance(retries, Retry) and not isinstance(retries, RetryBudget) and retries.total not in (0, False):
            raise ValueError(f"the session's adapter for {prefix} retries with {retries!r}; mount retry_budget()")


@dataclass
class RestClient:
    """JSON client for one peer: ``base_url`` (with the API root, e.g. ``.../api/v1``) + session."""

    base_url: str
    session: requests.Session
    timeout: float = 30.0
    #: (method, path, status) of every attempt, retried ones included (status 0: no answer).
    attempts_log: list[tuple[str, str, int]] = field(default_factory=list)
    #: The peer's name in the metrics (``billing``, ``erp``); the typed clients set it.
    peer: str = ""

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        self.session.headers.setdefault("Accept", "application/json")
        _check_single_shot_safe(self.session)

    @classmethod
    def with_token(cls, base_url: str, token: str, *, idempotent_posts: bool = False,
                   sleep: Callable[[float], None] | None = None, timeout: float = 30.0) -> RestClient:
        """A client outside Airflow (CLI, tests, tools): bearer token and the same retry budget."""
        retry = retry_budget(idempotent_posts=idempotent_posts, sleep=sleep)
        return cls(base_url, bearer_session(token, retry), timeout=timeout)

    def request(self, method: str, path: str, *, retry: bool = True, route: str | None = None,
                **kwargs: Any) -> requests.Response:
        """Send one request; the session's retry budget absorbs throttling and brief outages.

        ``retry=False`` sends exactly once (see the module docstring). Raises ``TransientError``
        when the peer could not be reached, or still throttles or fails after the budget.
        ``route`` names the path in the metrics when it carries an id (``/things/{id}``).
        """
        route = route or peer_calls.route_template(path)
        token = _SINGLE_SHOT.set(not retry)
        started = time.perf_counter()
        try:
            response = self.session.request(method, f"{self.base_url}{path}", timeout=self.timeout, **kwargs)
        except (requests.ConnectionError, requests.Timeout) as exc:
            self.attempts_log.append((method, path, 0))
            peer_calls.observe(self.peer or "rest", method, route, 0, time.perf_counter() - started)
            raise TransientError(f"{method} {path}: connection failed: {type(exc).__name__}") from exc
        finally:
            _SINGLE_SHOT.reset(token)
        history = getattr(getattr(response.raw, "retries", None), "history", ())
        self.attempts_log += [(method, path, h.status or 0) for h in history]
        self.attempts_log.append((method, path, response.status_code))
        peer_calls.observe(self.peer or "rest", method, route, response.status_code, time.perf_counter() - started,
                           [h.status or 0 for h in history])
        if response.status_code in RETRYABLE_STATUS:
            retry_after = response.headers.get("Retry-After")
            raise TransientError(
                f"{method} {path}: HTTP {response.status_code} after {len(history) + 1} attempt(s)",
                float(retry_after) if retry_after and retry_after.strip().isdigit() else None,
            )
        return response

    def json(self, method: str, path: str, *, retry: bool = True, route: str | None = None,
             **kwargs: Any) -> tuple[int, dict[str, Any]]:
        """Send and decode; raise ``RejectedError`` for any 4xx, return (status, body) otherwise."""
        response = self.request(method, path, retry=retry, route=route, **kwargs)
        body = response.json() if response.content else {}
        if 400 <= response.status_code < 500:
            error = body.get("error", {}) if isinstance(body, dict) else {}
            raise RejectedError(
                response.status_code,
                str(error.get("code", response.status_code)),
                str(error.get("message", response.reason)),
                body if isinstance(body, dict) else None,
            )
        if response.status_code >= 500:
            raise TransientError(f"{method} {path}: HTTP {response.status_code}")
        return response.status_code, body

    def paginate(self, path: str, params: dict[str, Any] | None = None, limit: int = 500) -> Iterator[dict[str, Any]]:
        """Yield every item of a cursor-paginated list."""
        query = dict(params or {})
        query["limit"] = limit
        while True:
            _, body = self.json("GET", path, params=query)
            yield from body.get("data", [])
            cursor = body.get("next_cursor")
            if not cursor:
                return
            query["cursor"] = cursor
