"""The ERP's sandbox REST API (docs/CONTRACTS.md, "ERP REST API").

The ERP owns master data (companies, cost centers, GL accounts, items, locations, payers,
periods; loaded from the generator's ``erp_master.json``) and receives the pipeline's journal
batches, inventory movements and cash receipts. It validates postings the way a real general
ledger does (balanced, known and active accounts and cost centers, known company, open period)
so the pipeline's business exceptions are provoked by the ERP itself, not simulated. Every
posting is idempotent on ``external_id``: a re-post answers the first result and posts nothing,
while a rejected posting is not remembered, so the corrected re-post under the same id goes in.
``POST /_sandbox/settings {"deduplicate": false}`` turns that off, as many real ERP import APIs
are: then every POST is a new document and ``GET .../{external_id}`` finds the posted ones.
"""

from __future__ import annotations

import json
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse

from carefabric.money import format_cents, to_cents
from sandbox import ERP_TOKEN
from sandbox.erp_ledger import add_ledger_routes
from sandbox.http_common import (
    ADMIN_PREFIX,
    API_PREFIX,
    IDEMPOTENCY_DDL,
    ApiError,
    Column,
    FaultRegistry,
    IdempotencyLedger,
    SqliteStore,
    Table,
    api_dependencies,
    check_date,
    check_decimal,
    check_text,
    invalid,
    json_response,
    list_page,
    make_app,
    read_object,
    utc_now,
)

COMPANIES = Table(
    "companies", "company_id", (Column("company_id", required=True), Column("name"), Column("currency"))
)
COST_CENTERS = Table(
    "cost_centers",
    "cost_center",
    (
        Column("cost_center", required=True),
        Column("company_id"),
        Column("facility"),
        Column("department"),
        Column("name"),
        Column("active", "bool", default=True),
    ),
    filters=("company_id", "facility", "department"),
)
GL_ACCOUNTS = Table(
    "gl_accounts",
    "account",
    (Column("account", required=True), Column("name"), Column("type"), Column("active", "bool", default=True)),
    filters=("type",),
)
ITEMS = Table(
    "items",
    "item",
    (
        Column("item", required=True),
        Column("description"),
        Column("unit_cost", "decimal"),
        Column("uom"),
        Column("active", "bool", default=True),
    ),
)
LOCATIONS = Table(
    "locations", "location", (Column("location", required=True), Column("facility"), Column("name")),
    filters=("facility",),
)
PAYERS = Table(
    "payers",
    "payer_id",
    (Column("payer_id", required=True), Column("name"), Column("x12_id"), Column("active", "bool", default=True)),
    filters=("x12_id",),
)
PERIODS = Table(
    "periods", "period", (Column("period", required=True), Column("status", default="open")), filters=("status",)
)
MASTER_TABLES = {
    "companies": COMPANIES,
    "cost_centers": COST_CENTERS,
    "gl_accounts": GL_ACCOUNTS,
    "items": ITEMS,
    "locations": LOCATIONS,
    "payers": PAYERS,
    "periods": PERIODS,
}

