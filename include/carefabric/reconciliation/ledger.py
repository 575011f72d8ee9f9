"""The ledger checks: what carefabric posted against what the ERP's own ledger holds.

The other checks compare systems of record with each other; these two read the ERP back
through its API and compare it with carefabric's outbox, so an edit made in the ERP after
posting, a manual journal, a deleted line, a doubled adjustment or a document that never
posted is an item that names the document:

- ``ledger``: net amount per (date, account, cost center, facility, location): every line
  carefabric meant to post (its documents of the date, posted or not, so money stuck in a
  rejected document shows as missing in the GL) against every line the ERP holds for the date,
  whoever posted it. The grain finance posts at: a wrong account in the right cost center, or
  two errors that offset within a cost center, each stay visible.
- ``integrity``: per document: carefabric's posted documents against the ERP's documents of the
  date, by external id and content (lines, receipt trace/payer/facility/amount). A document
  changed, deleted, duplicated or added in the ERP is an item naming its ERP document id.

Pure: frames in, item frames out, the same item columns as the engine's checks.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

import pandas as pd

from carefabric.money import to_cents
from carefabric.reconciliation.engine import Side, compare

CAREFABRIC_LEDGER = Side("carefabric", "carefabric's postings", "missing_in_carefabric")
ERP_LEDGER = Side("gl", "the ERP ledger", "missing_in_gl")
LEDGER_KEYS = ["business_date", "account", "cost_center", "facility", "location"]
LINE_COLUMNS = ["business_date", "source", "document_id", "external_id", *LEDGER_KEYS[1:], "amount_cents"]
DOCUMENT_COLUMNS = ["kind", "business_date", "external_id", "document_id", "source", "fingerprint", "total_cents"]


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def erp_lines_frame(journals: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """ERP ``GET /journal-batches`` items (with lines) as signed lines, debit positive."""
    rows = [
        (
            _text(j.get("journal_date")), _text(j.get("source")), _text(j.get("document_id")), _text(j.get("external_id")),
            _text(ln.get("account")), _text(ln.get("cost_center")), _text(ln.get("facility")), _text(ln.get("location")),
            to_cents(Decimal(str(ln.get("debit") or "0"))) - to_cents(Decimal(str(ln.get("credit") or "0"))),
        )
        for j in journals
        for ln in j.get("lines") or []
    ]
    return _lines(rows)


def stored_lines_frame(rows: Iterable[tuple[Any, ...]]) -> pd.DataFrame:
    """carefabric's own journal lines: (business_date, source, document_id, external_id, account,
    cost_center, facility, location, debit_cents, credit_cents) tuples from the outbox."""
    out = [
        (_text(d), _text(src), _text(doc), _text(ext), _text(acc), _text(cc), _text(fac), _text(loc), int(dr) - int(cr))
        for d, src, doc, ext, acc, cc, fac, loc, dr, cr in rows
    ]
    return _lines(out)


def _lines(rows: list[tuple[Any, ...]]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(rows, columns=LINE_COLUMNS)
    frame["amount_cents"] = frame["amount_cents"].astype("int64")
    frame["business_date"] = [as_date(d) for d in frame["business_date"]]
    return frame


def reconcile_ledger(expected: pd.DataFrame, actual: pd.DataFrame) -> pd.DataFrame:
    """Net per (date, account, cost center, facility, location): carefabric vs the ERP ledger."""
    return compare("ledger", [(CAREFABRIC_LEDGER, expected), (ERP_LEDGER, actual)], LEDGER_KEYS)


# --------------------------------------------------------------------------- documents


def _fingerprint(rows: Iterable[tuple[Any, ...]]) -> str:
    payload = json.dumps(sorted(rows), separators=(",", ":"), default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _journal_rows(lines: Iterable[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        (_text(ln.get("account")), _text(ln.get("cost_center")), _text(ln.get("facility")), _text(ln.get("location")),
         int(ln["debit_cents"]) if "debit_cents" in ln else to_cents(Decimal(str(ln.get("debit") or "0"))),
         int(ln["credit_cents"]) if "credit_cents" in ln else to_cents(Decimal(str(ln.get("credit") or "0"))))
        for ln in lines
    ]


def _movement_rows(lines: Iterable[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        (_text(ln.get("location")), _text(ln.get("item")), format(Decimal(str(ln.get("quantity"))).normalize(), "f"),
         to_cents(Decimal(str(ln.get("unit_cost") or "0"))), _text(ln.get("cost_center")))
        for ln in lines
    ]


def _receipt_rows(receipt: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    amount = receipt["amount_cents"] if "amount_cents" in receipt else to_cents(Decimal(str(receipt.get("amount") or "0")))
    return [(_text(receipt.get("trace_number")), _text(receipt.get("payer_id")), _text(receipt.get("facility")), int(amount))]


def document(kind: str, business_date: Any, external_id: str, document_id: str, source: str,
             body: Mapping[str, Any]) -> tuple[Any, ...]:
    """One document's identity and content fingerprint, from the ERP's item or our payload.

    ``body`` is a journal (``lines`` with debit/credit), a movement (``lines`` with quantity and
    unit cost) or a receipt (trace, payer, facility, amount). The fingerprint leaves out what an
    ERP may legitimately add (its document id, timestamps, memo), so only a change of money,
    account, cost center, facility, location, item, quantity, payer or trace shows.
    """
    if kind == "journal":
        rows = _journal_rows(body.get("lines") or [])
        total = sum(max(r[4], 0) for r in rows)
    elif kind == "inventory":
        rows = _movement_rows(body.get("lines") or [])
        total = sum(abs(int(Decimal(r[2]) * r[3])) for r in rows)
    else:
        rows = _receipt_rows(body)
        total = rows[0][3]
    return (kind, _text(business_date), external_id, document_id, source, _fingerprint(rows), int(total))


def documents_frame(docs: Iterable[tuple[Any, ...]]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(list(docs), columns=DOCUMENT_COLUMNS)
    frame["total_cents"] = frame["total_cents"].astype("int64")
    frame["business_date"] = [as_date(d) for d in frame["business_date"]]
    return frame


def erp_documents(journals: Iterable[Mapping[str, Any]], movements: Iterable[Mapping[str, Any]],
                  receipts: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """The ERP's documents of a date (its API items) with their content fingerprints."""
    docs = [document("journal", j.get("journal_date"), _text(j.get("external_id")), _text(j.get("document_id")),
                     _text(j.get("source")), j) for j in journals]
    docs += [document("inventory", m.get("movement_date"), _text(m.get("external_id")), _text(m.get("document_id")),
                      "INVENTORY", m) for m in movements]
    docs += [document("cash", r.get("receipt_date"), _text(r.get("external_id")), _text(r.get("document_id")),
                      "CASH", r) for r in receipts]
    return documents_frame(docs)


