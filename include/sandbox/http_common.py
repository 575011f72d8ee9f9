"""What the billing and ERP sandbox peers share: auth, faults, storage, pagination, idempotency.

Both peers imitate vendor REST APIs closely enough that the pipeline's retry, paging and
idempotency code is exercised for real: a bearer token that is checked, opaque cursors, 429/503
with ``Retry-After`` that an operator can arm on demand, and replays that return the first
response. Keeping these pieces here means the two peers cannot drift apart in behaviour.

State lives in SQLite (stdlib ``sqlite3``) so a restart keeps what was posted and tests can read
the sandbox's own records. Amounts are kept as the decimal text the client sent, checked with
``Decimal`` (request bodies are parsed with ``parse_float=Decimal``, so no float ever appears).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

ADMIN_PREFIX = "/_sandbox"
API_PREFIX = "/api/v1"
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


# --------------------------------------------------------------------------- errors


class ApiError(Exception):
    """An error answered as ``{"error": {"code", "message", "line"}}`` with an HTTP status."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        line: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.line = line
        self.headers = dict(headers or {})


def error_body(code: str, message: str, line: int | None = None) -> dict[str, Any]:
    """The one error envelope both peers use (the ERP contract's shape)."""
    return {"error": {"code": code, "message": message, "line": line}}


def invalid(message: str, line: int | None = None) -> ApiError:
    """A 422 ``INVALID``: the body is not what the contract describes."""
    return ApiError(422, "INVALID", message, line)


