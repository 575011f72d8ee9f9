"""What one answer of a Bulk Data status endpoint means: still running, done, or failed.

One home for the rule, used by the synchronous client (``export.BulkClient.poll``) and by the
Airflow trigger that polls asynchronously: both hand the raw status code, headers and body here.

- 202: in progress; wait ``Retry-After`` (seconds or an HTTP date; clamped, default 5 s) and show
  ``X-Progress``.
- 200: the manifest (``transactionTime``, ``output``, ``error``, ``requiresAccessToken``).
- 401: the access token expired: get a new one and poll again.
- 429, 502-504, a 5xx without an OperationOutcome, or an OperationOutcome whose issue code is
  ``transient``: a passing fault, retried.
- anything else (a 4xx, a 5xx OperationOutcome saying the job failed, 404 for a job that is
  gone): ``BulkExportError`` with the server's diagnostics.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from carefabric.clients.rest import TransientError

DEFAULT_WAIT = 5.0
MIN_WAIT = 0.5
MAX_WAIT = 600.0


class BulkExportError(RuntimeError):
    """The export failed on the server's side or was refused: retrying the same request cannot help."""


class TokenExpired(RuntimeError):
    """401 from a FHIR endpoint: the access token is no longer accepted."""


@dataclass(frozen=True)
class Pending:
    """The job still runs: poll again after ``retry_after`` seconds."""

    retry_after: float
    progress: str | None = None

    def __str__(self) -> str:
        return f"in progress ({self.progress or 'no progress reported'}; retry after {self.retry_after:g} s)"


@dataclass(frozen=True)
class Output:
    type: str
    url: str
    count: int | None = None


@dataclass(frozen=True)
class Manifest:
    """A completed export: one or more NDJSON files per resource type."""

    transaction_time: str
    request: str
    requires_access_token: bool
    output: list[Output] = field(default_factory=list)
    error: list[Output] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"transactionTime": self.transaction_time, "request": self.request,
                "requiresAccessToken": self.requires_access_token,
                "output": [o.__dict__ for o in self.output], "error": [o.__dict__ for o in self.error]}

    @classmethod
    def from_dict(cls, body: Mapping[str, Any]) -> Manifest:
        try:
            def outputs(key: str) -> list[Output]:
                return [Output(str(o["type"]), str(o["url"]), int(o["count"]) if o.get("count") is not None else None)
                        for o in body.get(key) or []]

            return cls(str(body["transactionTime"]), str(body.get("request", "")),
                       bool(body.get("requiresAccessToken", False)), outputs("output"), outputs("error"))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BulkExportError(f"the export manifest is malformed ({type(exc).__name__}: {exc})") from None


def outcome_text(body: Any) -> str:
    """The diagnostics of an OperationOutcome (server text, never patient data), or ''."""
    if isinstance(body, (str, bytes)):
        try:
            body = json.loads(body)
        except ValueError:
            return ""
    if not isinstance(body, dict) or body.get("resourceType") != "OperationOutcome":
        return ""
    parts = []
    for issue in body.get("issue") or []:
        if isinstance(issue, dict):
            text = issue.get("diagnostics") or (issue.get("details") or {}).get("text") or ""
            parts.append(f"{issue.get('severity', 'error')}/{issue.get('code', '?')}: {text}".strip())
    return "; ".join(parts)


def _issue_codes(body: Any) -> set[str]:
    if not isinstance(body, dict):
        return set()
    return {str(i.get("code")) for i in body.get("issue") or [] if isinstance(i, dict)}


def retry_after(headers: Mapping[str, str], default: float = DEFAULT_WAIT) -> float:
    """``Retry-After`` in seconds (delta or HTTP date), clamped to [MIN_WAIT, MAX_WAIT]."""
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if value is None:
        return default
    try:
        seconds = float(value)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        seconds = parsed.timestamp() - time.time() if parsed is not None else default
    return min(max(seconds, MIN_WAIT), MAX_WAIT)


def interpret_status(status: int, headers: Mapping[str, str], text: str) -> Pending | Manifest:
    """One status answer -> ``Pending`` or ``Manifest``; raises for everything else (see module doc)."""
    if status == 202:
        progress = next((v for k, v in headers.items() if k.lower() == "x-progress"), None)
        return Pending(retry_after(headers), progress)
    try:
        body: Any = json.loads(text) if text else None
    except ValueError:
        body = None
    if status == 200:
        if not isinstance(body, dict):
            raise BulkExportError("the export manifest is not a JSON object")
        return Manifest.from_dict(body)
    if status == 401:
        raise TokenExpired(outcome_text(body) or "401 from the status endpoint")
    outcome = outcome_text(body)
    if status in (429, 502, 503, 504) or (status >= 500 and (not outcome or "transient" in _issue_codes(body))):
        raise TransientError(f"export status answered {status}: {outcome or 'no detail'}", retry_after(headers))
    if status in (404, 410):
        raise BulkExportError(f"the export job is gone ({status}: {outcome or 'cancelled or expired'})")
    raise BulkExportError(f"the export failed ({status}): {outcome or text[:200]}")
