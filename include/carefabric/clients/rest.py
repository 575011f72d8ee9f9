"""A small REST client with bearer auth, Retry-After aware retries and cursor pagination.

``requests`` plus a retry loop rather than ``HttpHook``: the hook lives in Airflow and the domain
package must not import Airflow. The Airflow task still owns the outer retry policy (exponential
backoff across task tries); this loop absorbs short throttling (429) and brief outages (503)
inside one try, honouring the server's ``Retry-After``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import requests

log = logging.getLogger(__name__)

RETRYABLE_STATUS = {429, 502, 503, 504}


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


@dataclass
class RestClient:
    """Bearer-token JSON client for one peer."""

    base_url: str
    token: str
    timeout: float = 30.0
    max_attempts: int = 4
    max_wait: float = 30.0
    sleep: Callable[[float], None] = time.sleep
    session: requests.Session = field(default_factory=requests.Session)
    attempts_log: list[tuple[str, str, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        self.session.headers.update({"Authorization": f"Bearer {self.token}", "Accept": "application/json"})

    def request(self, method: str, path: str, *, retry: bool = True, **kwargs: Any) -> requests.Response:
        """Send one request, retrying 429/5xx and connection errors up to ``max_attempts``.

        ``retry=False`` sends once: for a write to a peer that may not de-duplicate, a 503 can
        come after the peer committed, so only the caller (the ERP outbox, which looks the
        document up before any re-send) may decide to send again.
        """
        url = f"{self.base_url}{path}"
        last: str = ""
        retry_after: float | None = None
        attempts = self.max_attempts if retry else 1
        for attempt in range(1, attempts + 1):
            try:
                response = self.session.request(method, url, timeout=self.timeout, **kwargs)
            except requests.ConnectionError as exc:
                last, retry_after = f"connection failed: {type(exc).__name__}", None
                self.attempts_log.append((method, path, 0))
            else:
                self.attempts_log.append((method, path, response.status_code))
                if response.status_code not in RETRYABLE_STATUS:
                    return response
                retry_after = _retry_after_seconds(response)
                last = f"HTTP {response.status_code}"
            if attempt < attempts:
                wait = min(self.max_wait, retry_after if retry_after is not None else 0.5 * 2 ** (attempt - 1))
                log.warning("%s %s: %s, retry %d/%d in %.1fs", method, path, last, attempt, attempts, wait)
                self.sleep(wait)
        raise TransientError(f"{method} {path}: {last} after {attempts} attempt(s)", retry_after)

    def json(self, method: str, path: str, *, retry: bool = True, **kwargs: Any) -> tuple[int, dict[str, Any]]:
        """Send and decode; raise ``RejectedError`` for any 4xx, return (status, body) otherwise."""
        response = self.request(method, path, retry=retry, **kwargs)
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


def _retry_after_seconds(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
