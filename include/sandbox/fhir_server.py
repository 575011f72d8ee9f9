"""The EHR's FHIR R4 server: Bulk Data ``$export`` behind SMART Backend Services.

What Epic, Oracle Health and others publish for nightly extracts, reduced to what carefabric
pulls: ``/fhir/$export`` and ``/fhir/Group/{id}/$export`` (``_type``, ``_since``, ``_until``,
``Prefer: respond-async``) answer 202 with a status URL; the status answers 202 with
``X-Progress`` and ``Retry-After`` until the job is done, then the manifest; each output is an
NDJSON file behind the access token; DELETE cancels. Every error is an ``OperationOutcome``.

It serves the resources the scenario's ``ehr/fhir_<date>.ndjson`` hold (loaded by
``python -m sandbox install --fhir-bulk``), byte for byte as ``fhir_writer`` wrote them, each
with the ``lastUpdated`` instant of its day (18:00 UTC) that ``_since``/``_until`` filter on.

Switchable faults (``POST /_sandbox/settings``): ``polls_before_ready`` and ``retry_after``
(a slow job), ``status_500_once`` (one transient 500 OperationOutcome on the status URL),
``expire_tokens`` (every issued token expires now), ``refuse_token`` (the token endpoint refuses
the client), ``job_error`` (the export fails: status 500 OperationOutcome), ``manifest_error``
(the manifest lists an OperationOutcome error file).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response

from sandbox import EHR_GROUP_ID
from sandbox.fhir_server_auth import Authorizer, OAuthError, ensure_client_key, registered_jwks

BASE = "/fhir"
TYPES = ("Encounter", "ChargeItem", "Coverage", "Claim", "Account", "ExplanationOfBenefit", "Patient")
NDJSON_FORMATS = {None, "application/fhir+ndjson", "application/ndjson", "ndjson"}
DEFAULT_SETTINGS: dict[str, Any] = {
    "polls_before_ready": 1, "retry_after": 1, "lines_per_file": 10_000, "status_500_once": False,
    "refuse_token": False, "job_error": False, "manifest_error": False,
}


class FhirError(Exception):
    """An answer as an OperationOutcome: HTTP status, issue code (FHIR issue-type), diagnostics."""

    def __init__(self, status: int, code: str, diagnostics: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(diagnostics)
        self.status, self.code, self.diagnostics, self.headers = status, code, diagnostics, headers or {}


def outcome(code: str, diagnostics: str, severity: str = "error") -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": [{"severity": severity, "code": code, "diagnostics": diagnostics}]}


def _instant(text: str | None, name: str) -> str | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise FhirError(400, "invalid", f"{name} is not a FHIR instant: {text!r}") from None
    if value.tzinfo is None:
        raise FhirError(400, "invalid", f"{name} needs a time zone: {text!r}")
    return value.astimezone(UTC).isoformat()


@dataclass
class Job:
    id: str
    request: str
    transaction_time: str
    files: list[dict[str, Any]]
    polls_left: int
    failed: str | None = None
    polls: list[float] = field(default_factory=list)
    #: DELETEd by the client (cancelled, or released after download): files gone, status 404,
    #: kept in ``/_sandbox/state`` so a test can see the client cleaned up.
    cancelled: bool = False


class EhrFhir:
    """Resources (SQLite), export jobs, files and settings of the sandbox EHR."""

    def __init__(self, base_dir: Path) -> None:
        self.dir = Path(base_dir) / "ehr_fhir"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.auth = Authorizer(registered_jwks(ensure_client_key(self.dir)))
        self.db = sqlite3.connect(self.dir / "resources.db", check_same_thread=False)
        self.db.execute("CREATE TABLE IF NOT EXISTS resources (seq INTEGER PRIMARY KEY, type TEXT, id TEXT, "
                        "last_updated TEXT, line TEXT, UNIQUE (type, id))")
        self.lock = threading.Lock()
        self.jobs: dict[str, Job] = {}
        self.settings = dict(DEFAULT_SETTINGS)
        self.events: list[dict[str, Any]] = []

    def close(self) -> None:
        self.db.close()

    def load(self, ndjson: str, last_updated: str) -> int:
        """Store each line as given (bytes kept), replacing an earlier version of the same resource."""
        rows = []
        for line in ndjson.splitlines():
            if not line.strip():
                continue
            head = json.loads(line, parse_float=str)
            rows.append((head["resourceType"], str(head.get("id") or uuid.uuid4().hex), last_updated, line))
        with self.lock, self.db:
            self.db.executemany("INSERT INTO resources (type, id, last_updated, line) VALUES (?, ?, ?, ?) "
                                "ON CONFLICT (type, id) DO UPDATE SET last_updated = excluded.last_updated, "
                                "line = excluded.line", rows)
        return len(rows)

    def start_job(self, request: str, types: list[str], since: str | None, until: str | None) -> Job:
        job = Job(uuid.uuid4().hex[:16], request, datetime.now(UTC).isoformat(timespec="seconds"), [],
                  int(self.settings["polls_before_ready"]))
        folder = self.dir / "jobs" / job.id
        folder.mkdir(parents=True, exist_ok=True)
        where, args = ["type = ?"], []
        if since:
            where.append("last_updated >= ?")
            args.append(since)
        if until:
            where.append("last_updated < ?")
            args.append(until)
        sql = f"SELECT line FROM resources WHERE {' AND '.join(where)} ORDER BY seq"
        for kind in types:
            with self.lock:
                lines = [r[0] for r in self.db.execute(sql, [kind, *args])]
            per = max(1, int(self.settings["lines_per_file"]))
            for part, start in enumerate(range(0, len(lines), per), start=1):
                name = f"{kind}-{part}.ndjson"
                chunk = lines[start:start + per]
                (folder / name).write_text("".join(line + "\n" for line in chunk))
                job.files.append({"type": kind, "name": name, "count": len(chunk)})
        if self.settings["manifest_error"]:
            (folder / "errors-1.ndjson").write_text(json.dumps(outcome(
                "processing", "ChargeItem/chg-X could not be exported: chargemaster lookup failed")) + "\n")
        if self.settings["job_error"]:
            job.failed = "export failed: the reporting database is unavailable"
        self.jobs[job.id] = job
        return job

    def manifest(self, job: Job, files_url: str) -> dict[str, Any]:
        """The completed job's manifest; every file behind the access token."""
        errors = [{"type": "OperationOutcome", "url": f"{files_url}/errors-1.ndjson"}] \
            if (self.dir / "jobs" / job.id / "errors-1.ndjson").exists() else []
        return {"transactionTime": job.transaction_time, "request": job.request, "requiresAccessToken": True,
                "output": [{"type": f["type"], "url": f"{files_url}/{f['name']}", "count": f["count"]} for f in job.files],
                "error": errors}


