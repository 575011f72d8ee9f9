"""The finance-grain checks from constructed sides: charge lines over a window (late charges are
timing), revenue per account x cost center x facility, remittance per account by CAS group / PLB
code, and the roll-forward's payer rows."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from carefabric.posting import policy
from carefabric.reconciliation import reconcile_charge_lines, reconcile_revenue, rollforward
from carefabric.reconciliation.remittance import reconcile_remittance

D = dt.date(2026, 11, 23)


def days(n: int) -> dt.date:
    return D + dt.timedelta(days=n)


def frame(rows: list[tuple], columns: list[str]) -> pd.DataFrame:
    out = pd.DataFrame.from_records(rows, columns=columns)
    out["amount_cents"] = out["amount_cents"].astype("int64")
    return out


def statuses(items: pd.DataFrame) -> dict[str, str]:
    return dict(zip(items["key"], items["status"], strict=True))


def test_a_late_charge_is_timing_and_a_line_billing_never_got_is_missing() -> None:
    cols = ["line_key", "business_date", "amount_cents"]
    ehr = frame([("L1", D, 1000), ("LATE", D, 2500), ("LOST", D, 700), ("OFF", D, 900), ("OLD", days(-1), 300)], cols)
    billing = frame([("L1", D, 1000), ("LATE", days(-4), 2500), ("OFF", D, 990), ("OLD", days(-1), 300),
                     ("EXTRA", D, 100)], cols)
    items = reconcile_charge_lines(ehr, billing, business_date=D, window_days=7)
    assert statuses(items) == {"L1": "matched", "LATE": "timing", "LOST": "missing_in_billing",
                               "OFF": "amount_mismatch", "EXTRA": "missing_in_ehr"}
    late = items.set_index("key").loc["LATE"]
    assert "within 7 days" in late["reason"] and "billing 25.00" in late["reason"]
    off = items.set_index("key").loc["OFF"]
    assert int(off["variance_cents"]) == 90 and int(off["ehr_cents"]) == 900 and int(off["billing_cents"]) == 990
    # beyond the window the late line is no longer explained: it is missing in billing
    narrow = reconcile_charge_lines(ehr, billing, business_date=D, window_days=2)
    assert statuses(narrow)["LATE"] == "missing_in_billing"


def test_revenue_keeps_a_wrong_account_in_the_right_cost_center_visible() -> None:
    ehr = frame([(D, "4000", "CC1", "F1", 10000), (D, "4010", "CC1", "F1", 5000)],
                ["business_date", "account", "cost_center", "facility", "amount_cents"])
    gl = frame([(D, "CHARGES", "4000", "CC1", "F1", -10000), (D, "CHARGES", "4020", "CC1", "F1", -5000),
                (D, "CHARGES", "1200", None, "F1", 15000)],
               ["business_date", "source", "account", "cost_center", "facility", "amount_cents"])
    items = reconcile_revenue(ehr, gl)
    assert statuses(items) == {f"{D}|4000|CC1|F1": "matched", f"{D}|4010|CC1|F1": "missing_in_gl",
                               f"{D}|4020|CC1|F1": "missing_in_ehr"}
    assert int(items["variance_cents"].sum()) == 10000


def test_a_charge_and_its_credit_on_one_key_are_no_item_as_the_summary_journal_has_no_line() -> None:
    ehr = frame([(D, "4020", "CC2", "F1", 4800), (D, "4020", "CC2", "F1", -4800), (D, "4000", "CC1", "F1", 100)],
                ["business_date", "account", "cost_center", "facility", "amount_cents"])
    gl = frame([(D, "CHARGES", "4000", "CC1", "F1", -100)], ["business_date", "source", "account", "cost_center",
                                                               "facility", "amount_cents"])
    assert statuses(reconcile_revenue(ehr, gl)) == {f"{D}|4000|CC1|F1": "matched"}


def remit_events(co_amount: int = 4500) -> pd.DataFrame:
    base = ("CF01", D, "F1", "PAYER-A", "TRN1")
    rows = [
        (*base, "C1", "1", policy.COMPONENT_PAYMENT, None, None, None, 10000, "1010", "1200"),
        (*base, "C1", "1", policy.COMPONENT_CONTRACTUAL, "CO", "45", None, co_amount, "4900", "1200"),
        (*base, "C1", "1", policy.COMPONENT_CONTRACTUAL, "OA", "23", None, 500, "4900", "1200"),
        (*base, "C1", "1", policy.COMPONENT_PATIENT_RESP, "PR", "2", None, 2000, "1210", "1200"),
        (*base, "C2", "4", policy.COMPONENT_DENIAL, "CO", "50", None, 3000, "4910", "1200"),
        (*base, None, None, policy.COMPONENT_PLB, None, "WO", "C9", 1200, "1200", "1010"),
    ]
    columns = ["company", "business_date", "facility", "payer_id", "trace_number", "claim_id", "claim_status",
               "component", "group", "reason", "reference", "amount_cents", "debit_account", "credit_account"]
    return frame(rows, columns)


def ledger_of(events: pd.DataFrame) -> pd.DataFrame:
    """A summary REMIT journal of the events, as the ERP would hold it."""
    debit = events.groupby(["facility", "debit_account"])["amount_cents"].sum()
    credit = events.groupby(["facility", "credit_account"])["amount_cents"].sum()
    net = debit.rename_axis(["facility", "account"]).sub(credit.rename_axis(["facility", "account"]), fill_value=0)
    out = net.reset_index().assign(business_date=D, source="REMIT")
    return out[out["amount_cents"] != 0].astype({"amount_cents": "int64"})


def test_remittance_ties_each_account_and_names_the_codes_behind_a_difference() -> None:
    events = remit_events()
    assert (reconcile_remittance(events, ledger_of(events))["status"] == "matched").all()

    doubled = ledger_of(remit_events(co_amount=9000))  # the GL holds the CO adjustment twice
    items = reconcile_remittance(events, doubled).set_index("key")
    wrong = items[items["status"] != "matched"]
    assert set(wrong.index) == {f"{D}|F1|4900", f"{D}|F1|1200"}
    co = wrong.loc[f"{D}|F1|4900"]
    assert (int(co["remit_cents"]), int(co["gl_cents"]), co["status"]) == (5000, 9500, "amount_mismatch")
    assert "CO 45.00" in co["reason"] and "OA 5.00" in co["reason"]
    assert "PLB WO 12.00" in wrong.loc[f"{D}|F1|1200", "reason"]
    # a denial write-off and patient responsibility tie on their own accounts
    assert items.loc[f"{D}|F1|4910", "status"] == "matched" and items.loc[f"{D}|F1|1210", "status"] == "matched"


def test_remittance_never_posted_is_missing_in_the_gl() -> None:
    events = remit_events()
    empty = pd.DataFrame(columns=["business_date", "source", "facility", "account", "amount_cents"])
    items = reconcile_remittance(events, empty.astype({"amount_cents": "int64"}))
    assert set(items["status"]) == {"missing_in_gl"}


def test_rollforward_lists_each_payers_activity_under_its_facility() -> None:
    events = remit_events()
    charges = frame([("F1", 30000)], ["facility", "amount_cents"])
    activity = rollforward.ar_activity(charges, events)
    table, items = rollforward.ar_rollforward({"F1": 50000}, activity, {"F1": 50000 + 30000 - 10000 - 5000 - 3000 + 1200})
    assert list(items["status"]) == ["matched"]
    payers = {p["payer_id"]: p for p in table[0]["payers"]}
    assert set(payers) == {"(charges)", "PAYER-A"}
    assert payers["PAYER-A"]["payment_cents"] == -10000 and payers["PAYER-A"]["contractual_cents"] == -5000
    assert payers["PAYER-A"]["plb_cents"] == 1200 and payers["(charges)"]["charges_cents"] == 30000