JOURNALS = Table(
    "journal_batches",
    "document_id",
    (
        Column("document_id", required=True),
        Column("external_id", required=True),
        Column("company"),
        Column("journal_date"),
        Column("source"),
        Column("description"),
        Column("status"),
        Column("posted_at"),
    ),
    filters=("journal_date", "source", "company", "external_id"),
    # Lines get their own table so tests and operators can sum the ledger in SQL.
    extra_sql="""
CREATE TABLE IF NOT EXISTS journal_lines (
  document_id TEXT NOT NULL,
  line_no INTEGER NOT NULL,
  account TEXT NOT NULL,
  cost_center TEXT,
  location TEXT,
  facility TEXT,
  debit TEXT NOT NULL,
  credit TEXT NOT NULL,
  debit_cents INTEGER NOT NULL,
  credit_cents INTEGER NOT NULL,
  memo TEXT,
  PRIMARY KEY (document_id, line_no)
);
""",
)
MOVEMENTS = Table(
    "inventory_movements",
    "document_id",
    (
        Column("document_id", required=True),
        Column("external_id", required=True),
        Column("company"),
        Column("movement_date"),
        Column("status"),
        Column("posted_at"),
        Column("lines", "json"),
    ),
    filters=("movement_date", "company", "external_id"),
)
CASH_RECEIPTS = Table(
    "cash_receipts",
    "document_id",
    (
        Column("document_id", required=True),
        Column("external_id", required=True),
        Column("company"),
        Column("receipt_date"),
        Column("trace_number"),
        Column("payer_id"),
        Column("amount", "decimal"),
        Column("facility"),
        Column("status"),
        Column("posted_at"),
    ),
    filters=("receipt_date", "trace_number", "payer_id", "company", "facility", "external_id"),
)
DOCUMENT_TABLES = (JOURNALS, MOVEMENTS, CASH_RECEIPTS)
# Switches a test or an operator sets on the running peer (``/_sandbox/settings``); kept in the
# peer's own database so every request thread and a restart see the same behaviour.
SETTINGS_DDL = "CREATE TABLE IF NOT EXISTS sandbox_settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);\n"
SETTINGS_DEFAULTS = {"deduplicate": True}
SCHEMA = "".join(t.ddl() for t in (*MASTER_TABLES.values(), *DOCUMENT_TABLES)) + IDEMPOTENCY_DDL + SETTINGS_DDL
LINE_FIELDS = ("account", "cost_center", "location", "facility", "debit", "credit", "memo")


def settings(conn: sqlite3.Connection) -> dict[str, Any]:
    stored = {r[0]: json.loads(r[1]) for r in conn.execute("SELECT name, value FROM sandbox_settings")}
    return {**SETTINGS_DEFAULTS, **stored}


def deduplicates(conn: sqlite3.Connection) -> bool:
    """Whether a re-used external id answers the first result (the default) or posts again."""
    return bool(settings(conn)["deduplicate"])


def rejected(code: str, message: str, line: int | None = None) -> ApiError:
    """A 422 business rejection with one of the contract's codes."""
    return ApiError(422, code, message, line)


# --------------------------------------------------------------------------- master-data checks


def check_company(conn: sqlite3.Connection, company: str) -> None:
    if COMPANIES.get(conn, company) is None:
        raise rejected("UNKNOWN_COMPANY", f"company {company!r} does not exist")


def check_period(conn: sqlite3.Connection, posting_date: str) -> None:
    """Refuse a posting into a closed period; a period the ERP does not list counts as open."""
    period = PERIODS.get(conn, posting_date[:7])
    if period is not None and str(period.get("status") or "open").lower() != "open":
        raise rejected("PERIOD_CLOSED", f"period {posting_date[:7]} is {period['status']}")


def check_account(conn: sqlite3.Connection, account: str, line: int) -> None:
    record = GL_ACCOUNTS.get(conn, account)
    if record is None:
        raise rejected("UNKNOWN_ACCOUNT", f"GL account {account!r} does not exist", line)
    if record.get("active") is False:
        raise rejected("INACTIVE_ACCOUNT", f"GL account {account!r} is inactive", line)


def check_cost_center(conn: sqlite3.Connection, cost_center: str | None, line: int) -> None:
    if cost_center is None:
        return
    record = COST_CENTERS.get(conn, cost_center)
    if record is None:
        raise rejected("UNKNOWN_COST_CENTER", f"cost center {cost_center!r} does not exist", line)
    if record.get("active") is False:
        raise rejected("INACTIVE_COST_CENTER", f"cost center {cost_center!r} is inactive", line)


def check_header(body: dict[str, Any], date_field: str) -> tuple[str, str, str]:
    """external_id, company and the posting date every document carries."""
    external_id = check_text(body, "external_id")
    company = check_text(body, "company")
    posting_date = check_date(body.get(date_field), date_field)
    return external_id, company, posting_date  # type: ignore[return-value]


def replay(conn: sqlite3.Connection, scope: str, external_id: str) -> JSONResponse | None:
    """The first answer for an external id already posted, else None.

    With de-duplication switched off (``POST /_sandbox/settings {"deduplicate": false}``) the
    ERP behaves like the many import APIs that do not look at the external id: every POST is a
    new document, so only the caller's own discipline keeps a document from posting twice.
    """
    if not deduplicates(conn):
        return None
    seen = IdempotencyLedger.find(conn, scope, external_id)
    if seen is None:
        return None
    return json_response(seen.response, 200, replay=True)


