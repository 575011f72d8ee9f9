"""Nightly reconciliation: each status from a constructed case, control totals, posting round trip."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from test_posting import DAY, charge, remit_scenario

from carefabric.posting import build_cash_receipts, charge_posting, charges_frame, remit_posting
from carefabric.reconciliation import (
    MATCHED_REASON,
    STATUSES,
    billing_charges_frame,
    billing_payments_frame,
    control_totals,
    ehr_charges_frame,
    gl_ar_relief_frame,
    gl_cash_frame,
    gl_charges_frame,
    journal_lines_frame,
    receipts_frame,
    reconcile_cash,
    reconcile_charges,
    reconcile_claims,
    remit_claims_frame,
    remit_traces_frame,
)

D1 = dt.date(2025, 3, 14)
D2 = dt.date(2025, 3, 15)


def frame(rows: list[tuple], columns: list[str]) -> pd.DataFrame:
    out = pd.DataFrame.from_records(rows, columns=columns)
    out["amount_cents"] = out["amount_cents"].astype("int64")
    return out


def by_key(items: pd.DataFrame, *keys: str) -> dict:
    return {
        tuple(row[k] for k in keys) if len(keys) > 1 else row[keys[0]]: row for _, row in items.iterrows()
    }


# --------------------------------------------------------------------------- charges


def charge_sides():
    ehr = frame(
        [
            (D1, "CC-A", 10000, "L-A1"),
            (D1, "CC-B", 5000, "L-B1"),
            (D1, "CC-D", 3000, "L-D1"),
            (D1, "CC-E", 4000, "L-E1"),
            (D1, "CC-F", 1000, "L-F1"),
            (D1, "CC-F", 1000, "L-F2"),
            (D1, "CC-G", 6000, "L-G1"),
        ],
        ["business_date", "cost_center", "amount_cents", "line_key"],
    )
    billing = frame(
        [
            (D1, "CC-A", 10000, "L-A1"),
            (D1, "CC-C", 2000, "L-C1"),
            (D1, "CC-D", 3000, "L-D1"),
            (D1, "CC-E", 4500, "L-E1"),
            (D1, "CC-F", 1000, "L-F1"),
            (D1, "CC-F", 1000, "L-F1"),  # accepted twice
            (D1, "CC-F", 1000, "L-F2"),
            (D2, "CC-G", 6000, "L-G1"),  # billing dated it the next day
        ],
        ["business_date", "cost_center", "amount_cents", "line_key"],
    )
    gl = frame(
        [
            (D1, None, "1200", 31000),  # AR: not revenue
            (D1, "CC-A", "4000", -10000),
            (D1, "CC-B", "4010", -5000),
            (D1, "CC-C", "4020", -2000),
            (D1, "CC-E", "4000", -4000),
            (D1, "CC-F", "4000", -2000),
            (D1, "CC-G", "4060", -6000),
            (D1, "CC-A", "6500", 999),  # supply expense: not revenue
            (D1, None, "4900", 777),  # contra-revenue: not gross revenue
        ],
        ["business_date", "cost_center", "account", "amount_cents"],
    )
    return ehr, billing, gl


def test_charge_statuses():
    items = reconcile_charges(*charge_sides())
    got = {(k[0], k[1]): row["status"] for k, row in by_key(items, "business_date", "cost_center").items()}
    assert got == {
        (D1, "CC-A"): "matched",
        (D1, "CC-B"): "missing_in_billing",
        (D1, "CC-C"): "missing_in_ehr",
        (D1, "CC-D"): "missing_in_gl",
        (D1, "CC-E"): "amount_mismatch",
        (D1, "CC-F"): "duplicate",
        (D1, "CC-G"): "timing",
        (D2, "CC-G"): "timing",
    }
    rows = by_key(items, "business_date", "cost_center")
    e = rows[(D1, "CC-E")]
    assert (e["ehr_cents"], e["billing_cents"], e["gl_cents"], e["variance_cents"]) == (4000, 4500, 4000, 500)
    assert "45.00" in e["reason"] and "40.00" in e["reason"]
    assert rows[(D1, "CC-A")]["reason"] == MATCHED_REASON
    assert rows[(D1, "CC-A")]["key"] == "2025-03-14|CC-A"
    assert items["key"].is_unique
    assert "billing (2 rows)" in rows[(D1, "CC-F")]["reason"]
    assert "2025-03-15" in rows[(D1, "CC-G")]["reason"]
    b = rows[(D1, "CC-B")]
    assert pd.isna(b["billing_cents"]) and b["billing_count"] == 0 and b["gl_cents"] == 5000
    assert b["reason"].startswith("not in billing")


def test_charge_tolerance_and_no_timing_without_window():
    items = reconcile_charges(*charge_sides(), tolerance_cents=500, timing_window_days=0)
    rows = by_key(items, "business_date", "cost_center")
    assert rows[(D1, "CC-E")]["status"] == "matched"
    assert rows[(D1, "CC-G")]["status"] == "missing_in_billing"
    assert rows[(D2, "CC-G")]["status"] == "missing_in_ehr"


def test_charges_round_trip_from_posting_is_matched():
    charges = [
        charge(1, "100.00"),
        charge(2, "50.00", cc="CC-F1-LAB", account="4010"),
        charge(3, "30.00", ttype="CD"),
    ]
    cf = charges_frame(charges)
    journal = charge_posting(cf, business_date=DAY, company="CF01").journal
    billing = billing_charges_frame(
        [
            {
                "line_key": "EHR|F1|MSG1|1",
                "cost_center": "CC-F1-ED",
                "amount": "100.00",
                "service_date": "2025-03-14",
            },
            {
                "line_key": "EHR|F1|MSG1|2",
                "cost_center": "CC-F1-LAB",
                "amount": "50.00",
                "service_date": "2025-03-14",
            },
            {
                "line_key": "EHR|F1|MSG1|3",
                "cost_center": "CC-F1-ED",
                "amount": "-30.00",
                "service_date": "2025-03-14",
            },
        ]
    )
    items = reconcile_charges(ehr_charges_frame(cf, DAY), billing, journal_lines_frame([journal]))
    assert set(items["status"]) == {"matched"}
    assert sorted(items["gl_cents"].tolist()) == [5000, 7000]


# --------------------------------------------------------------------------- claims

CLAIM_COLS = ["claim_id", "payer_id", "amount_cents", "business_date"]


def claim_sides():
    remit = frame(
        [
            ("C1", "P1", 10000, D1),
            ("C2", "P1", 5000, D1),
            ("C4", "P1", 8000, D1),
            ("C5", "P1", 9000, D1),
            ("C6", "P2", 10000, D1),
            ("C7", "P2", 4000, D1),
            ("C8", "P2", -10000, D1),  # reversal ...
            ("C8", "P2", 9000, D1),  # ... and the corrected payment: not a duplicate
            ("C10", "P1", 0, D1),  # denied, nothing paid: nothing to reconcile
        ],
        CLAIM_COLS,
    )
    billing = frame(
        [
            ("C1", "P1", 10000, D1),
            ("C3", "P1", 7000, D1),
            ("C4", "P1", 8000, D1),
            ("C5", "P1", 9000, D1),
            ("C5", "P1", 9000, D1),  # posted twice
            ("C6", "P2", 9500, D1),
            ("C7", "P2", 4000, D2),  # billing dated it the next day
            ("C8", "P2", -10000, D1),
            ("C8", "P2", 9000, D1),
            ("C9", "P1", 1234, D1 + dt.timedelta(days=10)),  # outside the window: not tonight's item
        ],
        CLAIM_COLS,
    )
    gl = frame(
        [
            ("C1", "P1", 10000, D1),
            ("C2", "P1", 5000, D1),
            ("C5", "P1", 9000, D1),
            ("C6", "P2", 10000, D1),
            ("C7", "P2", 4000, D1),
            ("C8", "P2", -10000, D1),
            ("C8", "P2", 9000, D1),
        ],
        CLAIM_COLS,
    )
    return remit, billing, gl


def test_claim_statuses():
    items = reconcile_claims(*claim_sides(), business_date=D1, timing_window_days=3)
    got = {k: row["status"] for k, row in by_key(items, "claim_id", "payer_id").items()}
    assert got == {
        ("C1", "P1"): "matched",
        ("C2", "P1"): "missing_in_billing",
        ("C3", "P1"): "missing_in_remit",
        ("C4", "P1"): "missing_in_gl",
        ("C5", "P1"): "duplicate",
        ("C6", "P2"): "amount_mismatch",
        ("C7", "P2"): "timing",
        ("C8", "P2"): "matched",
    }
    rows = by_key(items, "claim_id", "payer_id")
    assert rows[("C3", "P1")]["reason"] == "not in 835, GL; 835 none, billing 70.00, GL none"
    assert rows[("C5", "P1")]["billing_cents"] == 18000 and rows[("C5", "P1")]["variance_cents"] == 9000
    assert rows[("C6", "P2")]["variance_cents"] == 500
    assert rows[("C6", "P2")]["key"] == "C6|P2"
    assert pd.isna(rows[("C7", "P2")]["billing_cents"])
    assert "billing 40.00" in rows[("C7", "P2")]["reason"] and "3 days" in rows[("C7", "P2")]["reason"]
    assert rows[("C8", "P2")]["remit_cents"] == -1000


def test_claims_without_period_have_no_timing():
    items = reconcile_claims(*claim_sides())
    rows = by_key(items, "claim_id", "payer_id")
    assert rows[("C7", "P2")]["status"] == "matched"  # every row counts, dates are not compared
    assert rows[("C9", "P1")]["status"] == "missing_in_remit"


def test_claim_outside_window_is_missing_not_timing():
    remit, billing, gl = claim_sides()
    items = reconcile_claims(remit, billing, gl, business_date=D1, timing_window_days=0)
    assert by_key(items, "claim_id", "payer_id")[("C7", "P2")]["status"] == "missing_in_billing"


# --------------------------------------------------------------------------- cash


def test_cash_statuses_and_control_totals():
    cols = ["trace_number", "amount_cents", "business_date"]
    remit = frame(
        [("T1", 5500, D1), ("T2", 4000, D1), ("T3", 100, D1), ("T3", 100, D1), ("T5", 1100, D1)], cols
    )
    gl = frame([("T1", 5500, D1), ("T2", 4000, D1), ("T3", 100, D1), ("T4", 300, D1), ("T5", 1100, D1)], cols)
    receipts = frame([("T1", 5500, D1), ("T3", 100, D1), ("T4", 300, D1), ("T5", 1000, D1)], cols)
    items = reconcile_cash(remit, gl, receipts, business_date=D1)
    got = {k: row["status"] for k, row in by_key(items, "trace_number").items()}
    assert got == {
        "T1": "matched",
        "T2": "missing_in_gl",
        "T3": "duplicate",
        "T4": "missing_in_remit",
        "T5": "amount_mismatch",
    }
    assert by_key(items, "trace_number")["T2"]["reason"].startswith("not in ERP cash receipt")

    totals = control_totals(
        pd.concat([items, reconcile_claims(*claim_sides(), business_date=D1)], ignore_index=True)
    )
    assert totals["items_total"] == 13
    assert totals["unmatched_total"] == 4 + 6  # cash: all but T1; claims: all but C1, C8
    assert set(totals) == {"items_total", "unmatched_total", "variance_total_cents", "cash", "claims"}
    cash = totals["cash"]
    assert cash["items"] == 5 and cash["unmatched"] == 4
    assert cash["items_by_status"] == {
        "matched": 1,
        "missing_in_remit": 1,
        "missing_in_gl": 1,
        "amount_mismatch": 1,
        "duplicate": 1,
    }
    assert (cash["remit_cents"], cash["gl_cents"], cash["receipt_cents"]) == (
        5500 + 4000 + 200 + 1100,
        5500 + 4000 + 100 + 300 + 1100,
        5500 + 100 + 300 + 1000,
    )
    # T2: 4000 vs none; T3: 200 vs 100; T4: 300 vs none; T5: 1100 vs 1000
    assert cash["variance_cents"] == 4000 + 100 + 300 + 100
    claims = totals["claims"]
    assert claims["items_by_status"] == {
        "matched": 2,
        "missing_in_billing": 1,
        "missing_in_remit": 1,
        "missing_in_gl": 1,
        "amount_mismatch": 1,
        "duplicate": 1,
        "timing": 1,
    }
    assert set(claims["items_by_status"]) <= set(STATUSES)
    assert totals["variance_total_cents"] == cash["variance_cents"] + claims["variance_cents"]


def test_control_totals_of_nothing():
    empty = reconcile_cash(*(frame([], ["trace_number", "amount_cents"]) for _ in range(3)))
    assert len(empty) == 0
    totals = control_totals(empty)
    assert totals == {"items_total": 0, "unmatched_total": 0, "variance_total_cents": 0}


def test_missing_column_is_a_clear_error():
    with pytest.raises(KeyError, match="835 frame lacks"):
        reconcile_cash(
            frame([], ["amount_cents"]),
            frame([], ["trace_number", "amount_cents"]),
            frame([], ["trace_number", "amount_cents"]),
        )


# --------------------------------------------------------------------------- posting -> reconciliation


def test_remit_posting_round_trip_reconciles():
    remits = remit_scenario()
    posting = remit_posting(remits, business_date=DAY, company="CF01")
    payments = billing_payments_frame(
        [
            {
                "payment_id": "PM1",
                "claim_id": "CLM-A",
                "payer_id": "PAYER-ACME",
                "amount": "120.00",
                "paid_date": "2025-03-14",
            },
            {
                "payment_id": "PM2",
                "claim_id": "CLM-C",
                "payer_id": "PAYER-ACME",
                "amount": "-60.00",
                "paid_date": "2025-03-14",
            },
        ]
    )
    claims = reconcile_claims(
        remit_claims_frame(remits), payments, gl_ar_relief_frame(posting.contributions), business_date=DAY
    )
    got = {k: row["status"] for k, row in by_key(claims, "claim_id", "payer_id").items()}
    # CLM-B was denied (paid 0): nothing to reconcile. CLM-D was paid but never billed.
    assert got == {
        ("CLM-A", "PAYER-ACME"): "matched",
        ("CLM-C", "PAYER-ACME"): "matched",
        ("CLM-D", "PAYER-BLUE"): "missing_in_billing",
    }

    receipts = build_cash_receipts(remits)
    cash = reconcile_cash(
        remit_traces_frame(remits),
        gl_cash_frame(posting.contributions),
        receipts_frame(receipts),
        business_date=DAY,
    )
    assert set(cash["status"]) == {"matched"}
    assert dict(zip(cash["trace_number"], cash["gl_cents"], strict=True)) == {"TRC-1": 5500, "TRC-2": 4000}

    # the same REMIT content posted a second time under another document: duplicate cash
    twice = pd.concat([posting.contributions, posting.contributions.assign(external_id="CF-REMIT-OTHER")])
    cash2 = reconcile_cash(remit_traces_frame(remits), gl_cash_frame(twice), receipts_frame(receipts))
    assert set(cash2["status"]) == {"duplicate"}


def test_charges_gl_from_contributions_detects_a_line_posted_twice():
    cf = charges_frame([charge(1, "100.00"), charge(2, "50.00")])
    contrib = charge_posting(cf, business_date=DAY, company="CF01").contributions
    ehr = ehr_charges_frame(cf, DAY)
    billing = ehr.copy()
    items = reconcile_charges(ehr, billing, gl_charges_frame(contrib))
    assert items["status"].tolist() == ["matched"] and items["gl_cents"].tolist() == [15000]
    twice = pd.concat([contrib, contrib.assign(external_id="CF-CHARGES-OTHER")])
    items = reconcile_charges(ehr, billing, gl_charges_frame(twice))
    assert items["status"].tolist() == ["duplicate"]
    assert items["variance_cents"].tolist() == [15000]
    assert "GL (4 rows)" in items["reason"].iloc[0]
