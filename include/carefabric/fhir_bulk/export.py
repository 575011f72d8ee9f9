"""The FHIR Bulk Data client: kick-off, one status poll, download, cancel.

Why our own ~200 lines rather than ``fhirclient`` or ``fhirpy``: neither implements the Bulk
Data ``$export`` flow (async kick-off, status polling with ``Retry-After``, manifest, NDJSON
download) nor SMART Backend Services (JWT client assertion); both are REST CRUD clients for
single resources. ``requests`` + ``PyJWT``/``cryptography`` cover it in plain, testable steps,
and the waiting between polls belongs to Airflow (a trigger), not to a library's sleep loop.

Spec: https://hl7.org/fhir/uv/bulkdata/export.html
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from carefabric import peer_calls
from carefabric.clients.rest import TransientError
from carefabric.fhir_bulk.auth import AccessToken, BulkAuthError, fetch_token, load_private_key
from carefabric.fhir_bulk.status import (
    BulkExportError,
    Manifest,
    Output,
    Pending,
    TokenExpired,
    interpret_status,
    outcome_text,
)

log = logging.getLogger(__name__)

#: What billing needs; also the download and ingest order (a ChargeItem's Encounter first).
TYPES = ("Encounter", "Coverage", "Account", "ChargeItem", "Claim")
FHIR_JSON = "application/fhir+json"
#: The status URL's route in the peer call metrics (the URL is the server's, with a job id).
STATUS_ROUTE = "{status_url}"


@dataclass
class BulkClient:
    """One EHR's Bulk Data endpoint for one client registration (SMART Backend Services)."""

    base_url: str
    client_id: str
    private_key_pem: str = field(repr=False)
    scope: str = "system/*.read"
    token_url: str | None = None
    timeout: float = 60.0
    session: requests.Session = field(default_factory=requests.Session, repr=False)
    #: The EHR's name in the peer call metrics.
    peer: str = "ehr_fhir"
    _token: AccessToken | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        self._key = load_private_key(self.private_key_pem)

    # -- authorization --------------------------------------------------------------------

    def discover_token_url(self) -> str:
        """The token endpoint from ``.well-known/smart-configuration`` (unless configured)."""
        if self.token_url is None:
            body = self._send("GET", f"{self.base_url}/.well-known/smart-configuration", auth=False,
                              route="/.well-known/smart-configuration").json()
            self.token_url = str(body["token_endpoint"])
        return self.token_url

    def access_token(self, *, renew: bool = False) -> str:
        if renew or self._token is None or not self._token.fresh():
            self._token = fetch_token(self.session, self.discover_token_url(), self.client_id, self._key, self.scope,
                                      timeout=self.timeout, peer=self.peer)
        return self._token.value

    def _send(self, method: str, url: str, *, route: str, auth: bool = True, **kwargs: Any) -> requests.Response:
        """One request; a 401 gets one new token and one more try, then it is a refusal.

        ``route`` names the request in the peer call metrics (status and file URLs are the
        server's, with job ids in them: never recorded as such)."""
        for attempt in (1, 2):
            headers = dict(kwargs.pop("headers", None) or {})
            if auth:
                headers["Authorization"] = f"Bearer {self.access_token(renew=attempt == 2)}"
            started = time.perf_counter()
            try:
                response = self.session.request(method, url, headers=headers, timeout=self.timeout, **kwargs)
            except requests.RequestException as exc:
                peer_calls.observe(self.peer, method, route, 0, time.perf_counter() - started)
                raise TransientError(f"{method} {_path(url)} failed: {type(exc).__name__}") from None
            peer_calls.observe(self.peer, method, route, response.status_code, time.perf_counter() - started)
            if response.status_code != 401 or not auth:
                return response
            kwargs["headers"] = {k: v for k, v in headers.items() if k != "Authorization"}
        raise BulkAuthError(f"{method} {_path(url)}: the EHR refused a new access token (401): "
                            f"{outcome_text(response.text) or 'no detail'}")

    # -- kick-off, status, cancel ------------------------------------------------------

    def kick_off(self, *, types: Iterable[str] = TYPES, since: dt.datetime | None = None,
                 until: dt.datetime | None = None, group: str | None = None) -> str:
        """Start an export (system level, or of one Group); returns the status URL."""
        params = {"_type": ",".join(types), "_outputFormat": "application/fhir+ndjson"}
        if since is not None:
            params["_since"] = _instant(since)
        if until is not None:  # Bulk Data v2 ``_until``; a server without it just sends more
            params["_until"] = _instant(until)
        url = f"{self.base_url}/Group/{group}/$export" if group else f"{self.base_url}/$export"
        response = self._send("GET", url, params=params, headers={"Accept": FHIR_JSON, "Prefer": "respond-async"},
                              route="/Group/{group_id}/$export" if group else "/$export")
        if response.status_code == 202 and response.headers.get("Content-Location"):
            return response.headers["Content-Location"]
        if response.status_code in (429, 502, 503, 504):
            raise TransientError(f"$export kick-off answered {response.status_code}")
        raise BulkExportError(f"$export kick-off refused ({response.status_code}): "
                              f"{outcome_text(response.text) or response.text[:200]}")

    def poll(self, status_url: str) -> Pending | Manifest:
        """One status request: ``Pending`` (wait ``retry_after``) or the ``Manifest``."""
        response = self._send("GET", status_url, headers={"Accept": "application/json"}, route=STATUS_ROUTE)
        return interpret_status(response.status_code, response.headers, response.text)

    def cancel(self, status_url: str) -> None:
        """DELETE the job (the server may then drop its files); a job already gone is fine."""
        response = self._send("DELETE", status_url, route=STATUS_ROUTE)
        if response.status_code not in (200, 202, 204, 404, 410):
            raise BulkExportError(f"cancel answered {response.status_code}: {outcome_text(response.text)}")

    def manifest(self, status_url: str) -> Manifest:
        """Poll once more for a manifest the trigger saw (e.g. if only its URL was kept)."""
        answer = self.poll(status_url)
        if isinstance(answer, Pending):
            raise BulkExportError("the export is still running")
        return answer

    # -- download -------------------------------------------------------------------------

    def download(self, manifest: Manifest, target: Path) -> list[Path]:
        """Every output file into ``target``, in ``TYPES`` order, each written atomically.

        Idempotent per manifest: the names carry the transaction time, and a file already there
        (complete, since it was renamed into place) is not fetched again. A manifest listing
        errors is refused as a whole: a partial extract would under-bill without a sound.
        """
        if manifest.error:
            raise BulkExportError(f"the export reported errors: {self._error_text(manifest.error)}")
        target.mkdir(parents=True, exist_ok=True)
        stamp = re.sub(r"[^0-9]", "", manifest.transaction_time)[:14]
        rank = {t: i for i, t in enumerate(TYPES)}
        ordered = sorted(enumerate(manifest.output), key=lambda p: (rank.get(p[1].type, len(TYPES)), p[0]))
        paths = []
        for n, (_, output) in enumerate(ordered, start=1):
            path = target / f"fhir_bulk_{stamp}_{n:02d}_{output.type}.ndjson"
            if not path.exists():
                self._fetch(output, path, manifest.requires_access_token)
            paths.append(path)
        return paths

    def _fetch(self, output: Output, path: Path, with_token: bool) -> None:
        tmp = path.with_name(f".{path.name}.part")
        response = self._send("GET", output.url, auth=with_token, headers={"Accept": "application/fhir+ndjson"},
                              stream=True, route="{output_file}")
        if response.status_code != 200:
            if response.status_code >= 500:
                raise TransientError(f"download of {output.type} answered {response.status_code}")
            raise BulkExportError(f"download of {output.type} refused ({response.status_code}): "
                                  f"{outcome_text(response.text)}")
        lines = 0
        with open(tmp, "wb") as handle:
            for chunk in response.iter_content(chunk_size=1 << 20):
                handle.write(chunk)
                lines += chunk.count(b"\n")
        if output.count is not None and lines != output.count:
            tmp.unlink(missing_ok=True)
            raise TransientError(f"download of {output.type} is incomplete: {lines} of {output.count} resources")
        os.replace(tmp, path)

    def _error_text(self, errors: list[Output]) -> str:
        texts = []
        for item in errors[:5]:
            response = self._send("GET", item.url, headers={"Accept": "application/fhir+ndjson"}, route="{error_file}")
            texts += [outcome_text(line) for line in response.text.splitlines() if line.strip()]
        return "; ".join(t for t in texts if t)[:1000] or f"{len(errors)} error file(s)"


def _instant(value: dt.datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _path(url: str) -> str:
    """The path of a URL, for messages (no query string, no host)."""
    return "/" + url.split("://", 1)[-1].split("/", 1)[-1].split("?", 1)[0]


__all__ = ["TYPES", "BulkClient", "BulkExportError", "Manifest", "Pending", "TokenExpired"]