# --------------------------------------------------------------------------- postings


def post_journal(conn: sqlite3.Connection, body: dict[str, Any]) -> JSONResponse:
    """Validate and post one journal batch (inside the store's transaction)."""
    external_id, company, journal_date = check_header(body, "journal_date")
    earlier = replay(conn, "journal-batches", external_id)
    if earlier is not None:
        return earlier
    lines = body.get("lines")
    if not isinstance(lines, list) or not lines:
        raise invalid("lines must be a non-empty list")
    parsed: list[dict[str, Any]] = []
    for index, line in enumerate(lines):
        if not isinstance(line, dict):
            raise invalid("each line must be a JSON object", index)
        account = check_text(line, "account", index)
        debit = check_decimal(line.get("debit", "0"), "debit", index, places=2)
        credit = check_decimal(line.get("credit", "0"), "credit", index, places=2)
        if debit < 0 or credit < 0:
            raise invalid("debit and credit must not be negative", index)
        if debit and credit:
            raise invalid("a line is either a debit or a credit, not both", index)
        parsed.append({
            "account": account,
            "cost_center": check_text(line, "cost_center", index, required=False),
            "location": check_text(line, "location", index, required=False),
            "facility": check_text(line, "facility", index, required=False),
            "debit_cents": to_cents(debit),
            "credit_cents": to_cents(credit),
            "memo": check_text(line, "memo", index, required=False),
        })
    check_company(conn, company)
    check_period(conn, journal_date)
    for index, line in enumerate(parsed):
        check_account(conn, line["account"], index)
        check_cost_center(conn, line["cost_center"], index)
    debits = sum(line["debit_cents"] for line in parsed)
    credits = sum(line["credit_cents"] for line in parsed)
    if debits != credits:
        raise rejected(
            "UNBALANCED", f"debits {format_cents(debits)} != credits {format_cents(credits)}"
        )
    document_id = IdempotencyLedger.next_document_id(conn, "JE")
    JOURNALS.insert(conn, {
        "document_id": document_id,
        "external_id": external_id,
        "company": company,
        "journal_date": journal_date,
        "source": check_text(body, "source", required=False),
        "description": check_text(body, "description", required=False),
        "status": "posted",
        "posted_at": utc_now(),
    })
    for number, line in enumerate(parsed, start=1):
        conn.execute(
            "INSERT INTO journal_lines (document_id, line_no, account, cost_center, location, facility,"
            " debit, credit, debit_cents, credit_cents, memo) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (document_id, number, line["account"], line["cost_center"], line["location"], line["facility"],
             format_cents(line["debit_cents"]), format_cents(line["credit_cents"]),
             line["debit_cents"], line["credit_cents"], line["memo"]),
        )
    return posted(conn, "journal-batches", external_id, document_id)


def posted(conn: sqlite3.Connection, kind: str, external_id: str, document_id: str) -> JSONResponse:
    """201 for a new document, remembered so that the same external id replays this answer."""
    response = {"document_id": document_id, "external_id": external_id, "status": "posted"}
    IdempotencyLedger.remember(conn, kind, external_id, "", 201, response)
    return json_response(response, 201)


