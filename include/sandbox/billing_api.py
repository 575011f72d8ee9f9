"""The billing platform's sandbox REST API (docs/CONTRACTS.md, "Billing REST API").

Billing is the system of record for claims, payments and patient balances (seeded from the
generator's ``billing_seed.json``) and receives the charges the pipeline captures from the EHR.
Charges are idempotent on the ``Idempotency-Key`` header like a real payment-style API: the same
key and body replays the first answer, the same key with another body is a 409, because a
silently merged retry is how charges get double-billed.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse

from sandbox import BILLING_TOKEN
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
    error_body,
    fingerprint,
    invalid,
    json_response,
    list_page,
    make_app,
    read_object,
    utc_now,
)

CLAIMS = Table(
    "claims",
    "claim_id",
    (
        Column("claim_id", required=True),
        Column("encounter_id"),
        Column("facility"),
        Column("payer_id"),
        Column("total_charge", "decimal"),
        Column("status"),
        Column("submitted_date"),
    ),
    filters=("encounter_id", "facility", "payer_id", "status", "submitted_date"),
    show_updated_at=True,
)
PAYMENTS = Table(
    "payments",
    "payment_id",
    (
        Column("payment_id", required=True),
        Column("claim_id"),
        Column("payer_id"),
        Column("amount", "decimal"),
        Column("paid_date"),
        Column("trace_number"),
    ),
    filters=("claim_id", "payer_id", "paid_date", "trace_number"),
    show_updated_at=True,
)
PATIENT_BALANCES = Table(
    "patient_balances",
    None,
    (Column("account_token", required=True), Column("encounter_id"), Column("balance", "decimal")),
    filters=("account_token", "encounter_id"),
    show_updated_at=True,
)
CHARGE_FIELDS = (
    "encounter_id", "facility", "line_key", "transaction_id", "service_date", "cdm_code", "quantity",
    "amount", "department", "cost_center", "revenue_account", "procedure_code", "patient_token",
)
CHARGES = Table(
    "charges",
    "charge_id",
    (
        Column("charge_id", required=True),
        Column("status"),
        Column("idempotency_key", required=True),
        *(Column(name, "decimal" if name in ("quantity", "amount") else "text") for name in CHARGE_FIELDS),
    ),
    filters=("service_date", "encounter_id", "facility", "cdm_code", "cost_center", "status"),
    show_updated_at=True,
)
SEED_TABLES = {"claims": CLAIMS, "payments": PAYMENTS, "patient_balances": PATIENT_BALANCES}
ALL_TABLES = (*SEED_TABLES.values(), CHARGES)
SCHEMA = "".join(t.ddl() for t in ALL_TABLES) + IDEMPOTENCY_DDL
SCOPE = "charges"


def validate_charge(body: Any, line: int | None = None) -> dict[str, Any]:
    """The charge fields the contract lists, checked (422 INVALID); extra fields are kept as sent."""
    if not isinstance(body, dict):
        raise invalid("a charge must be a JSON object", line)
    for name in ("encounter_id", "transaction_id", "cdm_code"):
        check_text(body, name, line)
    for name in set(CHARGE_FIELDS) - {"encounter_id", "transaction_id", "cdm_code", "service_date",
                                      "quantity", "amount"}:
        check_text(body, name, line, required=False)
    check_date(body.get("service_date"), "service_date", line)
    check_decimal(body.get("quantity"), "quantity", line)
    check_decimal(body.get("amount"), "amount", line, places=2)
    return body


def submit_charge(conn: sqlite3.Connection, key: str, charge: dict[str, Any]) -> tuple[str, int, dict[str, Any]]:
    """Accept, replay or refuse one charge; returns (outcome, HTTP status, body).

    Runs inside the store's transaction so two concurrent retries of one key cannot both post.
    """
    fp = fingerprint(charge)
    seen = IdempotencyLedger.find(conn, SCOPE, key)
    if seen is not None:
        if seen.fingerprint != fp:
            return "conflict", 409, error_body(
                "IDEMPOTENCY_CONFLICT", f"Idempotency-Key {key!r} was used with a different charge"
            )
        return "replayed", 200, seen.response
    charge_id = IdempotencyLedger.next_document_id(conn, "CH")
    CHARGES.insert(conn, {**charge, "charge_id": charge_id, "status": "accepted", "idempotency_key": key})
    response = {"charge_id": charge_id, "status": "accepted", "idempotency_key": key}
    IdempotencyLedger.remember(conn, SCOPE, key, fp, 201, response)
    return "accepted", 201, response


def create_app(db_path: Path, faults: FaultRegistry | None = None) -> FastAPI:
    """The billing peer as a FastAPI app over ``db_path`` (the store is ``app.state.store``)."""
    faults = faults or FaultRegistry()
    store = SqliteStore(db_path, SCHEMA)
    app = make_app("carefabric sandbox: billing", faults)
    app.state.store = store
    app.state.faults = faults
    api = APIRouter(prefix=API_PREFIX, dependencies=api_dependencies(BILLING_TOKEN))

    @api.post("/charges")
    async def post_charge(request: Request) -> JSONResponse:
        key = (request.headers.get("idempotency-key") or "").strip()
        if not key:
            raise ApiError(400, "IDEMPOTENCY_KEY_REQUIRED", "the Idempotency-Key header is required")
        charge = validate_charge(await read_object(request))
        with store.transaction() as conn:
            outcome, status, body = submit_charge(conn, key, charge)
        return json_response(body, status, replay=outcome == "replayed")

    @api.post("/charges:batch")
    async def post_charges_batch(request: Request) -> dict[str, Any]:
        body = await read_object(request)
        charges = body.get("charges")
        if not isinstance(charges, list) or not charges:
            raise invalid("charges must be a non-empty list")
        prepared: list[tuple[str, dict[str, Any]]] = []
        for index, item in enumerate(charges):
            if not isinstance(item, dict):
                raise invalid("each charge must be a JSON object", index)
            item = dict(item)
            key = item.pop("idempotency_key", None)
            if not isinstance(key, str) or not key.strip():
                raise invalid("idempotency_key is required on every charge", index)
            prepared.append((key.strip(), validate_charge(item, index)))
        results = []
        with store.transaction() as conn:  # all or nothing: a half-posted batch helps nobody
            for key, charge in prepared:
                outcome, _status, answer = submit_charge(conn, key, charge)
                results.append({
                    "idempotency_key": key,
                    "charge_id": answer.get("charge_id"),
                    "status": outcome,
                })
        return {"results": results}

    @api.get("/charges")
    def list_charges(request: Request) -> dict[str, Any]:
        return list_page(store, CHARGES, request.query_params)

    @api.get("/claims")
    def list_claims(request: Request) -> dict[str, Any]:
        return list_page(store, CLAIMS, request.query_params)

    def _claim(claim_id: str) -> dict[str, Any]:
        with store.read() as conn:
            claim = CLAIMS.get(conn, claim_id)
        if claim is None:
            raise ApiError(404, "NOT_FOUND", f"no claim {claim_id!r}")
        return claim

    @api.get("/claims/{claim_id}")
    def get_claim(claim_id: str) -> dict[str, Any]:
        return _claim(claim_id)

    @api.get("/claims/{claim_id}/status")
    def get_claim_status(claim_id: str) -> dict[str, Any]:
        claim = _claim(claim_id)
        status_date = claim.get("status_date") or (claim.get("updated_at") or "")[:10] or claim.get(
            "submitted_date"
        )
        return {"claim_id": claim["claim_id"], "status": claim.get("status"), "status_date": status_date}

    @api.get("/payments")
    def list_payments(request: Request) -> dict[str, Any]:
        return list_page(store, PAYMENTS, request.query_params)

    @api.get("/patient-balances")
    def list_balances(request: Request) -> dict[str, Any]:
        return list_page(store, PATIENT_BALANCES, request.query_params)

    app.include_router(api)

    @app.post(f"{ADMIN_PREFIX}/load")
    async def load(request: Request) -> dict[str, Any]:
        """Replace the seeded sections present in the body (charges posted so far are kept)."""
        body = await read_object(request)
        loaded: dict[str, int] = {}
        with store.transaction() as conn:
            for name, table in SEED_TABLES.items():
                if name in body:
                    loaded[name] = table.replace_all(conn, body[name])
        return {"loaded": loaded, "ignored": sorted(set(body) - set(SEED_TABLES))}

    @app.post(f"{ADMIN_PREFIX}/reset")
    def reset() -> dict[str, Any]:
        with store.transaction() as conn:
            for table in ALL_TABLES:
                conn.execute(f"DELETE FROM {table.name}")
            IdempotencyLedger.clear(conn)
        faults.clear()
        return {"reset": True, "at": utc_now()}

    @app.get(f"{ADMIN_PREFIX}/state")
    def state() -> dict[str, Any]:
        return {
            "peer": "billing",
            "counts": {t.name: t.count(store) for t in ALL_TABLES},
            "faults_pending": faults.pending(),
        }

    return app