def bad_query(message: str) -> ApiError:
    """A 400 for a query parameter that cannot be understood (limit, cursor, dates)."""
    return ApiError(400, "BAD_REQUEST", message)


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error, FastAPI's own included, in the shared envelope."""

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(error_body(exc.code, exc.message, exc.line), exc.status, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(exc.status_code, "HTTP_ERROR")
        return JSONResponse(error_body(code, str(exc.detail)), exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(error_body("BAD_REQUEST", str(exc.errors())), 400)


# --------------------------------------------------------------------------- auth


def bearer_auth(expected_token: str) -> Callable[[Request], None]:
    """A dependency that refuses (401) any request without ``Authorization: Bearer <token>``.

    Checked on the real API only; the ``/_sandbox`` admin endpoints stay open so operators and
    tests can arm faults and load seeds from the shell.
    """

    def check(request: Request) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or token.strip() != expected_token:
            raise ApiError(
                401,
                "UNAUTHORIZED",
                "missing or invalid bearer token",
                headers={"WWW-Authenticate": 'Bearer realm="carefabric-sandbox"'},
            )

    return check


# --------------------------------------------------------------------------- faults


FAULT_TIMINGS = ("before", "after_commit")


@dataclass
class Fault:
    """One armed fault: the next ``remaining`` requests matching method + path prefix fail.

    ``when="before"`` answers the error instead of handling the request (a gateway refusing
    it, after ``hang_seconds``: no side effect). ``when="after_commit"`` lets the peer handle and commit the request,
    then waits ``hang_seconds`` and answers the error instead of the result: the answer is lost,
    as when a load balancer times out or a worker dies while the ERP has already posted.
    ``skip`` lets that many matching requests through first (the k-th document of a run).
    """

    path_prefix: str
    method: str | None
    status: int
    remaining: int
    retry_after: int
    when: str = "before"
    hang_seconds: float = 0.0
    skip: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "path_prefix": self.path_prefix,
            "method": self.method,
            "status": self.status,
            "count": self.remaining,
            "retry_after": self.retry_after,
            "when": self.when,
            "hang_seconds": self.hang_seconds,
            "skip": self.skip,
        }


class FaultRegistry:
    """Faults armed through ``POST /_sandbox/faults``; consumed one matching request at a time.

    In memory on purpose: a fault is a test's momentary instruction, not sandbox state, so a
    restart clears it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._fired: list[dict[str, Any]] = []

    def arm(self, spec: Mapping[str, Any]) -> Fault:
        """Validate a fault spec (the contract's JSON) and arm it."""
        if not isinstance(spec, Mapping):
            raise invalid("fault spec must be a JSON object")
        prefix = spec.get("path_prefix")
        if not isinstance(prefix, str) or not prefix.startswith("/"):
            raise invalid("path_prefix must be a path starting with '/'")
        method = spec.get("method")
        if method is not None and (not isinstance(method, str) or not method.strip()):
            raise invalid("method must be an HTTP method or null")
        try:
            status = int(spec.get("status", 503))
            count = int(spec.get("count", 1))
            retry_after = int(spec.get("retry_after", 1))
            skip = int(spec.get("skip", 0))
            hang = float(spec.get("hang_seconds", 0))
        except (TypeError, ValueError) as exc:
            raise invalid("status, count, retry_after, skip and hang_seconds must be numbers") from exc
        if not 400 <= status <= 599:
            raise invalid("status must be an HTTP error status (429, 503, ...)")
        if count < 1 or retry_after < 0 or skip < 0 or not 0 <= hang <= 600:
            raise invalid("count must be >= 1; retry_after, skip >= 0; hang_seconds within 0..600")
        when = spec.get("when", "before")
        if when not in FAULT_TIMINGS:
            raise invalid(f"when must be one of {list(FAULT_TIMINGS)}")
        method_norm = None if method in (None, "*") else str(method).upper()
        fault = Fault(prefix, method_norm, status, count, retry_after, when, hang, skip)
        with self._lock:
            self._faults.append(fault)
        return fault

    def take(self, method: str, path: str) -> Fault | None:
        """Consume one use of the first fault matching this request, if any."""
        with self._lock:
            for fault in self._faults:
                if (fault.method is None or fault.method == method.upper()) and path.startswith(
                    fault.path_prefix
                ):
                    if fault.skip > 0:
                        fault.skip -= 1
                        return None
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    self._fired.append({"method": method.upper(), "path": path, "status": fault.status,
                                        "when": fault.when, "at": utc_now()})
                    return fault
        return None

    def pending(self) -> list[dict[str, Any]]:
        with self._lock:
            return [f.as_dict() for f in self._faults]

    def fired(self) -> list[dict[str, Any]]:
        """Every request a fault answered, in order (tests wait on this before killing a client)."""
        with self._lock:
            return list(self._fired)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
            self._fired.clear()


def fault_response(fault: Fault) -> JSONResponse:
    """What an armed fault answers: 429/503 carry ``Retry-After`` as a real gateway does."""
    headers = {}
    if fault.status in (429, 503):
        headers["Retry-After"] = str(fault.retry_after)
    code = {429: "RATE_LIMITED", 503: "SERVICE_UNAVAILABLE"}.get(fault.status, "SANDBOX_FAULT")
    return JSONResponse(error_body(code, f"sandbox fault ({fault.status}) armed for {fault.path_prefix}"),
                        fault.status, headers=headers)


# --------------------------------------------------------------------------- storage


class SqliteStore:
    """One SQLite file shared by the request threads of one peer.

    A single connection behind a lock keeps it simple and serialises writers (the sandbox is
    not a load test); WAL lets tests and operators read the file while the peer runs.
    """

    def __init__(self, path: Path, schema: str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._conn.executescript(schema)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Run a block atomically (check-then-insert idempotency relies on this)."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """The connection for a few reads under the lock (no write transaction)."""
        with self._lock:
            yield self._conn

    def query(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return list(self._conn.execute(sql, params))

    def close(self) -> None:
        with self._lock:
            self._conn.close()


# --------------------------------------------------------------------------- values


def utc_now() -> str:
    """Now as the fixed-width UTC text stored in ``updated_utc`` (so text order = time order)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_instant(text: str, what: str = "timestamp") -> str:
    """An ISO 8601 date or timestamp to fixed-width UTC text; a naive value is taken as UTC."""
    try:
        value = datetime.fromisoformat(text.strip())
    except (ValueError, AttributeError) as exc:
        raise bad_query(f"{what} is not ISO 8601: {text!r}") from exc
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def check_date(value: Any, what: str, line: int | None = None) -> str:
    """A ``YYYY-MM-DD`` field, or a 422 ``INVALID`` naming it."""
    if not isinstance(value, str):
        raise invalid(f"{what} must be a YYYY-MM-DD string", line)
    try:
        date.fromisoformat(value)
    except ValueError as exc:
        raise invalid(f"{what} is not a YYYY-MM-DD date: {value!r}", line) from exc
    if len(value) != 10:
        raise invalid(f"{what} is not a YYYY-MM-DD date: {value!r}", line)
    return value


def check_decimal(value: Any, what: str, line: int | None = None, *, places: int | None = None) -> Decimal:
    """A decimal amount given as a string (or a JSON number parsed as Decimal), never a float."""
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise invalid(f"{what} must be a decimal string", line)
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise invalid(f"{what} is not a decimal number: {value!r}", line) from exc
    if not amount.is_finite():
        raise invalid(f"{what} is not a finite number: {value!r}", line)
    if places is not None and amount != amount.quantize(Decimal(1).scaleb(-places)):
        raise invalid(f"{what} has more than {places} decimal places: {value!r}", line)
    return amount


def check_text(body: Mapping[str, Any], name: str, line: int | None = None, *, required: bool = True) -> str | None:
    """A string field; required ones must be non-empty."""
    value = body.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise invalid(f"{name} is required", line)
        return None
    if not isinstance(value, str):
        raise invalid(f"{name} must be a string", line)
    return value


async def read_json(request: Request) -> Any:
    """The request body as JSON with every non-integer number parsed as ``Decimal``."""
    raw = await request.body()
    try:
        return json.loads(raw or b"null", parse_float=Decimal)
    except (ValueError, UnicodeDecodeError) as exc:
        raise invalid(f"body is not JSON: {exc}") from exc


async def read_object(request: Request) -> dict[str, Any]:
    """The request body, which must be a JSON object."""
    body = await read_json(request)
    if not isinstance(body, dict):
        raise invalid("body must be a JSON object")
    return body


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(value: Any) -> str:
    """Canonical JSON (sorted keys; Decimals as their text) used for storage and fingerprints."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=_json_default)


def fingerprint(value: Any) -> str:
    """A stable hash of a request body: same content, same fingerprint."""
    return hashlib.sha256(dumps(value).encode()).hexdigest()


def json_response(body: Any, status: int = 200, *, replay: bool = False) -> JSONResponse:
    """A JSON answer; replays carry ``Idempotent-Replay: true`` so clients can tell."""
    headers = {"Idempotent-Replay": "true"} if replay else None
    return JSONResponse(json.loads(dumps(body)), status, headers=headers)


# --------------------------------------------------------------------------- tables


@dataclass(frozen=True)
class Column:
    """One field of a resource. ``kind``: ``text``, ``bool``, ``decimal``, ``int`` or ``json``."""

    name: str
    kind: str = "text"
    required: bool = False
    default: Any = None


@dataclass(frozen=True)
class Table:
    """A resource stored in one SQLite table and listed with the shared paging and filters.

    Every table also has ``seq`` (insertion order, the cursor), ``updated_utc`` (what the
    ``updated_since``/``updated_before`` filters compare) and ``extra`` (fields a seed carries
    beyond the contract, kept and echoed so the generator can add detail without a schema change).
    ``show_updated_at`` adds the contract's visible ``updated_at`` field.
    """

    name: str
    key: str | None
    columns: tuple[Column, ...]
    filters: tuple[str, ...] = ()
    show_updated_at: bool = False
    extra_sql: str = ""
    column_names: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "column_names", tuple(c.name for c in self.columns))

    def ddl(self) -> str:
        sql_type = {"text": "TEXT", "bool": "INTEGER", "decimal": "TEXT", "int": "INTEGER", "json": "TEXT"}
        cols = [f"{c.name} {sql_type[c.kind]}" for c in self.columns]
        if self.key:
            cols = [f"{c} UNIQUE" if c.split()[0] == self.key else c for c in cols]
        cols.insert(0, "seq INTEGER PRIMARY KEY AUTOINCREMENT")
        cols += ["updated_at TEXT", "updated_utc TEXT NOT NULL", "extra TEXT"]
        indexes = "".join(
            f"CREATE INDEX IF NOT EXISTS ix_{self.name}_{f} ON {self.name} ({f});\n" for f in self.filters
        )
        return (
            f"CREATE TABLE IF NOT EXISTS {self.name} (\n  " + ",\n  ".join(cols) + "\n);\n"
            f"CREATE INDEX IF NOT EXISTS ix_{self.name}_updated ON {self.name} (updated_utc);\n"
            + indexes + self.extra_sql
        )

    def to_db(self, column: Column, value: Any, line: int | None) -> Any:
        """A JSON value to what the column stores, or a 422 naming the field."""
        if value is None:
            value = column.default
        if value is None:
            if column.required:
                raise invalid(f"{self.name}: {column.name} is required", line)
            return None
        if column.kind == "bool":
            if isinstance(value, str):
                return 1 if value.strip().lower() in ("true", "1", "yes", "y", "active") else 0
            return 1 if value else 0
        if column.kind == "decimal":
            return str(check_decimal(value, f"{self.name}.{column.name}", line))
        if column.kind == "int":
            try:
                return int(value)
            except (TypeError, ValueError) as exc:
                raise invalid(f"{self.name}.{column.name} must be an integer", line) from exc
        if column.kind == "json":
            return dumps(value)
        if isinstance(value, dict | list):
            raise invalid(f"{self.name}.{column.name} must be a scalar", line)
        return str(value)

    def from_db(self, row: sqlite3.Row) -> dict[str, Any]:
        """A stored row back to the contract's JSON item (extras after the contract fields)."""
        item: dict[str, Any] = {}
        for column in self.columns:
            value = row[column.name]
            if value is not None and column.kind == "bool":
                value = bool(value)
            elif value is not None and column.kind == "json":
                value = json.loads(value)
            item[column.name] = value
        if self.show_updated_at:
            item["updated_at"] = row["updated_at"]
        if row["extra"]:
            for name, value in json.loads(row["extra"]).items():
                item.setdefault(name, value)
        return item

    def insert(self, conn: sqlite3.Connection, record: Mapping[str, Any], *, line: int | None = None,
               now: str | None = None) -> int:
        """Store one record (a later record with the same key replaces the earlier); returns ``seq``."""
        if not isinstance(record, Mapping):
            raise invalid(f"{self.name}: each record must be a JSON object", line)
        if self.key and (record.get(self.key) in (None, "")):
            raise invalid(f"{self.name}: {self.key} is required", line)
        values = [self.to_db(c, record.get(c.name), line) for c in self.columns]
        stamp = now or utc_now()
        updated_at = record.get("updated_at") if self.show_updated_at else None
        if updated_at not in (None, ""):
            try:
                updated_utc = parse_instant(str(updated_at))
            except ApiError as exc:
                raise invalid(f"{self.name}: updated_at is not ISO 8601: {updated_at!r}", line) from exc
        else:
            updated_at = stamp if self.show_updated_at else None
            updated_utc = stamp
        known = set(self.column_names) | {"updated_at"}
        extra = {k: v for k, v in record.items() if k not in known}
        names = [*self.column_names, "updated_at", "updated_utc", "extra"]
        cur = conn.execute(
            f"INSERT OR REPLACE INTO {self.name} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
            [*values, updated_at, updated_utc, dumps(extra) if extra else None],
        )
        return int(cur.lastrowid or 0)

    def replace_all(self, conn: sqlite3.Connection, records: Any) -> int:
        """Replace the table's content with a seed list (``/_sandbox/load``)."""
        if not isinstance(records, list):
            raise invalid(f"{self.name} must be a list")
        conn.execute(f"DELETE FROM {self.name}")
        now = utc_now()
        for index, record in enumerate(records):
            self.insert(conn, record, line=index, now=now)
        return len(records)

    def get(self, conn: sqlite3.Connection, key: str) -> dict[str, Any] | None:
        """The record with this key, or None."""
        row = conn.execute(f"SELECT * FROM {self.name} WHERE {self.key} = ?", (key,)).fetchone()
        return self.from_db(row) if row else None

    def count(self, store: SqliteStore) -> int:
        return int(store.query(f"SELECT COUNT(*) FROM {self.name}")[0][0])


# --------------------------------------------------------------------------- pagination


def encode_cursor(seq: int) -> str:
    """An opaque cursor: clients must not build or parse it (so the server may change it)."""
    return base64.urlsafe_b64encode(dumps({"v": 1, "after": seq}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        return int(data["after"])
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise bad_query("cursor is not one this server issued") from exc


def parse_limit(text: str | None) -> int:
    if text in (None, ""):
        return DEFAULT_LIMIT
    try:
        limit = int(text)
    except ValueError as exc:
        raise bad_query(f"limit must be an integer: {text!r}") from exc
    if not 1 <= limit <= MAX_LIMIT:
        raise bad_query(f"limit must be between 1 and {MAX_LIMIT}")
    return limit


def list_page(
    store: SqliteStore,
    table: Table,
    query: Mapping[str, str],
    decorate: Callable[[list[dict[str, Any]], list[sqlite3.Row]], None] | None = None,
) -> dict[str, Any]:
    """One page of a list endpoint: ``{"data": [...], "next_cursor": str | None}``.

    Pages follow insertion order (``seq``), so a walk sees each record once even while new ones
    arrive; equality filters are the table's declared ``filters``; ``updated_since`` is
    inclusive and ``updated_before`` exclusive.
    """
    limit = parse_limit(query.get("limit"))
    where: list[str] = []
    params: list[Any] = []
    if query.get("cursor"):
        where.append("seq > ?")
        params.append(decode_cursor(query["cursor"]))
    if query.get("updated_since"):
        where.append("updated_utc >= ?")
        params.append(parse_instant(query["updated_since"], "updated_since"))
    if query.get("updated_before"):
        where.append("updated_utc < ?")
        params.append(parse_instant(query["updated_before"], "updated_before"))
    for name in table.filters:
        if query.get(name) not in (None, ""):
            where.append(f"{name} = ?")
            params.append(query[name])
    sql = f"SELECT * FROM {table.name}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY seq LIMIT ?"
    rows = store.query(sql, [*params, limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    items = [table.from_db(r) for r in rows]
    if decorate:
        decorate(items, rows)
    return {"data": items, "next_cursor": encode_cursor(rows[-1]["seq"]) if more else None}


# --------------------------------------------------------------------------- idempotency

IDEMPOTENCY_DDL = """
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS idempotency (
  scope TEXT NOT NULL,
  key TEXT NOT NULL,
  fingerprint TEXT NOT NULL,
  status INTEGER NOT NULL,
  response TEXT NOT NULL,
  created_at TEXT NOT NULL,
  PRIMARY KEY (scope, key)
);
"""


@dataclass(frozen=True)
class Remembered:
    """The first answer given for an idempotency key."""

    fingerprint: str
    status: int
    response: dict[str, Any]


class IdempotencyLedger:
    """First answers per (scope, key), in the peer's own database so replays survive restarts.

    Call inside ``SqliteStore.transaction()`` so look-up and record are one atomic step. Only
    successful answers are remembered: a rejected request leaves its key free for a corrected
    re-post, as the ERP contract requires.
    """

    @staticmethod
    def find(conn: sqlite3.Connection, scope: str, key: str) -> Remembered | None:
        row = conn.execute(
            "SELECT fingerprint, status, response FROM idempotency WHERE scope = ? AND key = ?", (scope, key)
        ).fetchone()
        if row is None:
            return None
        return Remembered(row["fingerprint"], int(row["status"]), json.loads(row["response"]))

    @staticmethod
    def remember(conn: sqlite3.Connection, scope: str, key: str, fp: str, status: int,
                 response: Mapping[str, Any]) -> None:
        conn.execute(
            "INSERT INTO idempotency (scope, key, fingerprint, status, response, created_at) VALUES (?,?,?,?,?,?)",
            (scope, key, fp, status, dumps(response), utc_now()),
        )

    @staticmethod
    def next_document_id(conn: sqlite3.Connection, prefix: str) -> str:
        """The next document number of a kind (``JE-000001``), kept in the database."""
        conn.execute(
            "INSERT INTO counters (name, value) VALUES (?, 1) "
            "ON CONFLICT(name) DO UPDATE SET value = value + 1",
            (prefix,),
        )
        value = conn.execute("SELECT value FROM counters WHERE name = ?", (prefix,)).fetchone()[0]
        return f"{prefix}-{int(value):06d}"

    @staticmethod
    def clear(conn: sqlite3.Connection) -> None:
        """Forget every key and restart document numbers (``/_sandbox/reset``)."""
        conn.execute("DELETE FROM idempotency")
        conn.execute("DELETE FROM counters")

    @staticmethod
    def count(store: SqliteStore, scope: str) -> int:
        return int(store.query("SELECT COUNT(*) FROM idempotency WHERE scope = ?", (scope,))[0][0])


# --------------------------------------------------------------------------- app skeleton


def make_app(title: str, faults: FaultRegistry) -> FastAPI:
    """A FastAPI app with the shared error envelope, the fault gate and the fault admin endpoints.

    The fault gate runs before routing and auth, as a gateway or load balancer would, and a
    faulted request has no side effect: the retry that follows is the only one that counts.
    """
    app = FastAPI(title=title, docs_url=None, redoc_url=None, openapi_url=None)
    install_error_handlers(app)

    @app.middleware("http")
    async def _fault_gate(request: Request, call_next: Callable[[Request], Any]) -> Response:
        path = request.url.path
        if not path.startswith(ADMIN_PREFIX):
            fault = faults.take(request.method, path)
            if fault is not None and fault.when == "after_commit":
                await call_next(request)  # handled and committed; its answer is then lost
                await asyncio.sleep(fault.hang_seconds)
                return fault_response(fault)
            if fault is not None:
                await asyncio.sleep(fault.hang_seconds)  # a request stuck in a gateway, never handled
                return fault_response(fault)
        return await call_next(request)

    @app.post(f"{ADMIN_PREFIX}/faults", status_code=201)
    async def arm_fault(request: Request) -> dict[str, Any]:
        fault = faults.arm(await read_object(request))
        return {"armed": fault.as_dict(), "pending": faults.pending()}

    @app.get(f"{ADMIN_PREFIX}/faults")
    def list_faults() -> dict[str, Any]:
        return {"pending": faults.pending(), "fired": faults.fired()}

    @app.delete(f"{ADMIN_PREFIX}/faults")
    def clear_faults() -> dict[str, Any]:
        faults.clear()
        return {"pending": []}

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def api_dependencies(token: str) -> list[Any]:
    """The dependencies every ``/api/v1`` router carries (bearer auth)."""
    return [Depends(bearer_auth(token))]