def post_movement(conn: sqlite3.Connection, body: dict[str, Any]) -> JSONResponse:
    """Validate and post one inventory movement document."""
    external_id, company, movement_date = check_header(body, "movement_date")
    earlier = replay(conn, "inventory-movements", external_id)
    if earlier is not None:
        return earlier
    lines = body.get("lines")
    if not isinstance(lines, list) or not lines:
        raise invalid("lines must be a non-empty list")
    check_company(conn, company)
    check_period(conn, movement_date)
    stored: list[dict[str, Any]] = []
    for index, line in enumerate(lines):
        if not isinstance(line, dict):
            raise invalid("each line must be a JSON object", index)
        location = check_text(line, "location", index)
        item_code = check_text(line, "item", index)
        quantity = check_decimal(line.get("quantity"), "quantity", index)
        if quantity == 0:
            raise invalid("quantity must not be zero", index)
        if LOCATIONS.get(conn, location) is None:  # type: ignore[arg-type]
            raise rejected("UNKNOWN_LOCATION", f"location {location!r} does not exist", index)
        item = ITEMS.get(conn, item_code)  # type: ignore[arg-type]
        if item is None:
            raise rejected("UNKNOWN_ITEM", f"item {item_code!r} does not exist", index)
        cost_center = check_text(line, "cost_center", index, required=False)
        check_cost_center(conn, cost_center, index)
        unit_cost = line.get("unit_cost")
        unit_cost = unit_cost if unit_cost is not None else item.get("unit_cost")
        if unit_cost is None:
            raise invalid(f"unit_cost is required: item {item_code!r} has no standard cost", index)
        cost = check_decimal(unit_cost, "unit_cost", index)
        if cost < 0:
            raise invalid("unit_cost must not be negative", index)
        stored.append({
            "location": location,
            "item": item_code,
            "quantity": str(quantity),
            "unit_cost": str(cost),
            "cost_center": cost_center,
            "movement_type": check_text(line, "movement_type", index, required=False) or "consumption",
        })
    document_id = IdempotencyLedger.next_document_id(conn, "IM")
    MOVEMENTS.insert(conn, {
        "document_id": document_id,
        "external_id": external_id,
        "company": company,
        "movement_date": movement_date,
        "status": "posted",
        "posted_at": utc_now(),
        "lines": stored,
    })
    return posted(conn, "inventory-movements", external_id, document_id)


def post_cash_receipt(conn: sqlite3.Connection, body: dict[str, Any]) -> JSONResponse:
    """Validate and post one cash receipt (one per EFT/check trace)."""
    external_id, company, receipt_date = check_header(body, "receipt_date")
    earlier = replay(conn, "cash-receipts", external_id)
    if earlier is not None:
        return earlier
    trace_number = check_text(body, "trace_number")
    payer_id = check_text(body, "payer_id")
    amount = check_decimal(body.get("amount"), "amount", places=2)
    facility = check_text(body, "facility", required=False)
    check_company(conn, company)
    check_period(conn, receipt_date)
    if PAYERS.get(conn, payer_id) is None:  # type: ignore[arg-type]
        raise rejected("UNKNOWN_PAYER", f"payer {payer_id!r} does not exist")
    document_id = IdempotencyLedger.next_document_id(conn, "CR")
    CASH_RECEIPTS.insert(conn, {
        "document_id": document_id,
        "external_id": external_id,
        "company": company,
        "receipt_date": receipt_date,
        "trace_number": trace_number,
        "payer_id": payer_id,
        "amount": format_cents(to_cents(amount)),
        "facility": facility,
        "status": "posted",
        "posted_at": utc_now(),
    })
    return posted(conn, "cash-receipts", external_id, document_id)


def journal_lines(conn: sqlite3.Connection, document_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT line_no, account, cost_center, location, facility, debit, credit, memo FROM journal_lines"
        " WHERE document_id = ? ORDER BY line_no",
        (document_id,),
    )
    return [dict(row) for row in rows]


def ledger_balances(store: SqliteStore) -> dict[str, Decimal]:
    """Net debit balance per GL account over everything posted (a convenience for tests)."""
    rows = store.query(
        "SELECT account, SUM(debit_cents) - SUM(credit_cents) AS net FROM journal_lines GROUP BY account"
    )
    return {row["account"]: Decimal(format_cents(int(row["net"]))) for row in rows}


# --------------------------------------------------------------------------- app