def reconcile_integrity(ours: pd.DataFrame, erp: pd.DataFrame) -> pd.DataFrame:
    """Per document: carefabric's posted documents vs the ERP's documents of the same dates."""
    items: list[dict[str, Any]] = []
    theirs: dict[str, pd.DataFrame] = {str(ext): group for ext, group in erp.groupby("external_id", sort=False)}
    for row in ours.itertuples(index=False):
        found = theirs.pop(str(row.external_id), None)
        base = {"check": "integrity", "business_date": row.business_date, "carefabric_cents": row.total_cents}
        if found is None:
            items.append({**base, "key": f"{row.kind}|{row.external_id}", "status": "missing_in_gl", "gl_cents": None,
                          "variance_cents": row.total_cents,
                          "reason": f"{row.source} {row.external_id} (ERP {row.document_id}) is no longer in the ERP: "
                                    "deleted or reversed after carefabric posted it"})
            continue
        first_id, first_fingerprint = str(found["document_id"].to_numpy()[0]), str(found["fingerprint"].to_numpy()[0])
        first_total = int(found["total_cents"].to_numpy()[0])
        key = f"{row.kind}|{row.external_id}|{first_id}"
        if len(found) > 1:
            items.append({**base, "key": key, "status": "duplicate", "gl_cents": int(found["total_cents"].sum()),
                          "variance_cents": int(found["total_cents"].iloc[1:].sum()),
                          "reason": f"the ERP holds {row.source} {row.external_id} {len(found)} times: "
                                    f"{', '.join(found['document_id'])}"})
        elif first_fingerprint != row.fingerprint:
            items.append({**base, "key": key, "status": "changed_in_erp", "gl_cents": first_total,
                          "variance_cents": abs(first_total - int(str(row.total_cents))) or 1,
                          "reason": f"ERP {first_id} ({row.source} {row.external_id}) was changed in the ERP "
                                    "after carefabric posted it: its lines differ from what was sent"})
        else:
            items.append({**base, "key": key, "status": "matched", "gl_cents": first_total,
                          "variance_cents": 0, "reason": "the ERP holds the document as posted"})
    for ext, group in theirs.items():
        for doc in group.to_dict("records"):
            items.append({"check": "integrity", "business_date": doc["business_date"], "carefabric_cents": None,
                          "key": f"{doc['kind']}|{ext or '-'}|{doc['document_id']}", "status": "added_in_erp",
                          "gl_cents": int(doc["total_cents"]), "variance_cents": int(doc["total_cents"]),
                          "reason": f"ERP {doc['document_id']} ({doc['source'] or doc['kind']}) for this date was not "
                                    "posted by carefabric: a manual entry in the ERP"})
    columns = ["check", "key", "business_date", "status", "carefabric_cents", "gl_cents", "variance_cents", "reason"]
    return pd.DataFrame(items, columns=columns)


def as_date(value: Any) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value)[:10])
