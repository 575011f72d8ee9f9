"""The ERP sandbox's ledger reads and the hands-on tools a fault test needs.

- ``GET /api/v1/account-balances?through=&account=``: the trial balance (net debit per account and
  facility through a date), what the nightly AR roll-forward opens and closes from;
- ``POST /_sandbox/ledger-edit``: what a person with ERP access does after carefabric posted
  (change or delete a journal line, change a cash receipt, post a manual journal);
- ``POST /_sandbox/settings``: peer behaviour switches (``{"deduplicate": false}``).

Kept apart from ``erp_api`` so the posting contract reads on its own.
"""

from __future__ import annotations

import json
import sqlite3
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, FastAPI, Request

from carefabric.money import format_cents, to_cents
from sandbox.http_common import ADMIN_PREFIX, ApiError, SqliteStore, check_date, invalid, read_object

LINE_EDITABLE = ("account", "cost_center", "location", "facility", "debit", "credit")
RECEIPT_EDITABLE = ("payer_id", "amount", "facility", "trace_number")


def edit_ledger(conn: sqlite3.Connection, body: dict[str, Any]) -> dict[str, Any]:
    """What a person with ERP access does after carefabric posted: change a journal line, delete
    one, change a cash receipt, or post a manual journal. No validation, as a direct edit has
    none; the nightly close must find each change (``POST /_sandbox/ledger-edit``)."""
    action = body.get("action")
    if action == "update_line":
        changes = {k: v for k, v in (body.get("set") or {}).items() if k in LINE_EDITABLE}
        for money in ("debit", "credit"):
            if money in changes:
                changes[money] = format_cents(to_cents(Decimal(str(changes[money]))))
                changes[f"{money}_cents"] = to_cents(Decimal(changes[money]))
        if not changes:
            raise invalid(f"set one of {list(LINE_EDITABLE)}")
        cur = conn.execute(
            f"UPDATE journal_lines SET {', '.join(f'{k} = ?' for k in changes)} WHERE document_id = ? AND line_no = ?",
            [*changes.values(), body.get("document_id"), body.get("line_no")],
        )
    elif action == "delete_line":
        cur = conn.execute("DELETE FROM journal_lines WHERE document_id = ? AND line_no = ?",
                           (body.get("document_id"), body.get("line_no")))
    elif action == "update_receipt":
        changes = {k: str(v) for k, v in (body.get("set") or {}).items() if k in RECEIPT_EDITABLE}
        if not changes:
            raise invalid(f"set one of {list(RECEIPT_EDITABLE)}")
        cur = conn.execute(
            f"UPDATE cash_receipts SET {', '.join(f'{k} = ?' for k in changes)} WHERE document_id = ?",
            [*changes.values(), body.get("document_id")],
        )
    elif action == "add_journal":
        from sandbox.erp_api import post_journal  # the ERP's own validation, as for any journal

        answer = post_journal(conn, dict(body.get("journal") or {}))
        return {"edited": 1, "document": json.loads(bytes(answer.body))}
    else:
        raise invalid("action must be update_line, delete_line, update_receipt or add_journal")
    if cur.rowcount != 1:
        raise ApiError(404, "NOT_FOUND", "no such document or line")
    return {"edited": cur.rowcount}


def add_ledger_routes(app: FastAPI, api: APIRouter, store: SqliteStore) -> None:
    """Register the trial balance on the API router and the ledger tools on the admin paths."""
    from sandbox.erp_api import SETTINGS_DEFAULTS, settings

    @api.get("/account-balances")
    def account_balances(request: Request) -> dict[str, Any]:
        """Trial balance: net debit per (account, facility) of every line dated on or before
        ``through`` (what finance reads as opening and closing balances)."""
        through = check_date(request.query_params.get("through"), "through")
        accounts = request.query_params.getlist("account")
        where = "b.journal_date <= ?" + (f" AND l.account IN ({', '.join('?' * len(accounts))})" if accounts else "")
        with store.read() as conn:
            rows = conn.execute(
                "SELECT l.account, COALESCE(l.facility, '') AS facility,"
                " SUM(l.debit_cents) - SUM(l.credit_cents) AS net FROM journal_lines l"
                f" JOIN journal_batches b ON b.document_id = l.document_id WHERE {where}"
                " GROUP BY l.account, COALESCE(l.facility, '') ORDER BY l.account, facility",
                [through, *accounts],
            ).fetchall()
        return {"through": through, "data": [
            {"account": r["account"], "facility": r["facility"] or None, "balance": format_cents(int(r["net"]))}
            for r in rows]}

    @app.post(f"{ADMIN_PREFIX}/ledger-edit")
    async def ledger_edit(request: Request) -> dict[str, Any]:
        body = await read_object(request)
        with store.transaction() as conn:
            return edit_ledger(conn, body)

    @app.post(f"{ADMIN_PREFIX}/settings")
    async def change_settings(request: Request) -> dict[str, Any]:
        """Switch peer behaviour, e.g. ``{"deduplicate": false}`` for an ERP without idempotency."""
        body = await read_object(request)
        unknown = sorted(set(body) - set(SETTINGS_DEFAULTS))
        if unknown:
            raise invalid(f"unknown settings: {unknown}")
        if "deduplicate" in body and not isinstance(body["deduplicate"], bool):
            raise invalid("deduplicate must be true or false")
        with store.transaction() as conn:
            for name, value in body.items():
                conn.execute("INSERT OR REPLACE INTO sandbox_settings (name, value) VALUES (?, ?)", (name, json.dumps(value)))
            return {"settings": settings(conn)}