def create_app(db_path: Path, faults: FaultRegistry | None = None) -> FastAPI:
    """The ERP peer as a FastAPI app over ``db_path`` (the store is ``app.state.store``)."""
    faults = faults or FaultRegistry()
    store = SqliteStore(db_path, SCHEMA)
    app = make_app("carefabric sandbox: ERP", faults)
    app.state.store = store
    app.state.faults = faults
    api = APIRouter(prefix=API_PREFIX, dependencies=api_dependencies(ERP_TOKEN))

    def master_list(path: str, table: Table) -> None:
        def endpoint(request: Request) -> dict[str, Any]:
            return list_page(store, table, request.query_params)

        api.add_api_route(path, endpoint, methods=["GET"], name=f"list_{table.name}")

    for path, table in (
        ("/companies", COMPANIES), ("/cost-centers", COST_CENTERS), ("/gl-accounts", GL_ACCOUNTS),
        ("/items", ITEMS), ("/locations", LOCATIONS), ("/payers", PAYERS), ("/periods", PERIODS),
        ("/inventory-movements", MOVEMENTS), ("/cash-receipts", CASH_RECEIPTS),
    ):
        master_list(path, table)

    def with_lines(items: list[dict[str, Any]], _rows: list[sqlite3.Row]) -> None:
        with store.read() as conn:
            for item in items:
                item["lines"] = journal_lines(conn, item["document_id"])

    @api.get("/journal-batches")
    def list_journals(request: Request) -> dict[str, Any]:
        return list_page(store, JOURNALS, request.query_params, decorate=with_lines)

    def one(table: Table, external_id: str) -> dict[str, Any]:
        """The first document posted under an external id, with how many carry it."""
        with store.read() as conn:
            rows = list(conn.execute(f"SELECT * FROM {table.name} WHERE external_id = ? ORDER BY seq", (external_id,)))
            if not rows:
                raise ApiError(404, "NOT_FOUND", f"no {table.name} document with external_id {external_id!r}")
            record = table.from_db(rows[0])
            record["documents_with_this_external_id"] = len(rows)
            if table is JOURNALS:
                record["lines"] = journal_lines(conn, record["document_id"])
        return record

    @api.get("/journal-batches/{external_id}")
    def get_journal(external_id: str) -> dict[str, Any]:
        return one(JOURNALS, external_id)

    @api.get("/inventory-movements/{external_id}")
    def get_movement(external_id: str) -> dict[str, Any]:
        return one(MOVEMENTS, external_id)

    @api.get("/cash-receipts/{external_id}")
    def get_cash_receipt(external_id: str) -> dict[str, Any]:
        return one(CASH_RECEIPTS, external_id)

    @api.post("/journal-batches")
    async def create_journal(request: Request) -> JSONResponse:
        body = await read_object(request)
        with store.transaction() as conn:
            return post_journal(conn, body)

    @api.post("/inventory-movements")
    async def create_movement(request: Request) -> JSONResponse:
        body = await read_object(request)
        with store.transaction() as conn:
            return post_movement(conn, body)

    @api.post("/cash-receipts")
    async def create_cash_receipt(request: Request) -> JSONResponse:
        body = await read_object(request)
        with store.transaction() as conn:
            return post_cash_receipt(conn, body)

    add_ledger_routes(app, api, store)
    app.include_router(api)

    @app.post(f"{ADMIN_PREFIX}/load")
    async def load(request: Request) -> dict[str, Any]:
        """Replace the master-data sections present in the body; postings are kept."""
        body = await read_object(request)
        for index, period in enumerate(body.get("periods") or []):
            status = period.get("status", "open") if isinstance(period, dict) else None
            if status not in ("open", "closed"):
                raise invalid("periods: status must be 'open' or 'closed'", index)
        loaded: dict[str, int] = {}
        with store.transaction() as conn:
            for name, table in MASTER_TABLES.items():
                if name in body:
                    loaded[name] = table.replace_all(conn, body[name])
        return {"loaded": loaded, "ignored": sorted(set(body) - set(MASTER_TABLES))}

    @app.post(f"{ADMIN_PREFIX}/reset")
    def reset() -> dict[str, Any]:
        """Forget master data, postings, idempotency keys and document numbers."""
        with store.transaction() as conn:
            for table in (*MASTER_TABLES.values(), *DOCUMENT_TABLES):
                conn.execute(f"DELETE FROM {table.name}")
            conn.execute("DELETE FROM journal_lines")
            conn.execute("DELETE FROM sandbox_settings")
            IdempotencyLedger.clear(conn)
        faults.clear()
        return {"reset": True, "at": utc_now()}

    @app.get(f"{ADMIN_PREFIX}/state")
    def state() -> dict[str, Any]:
        counts = {t.name: t.count(store) for t in (*MASTER_TABLES.values(), *DOCUMENT_TABLES)}
        counts["journal_lines"] = int(store.query("SELECT COUNT(*) FROM journal_lines")[0][0])
        closed = [r["period"] for r in store.query("SELECT period FROM periods WHERE status != 'open'")]
        with store.read() as conn:
            current = settings(conn)
        return {"peer": "erp", "counts": counts, "closed_periods": closed, "faults_pending": faults.pending(),
                "faults_fired": faults.fired(), "settings": current}

    return app