def create_app(base_dir: Path) -> FastAPI:
    """The EHR FHIR server's app over the state folder ``base_dir``."""
    app = FastAPI(title="sandbox EHR FHIR server", docs_url=None, redoc_url=None, openapi_url=None)
    ehr = EhrFhir(base_dir)
    app.state.store = ehr

    @app.exception_handler(FhirError)
    async def _fhir_error(_request: Request, exc: FhirError) -> JSONResponse:
        return JSONResponse(outcome(exc.code, exc.diagnostics), exc.status, headers=exc.headers,
                            media_type="application/fhir+json")

    _auth_routes(app, ehr)
    _export_routes(app, ehr)
    _admin_routes(app, ehr)
    return app


def _token_url(request: Request) -> str:
    return f"{str(request.base_url).rstrip('/')}/auth/token"


def _bearer(request: Request, ehr: EhrFhir) -> None:
    """401 OperationOutcome unless the request carries a valid, unexpired access token."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    problem = "no bearer token" if scheme.lower() != "bearer" else ehr.auth.check(token.strip())
    if problem:
        ehr.events.append({"kind": "401", "path": request.url.path, "at": time.time()})
        raise FhirError(401, "login", problem, {"WWW-Authenticate": 'Bearer error="invalid_token"'})


def _auth_routes(app: FastAPI, ehr: EhrFhir) -> None:
    """SMART discovery, the token endpoint and the capability statement."""

    @app.get("/.well-known/smart-configuration")
    @app.get(f"{BASE}/.well-known/smart-configuration")
    def smart_configuration(request: Request) -> dict[str, Any]:
        return {"token_endpoint": _token_url(request), "grant_types_supported": ["client_credentials"],
                "token_endpoint_auth_methods_supported": ["private_key_jwt"],
                "token_endpoint_auth_signing_alg_values_supported": ["RS384"],
                "scopes_supported": ["system/*.read"], "capabilities": ["client-confidential-asymmetric"]}

    @app.post("/auth/token")
    async def token(request: Request) -> JSONResponse:
        form = {k: str(v) for k, v in (await request.form()).items()}
        try:
            if ehr.settings["refuse_token"]:
                raise OAuthError("invalid_client", "client registration suspended by the EHR administrator")
            body = ehr.auth.issue(form, _token_url(request))
        except OAuthError as exc:
            ehr.events.append({"kind": "token_refused", "at": time.time(), "error": exc.error})
            return JSONResponse({"error": exc.error, "error_description": exc.description}, exc.status)
        ehr.events.append({"kind": "token", "at": time.time()})
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    @app.get(f"{BASE}/metadata")
    def metadata() -> dict[str, Any]:
        return {"resourceType": "CapabilityStatement", "status": "active", "kind": "instance", "fhirVersion": "4.0.1",
                "format": ["json"], "instantiates": ["http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data"]}


def _export_routes(app: FastAPI, ehr: EhrFhir) -> None:
    """Kick-off (system and Group), status, cancel and file download."""

    def kick_off(request: Request, group: str | None) -> Response:
        _bearer(request, ehr)
        if "respond-async" not in request.headers.get("prefer", ""):
            raise FhirError(400, "required", "the Prefer header must ask for respond-async")
        q = request.query_params
        if q.get("_outputFormat") not in NDJSON_FORMATS:
            raise FhirError(400, "not-supported", f"_outputFormat {q.get('_outputFormat')!r} is not supported")
        types = [t.strip() for t in (q.get("_type") or ",".join(TYPES)).split(",") if t.strip()]
        unknown = [t for t in types if t not in TYPES]
        if unknown:
            raise FhirError(400, "not-supported", f"_type {', '.join(unknown)} is not exported by this server")
        if group is not None and group != EHR_GROUP_ID:
            raise FhirError(404, "not-found", f"Group/{group} is not known")
        job = ehr.start_job(str(request.url), types, _instant(q.get("_since"), "_since"), _instant(q.get("_until"), "_until"))
        ehr.events.append({"kind": "kick-off", "at": time.time(), "job": job.id, "group": group, "types": types,
                           "since": q.get("_since"), "until": q.get("_until")})
        location = f"{str(request.base_url).rstrip('/')}{BASE}/_jobs/{job.id}"
        return Response(status_code=202, headers={"Content-Location": location})

    @app.get(BASE + "/$export")
    def system_export(request: Request) -> Response:
        return kick_off(request, None)

    @app.get(BASE + "/Group/{group_id}/$export")
    def group_export(request: Request, group_id: str) -> Response:
        return kick_off(request, group_id)

    @app.get(BASE + "/_jobs/{job_id}")
    def status(request: Request, job_id: str) -> Response:
        _bearer(request, ehr)
        job = ehr.jobs.get(job_id)
        if job is None or job.cancelled:
            raise FhirError(404, "not-found", f"no export job {job_id} (cancelled, expired or never started)")
        job.polls.append(time.time())
        if ehr.settings["status_500_once"]:
            ehr.settings["status_500_once"] = False
            raise FhirError(500, "transient", "status store busy, try again", {"Retry-After": "1"})
        if job.failed:
            raise FhirError(500, "exception", job.failed)
        if job.polls_left > 0:
            total = int(ehr.settings["polls_before_ready"]) + 1
            done = total - job.polls_left
            job.polls_left -= 1
            return Response(status_code=202, headers={"X-Progress": f"{100 * done // total}% (step {done} of {total})",
                                                      "Retry-After": str(ehr.settings["retry_after"])})
        return JSONResponse(ehr.manifest(job, f"{str(request.base_url).rstrip('/')}{BASE}/_files/{job.id}"))

    @app.delete(BASE + "/_jobs/{job_id}")
    def cancel(request: Request, job_id: str) -> Response:
        _bearer(request, ehr)
        job = ehr.jobs.get(job_id)
        if job is None or job.cancelled:
            raise FhirError(404, "not-found", f"no export job {job_id}")
        job.cancelled = True
        shutil.rmtree(ehr.dir / "jobs" / job_id, ignore_errors=True)
        ehr.events.append({"kind": "cancel", "at": time.time(), "job": job_id})
        return Response(status_code=202)

    @app.get(BASE + "/_files/{job_id}/{name}")
    def download(request: Request, job_id: str, name: str) -> Response:
        _bearer(request, ehr)
        path = ehr.dir / "jobs" / job_id / name
        job = ehr.jobs.get(job_id)
        if job is None or job.cancelled or "/" in name or not path.is_file():
            raise FhirError(404, "not-found", f"no file {name} for job {job_id}")
        ehr.events.append({"kind": "download", "at": time.time(), "job": job_id, "file": name})
        return FileResponse(path, media_type="application/fhir+ndjson")


def _admin_routes(app: FastAPI, ehr: EhrFhir) -> None:
    """``/_sandbox``: load resources, switch faults, read state (open, like the other peers' admin)."""

    @app.post("/_sandbox/load")
    async def load(request: Request) -> dict[str, Any]:
        body = await request.json()
        loaded = sum(ehr.load(f["ndjson"], _instant(f["last_updated"], "last_updated") or "") for f in body["files"])
        return {"loaded": loaded}

    @app.post("/_sandbox/settings")
    async def settings(request: Request) -> dict[str, Any]:
        body = await request.json()
        unknown = set(body) - set(DEFAULT_SETTINGS) - {"expire_tokens", "reset"}
        if unknown:
            raise FhirError(400, "invalid", f"unknown settings: {sorted(unknown)}")
        if body.get("reset"):
            ehr.settings = dict(DEFAULT_SETTINGS)
        if body.get("expire_tokens"):
            ehr.auth.expire_all()
        ehr.settings.update({k: v for k, v in body.items() if k in DEFAULT_SETTINGS})
        return {"settings": ehr.settings}

    @app.get("/_sandbox/state")
    def state() -> dict[str, Any]:
        with ehr.lock:
            counts = dict(ehr.db.execute("SELECT type, count(*) FROM resources GROUP BY type").fetchall())
        return {"counts": counts, "settings": ehr.settings, "tokens_issued": ehr.auth.issued,
                "tokens_refused": ehr.auth.refused, "events": ehr.events,
                "jobs": {j.id: {"polls": j.polls, "files": j.files, "failed": j.failed, "cancelled": j.cancelled}
                         for j in ehr.jobs.values()}}

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}


__all__ = ["BASE", "EhrFhir", "create_app"]
