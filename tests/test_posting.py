"""Posting policy (docs/CONTRACTS.md) on hand-built scenarios whose answers are computed by hand."""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
import re
from collections import defaultdict
from decimal import Decimal as D

import pandas as pd
import pytest

from carefabric.canonical import (
    Adjustment,
    Charge,
    InventoryMovementLine,
    JournalBatch,
    JournalLine,
    MappedCharge,
    MappedRemittance,
    ProviderAdjustment,
    RemitClaim,
    RemitServiceLine,
    Remittance,
)
from carefabric.posting import (
    CONTRIBUTION_COLUMNS,
    UnbalancedJournalError,
    assert_balanced,
    build_cash_receipts,
    build_charge_journal,
    build_inventory_movements,
    build_remit_journal,
    build_supply_journal,
    charge_posting,
    charges_frame,
    external_id,
    inventory_external_id,
    remit_posting,
    supply_posting,
)

DAY = dt.date(2025, 3, 14)
CO = "CF01"
ID_RE = re.compile(r"^CF-(CHARGES|SUPPLY|REMIT|INVENTORY|CASH)-CF01-20250314-[0-9a-f]{12}$")


def charge(
    n: int,
    amount: str,
    *,
    cc: str = "CC-F1-ED",
    account: str = "4000",
    ttype: str = "CG",
    qty: str = "1",
    facility: str = "F1",
    item: str | None = None,
    unit_cost: str | None = None,
    control: str = "MSG1",
) -> MappedCharge:
    c = Charge(
        source=f"EHR|{facility}",
        facility=facility,
        encounter_id="V100",
        message_control_id=control,
        line_number=n,
        transaction_id=f"T{n}",
        transaction_date=DAY,
        transaction_type=ttype,
        cdm_code="CDM1001",
        quantity=D(qty),
        extended_amount=D(amount),
        unit_amount=None,
        department=cc.rsplit("-", 1)[-1],
        patient_token="tok_0123456789abcdef",
    )
    return MappedCharge(
        charge=c,
        company=CO,
        cost_center=cc,
        revenue_account=account,
        erp_item=item,
        item_unit_cost=D(unit_cost) if unit_cost else None,
        location=f"INV-{facility}" if item else None,
    )


def line(account, debit=0, credit=0, *, cc=None, loc=None, fac="F1", memo="") -> JournalLine:
    return JournalLine(account, cc, loc, fac, debit, credit, memo)


def net_by_key(batch: JournalBatch) -> dict[tuple, int]:
    out: dict[tuple, int] = defaultdict(int)
    for ln in batch.lines:
        out[(ln.account, ln.cost_center, ln.location, ln.facility)] += ln.debit_cents - ln.credit_cents
    return {k: v for k, v in out.items() if v}


# --------------------------------------------------------------------------- CHARGES


def charge_scenario() -> list[MappedCharge]:
    return [
        charge(1, "100.00"),  # ED 100
        charge(2, "50.00", cc="CC-F1-LAB", account="4010"),  # LAB 50
        charge(3, "30.00", ttype="CD"),  # ED credit written positive: -30
        charge(
            4, "-25.00", cc="CC-F1-LAB", account="4010", ttype="CD", qty="-1"
        ),  # LAB credit written negative
        charge(5, "20.00", cc="CC-F1-RAD", account="4020"),  # RAD +20 ...
        charge(6, "-20.00", cc="CC-F1-RAD", account="4020", qty="-1"),  # ... reversed: nets to 0, omitted
        charge(7, "99.00", ttype="PY"),  # a payment line: billing's business, not a charge
        charge(8, "12.34", cc="CC-F2-ED", facility="F2"),  # other facility
    ]


def test_charge_summary_lines_are_exact():
    batch = build_charge_journal(charge_scenario(), business_date=DAY, company=CO)
    assert batch is not None
    assert batch.source == "CHARGES" and batch.company == CO and batch.journal_date == DAY
    # F1: AR 100 + 50 - 30 - 25 + 20 - 20 = 95.00; ED 70, LAB 25, RAD 0 (omitted). F2: 12.34.
    assert batch.lines == [
        line("1200", 9500),
        line("1200", 1234, fac="F2"),
        line("4000", credit=7000, cc="CC-F1-ED"),
        line("4000", credit=1234, cc="CC-F2-ED", fac="F2"),
        line("4010", credit=2500, cc="CC-F1-LAB"),
    ]
    assert batch.total_debit_cents == batch.total_credit_cents == 10734
    assert ID_RE.match(batch.external_id)


def test_summary_credit_line_when_net_negative():
    batch = build_charge_journal(
        [charge(1, "10.00"), charge(2, "40.00", ttype="CD")], business_date=DAY, company=CO
    )
    assert batch.lines == [line("1200", credit=3000), line("4000", 3000, cc="CC-F1-ED")]


def test_charge_detail_one_line_per_side_with_line_key_memo():
    batch = build_charge_journal(charge_scenario()[:3], business_date=DAY, company=CO, mode="detail")
    assert batch.lines == [
        line("1200", 10000, memo="EHR|F1|MSG1|1"),
        line("4000", credit=10000, cc="CC-F1-ED", memo="EHR|F1|MSG1|1"),
        line("1200", 5000, memo="EHR|F1|MSG1|2"),
        line("4010", credit=5000, cc="CC-F1-LAB", memo="EHR|F1|MSG1|2"),
        line("1200", credit=3000, memo="EHR|F1|MSG1|3"),
        line("4000", 3000, cc="CC-F1-ED", memo="EHR|F1|MSG1|3"),
    ]


def test_detail_and_summary_agree_per_account():
    charges = charge_scenario()
    summary = build_charge_journal(charges, business_date=DAY, company=CO)
    detail = build_charge_journal(charges, business_date=DAY, company=CO, mode="detail")
    assert net_by_key(summary) == net_by_key(detail)
    assert detail.external_id != summary.external_id


def test_no_charges_no_journal_and_empty_contributions():
    assert build_charge_journal([], business_date=DAY, company=CO) is None
    posting = charge_posting(
        [charge(1, "5.00"), charge(2, "5.00", ttype="CD")], business_date=DAY, company=CO
    )
    assert posting.journal is None  # nets to nothing
    assert len(posting.contributions) == 4  # but the lines still contributed


def test_charge_contributions_decompose_the_journal():
    posting = charge_posting(charge_scenario(), business_date=DAY, company=CO)
    contrib = posting.contributions
    assert list(contrib.columns) == CONTRIBUTION_COLUMNS
    assert set(contrib["record_type"]) == {"charge"}
    assert contrib["external_id"].unique().tolist() == [posting.journal.external_id]
    first = contrib[contrib["record_key"] == "EHR|F1|MSG1|3"]
    assert sorted(zip(first["account"], first["amount_cents"], strict=True)) == [
        ("1200", -3000),
        ("4000", 3000),
    ]
    grouped = (
        contrib.fillna({"cost_center": "", "location": ""})
        .groupby(["account", "cost_center", "location", "facility"])["amount_cents"]
        .sum()
    )
    assert {
        (a, cc or None, loc or None, f): int(v) for (a, cc, loc, f), v in grouped.items() if v
    } == net_by_key(posting.journal)


def test_frame_input_equals_record_input():
    charges = charge_scenario()
    frame = charges_frame(charges)
    assert frame["amount_cents"].tolist() == [10000, 5000, -3000, -2500, 2000, -2000, 9900, 1234]
    assert build_charge_journal(frame, business_date=DAY, company=CO) == build_charge_journal(
        charges, business_date=DAY, company=CO
    )


def test_wrong_company_and_bad_mode_raise():
    with pytest.raises(ValueError, match="company"):
        build_charge_journal([charge(1, "1.00")], business_date=DAY, company="CF02")
    with pytest.raises(ValueError, match="mode"):
        build_charge_journal([charge(1, "1.00")], business_date=DAY, company=CO, mode="sumary")


def test_no_phi_in_lines_or_contributions():
    posting = charge_posting(charge_scenario(), business_date=DAY, company=CO, mode="detail")
    text = repr(posting.journal) + posting.contributions.to_csv()
    assert "tok_0123456789abcdef" not in text and "V100" not in text


# --------------------------------------------------------------------------- SUPPLY and INVENTORY


def supply_scenario() -> list[MappedCharge]:
    return [
        charge(1, "45.00", cc="CC-F1-SURG", account="4060", qty="3", item="ITM-0001", unit_cost="4.255"),
        charge(2, "15.00", cc="CC-F1-SURG", account="4060", qty="1", item="ITM-0001", unit_cost="4.255"),
        charge(3, "100.00"),  # not a supply
        charge(4, "9.00", cc="CC-F1-LAB", account="4060", qty="2", item="ITM-0002", unit_cost="1.10"),
        charge(
            5, "4.50", cc="CC-F1-LAB", account="4060", qty="1", item="ITM-0002", unit_cost="1.10", ttype="CD"
        ),
    ]


def test_supply_journal_rounds_per_line_then_summarizes():
    batch = build_supply_journal(supply_scenario(), business_date=DAY, company=CO)
    # SURG: 3 x 4.255 = 12.765 -> 12.77, 1 x 4.255 -> 4.26: 17.03 (not 4 x 4.255 = 17.02)
    # LAB: 2 x 1.10 = 2.20, credit returns 1 -> -1.10: 1.10
    assert batch.source == "SUPPLY"
    assert batch.lines == [
        line("1400", credit=1703 + 110, loc="INV-F1"),
        line("6500", 110, cc="CC-F1-LAB"),
        line("6500", 1703, cc="CC-F1-SURG"),
    ]
    assert_balanced(batch)
    assert ID_RE.match(batch.external_id)


def test_supply_line_also_posts_its_charge():
    batch = build_charge_journal(supply_scenario()[:1], business_date=DAY, company=CO)
    assert batch.lines == [line("1200", 4500), line("4060", credit=4500, cc="CC-F1-SURG")]


def test_supply_contributions_carry_line_keys():
    contrib = supply_posting(supply_scenario(), business_date=DAY, company=CO).contributions
    row = contrib[(contrib["record_key"] == "EHR|F1|MSG1|1") & (contrib["account"] == "6500")]
    assert row["amount_cents"].tolist() == [1277]
    assert row["component"].tolist() == ["supply_expense"]


def test_inventory_movements_consumption_is_negative():
    lines = build_inventory_movements(supply_scenario(), company=CO)
    assert lines == [
        InventoryMovementLine("INV-F1", "ITM-0001", D("-4"), D("4.255"), "CC-F1-SURG"),
        InventoryMovementLine("INV-F1", "ITM-0002", D("-1"), D("1.10"), "CC-F1-LAB"),
    ]
    assert str(lines[0].quantity) == "-4"
    ext = inventory_external_id(CO, DAY, lines)
    assert ID_RE.match(ext) and ext.startswith("CF-INVENTORY-")
    assert inventory_external_id(CO, DAY, list(reversed(lines))) == ext


def test_supply_without_unit_cost_raises():
    bad = charge(1, "5.00", item="ITM-9", unit_cost=None)
    with pytest.raises(ValueError, match="unit cost"):
        charges_frame([bad])


def test_no_supply_no_journal():
    assert build_supply_journal([charge(1, "1.00")], business_date=DAY, company=CO) is None
    assert build_inventory_movements([charge(1, "1.00")]) == []


# --------------------------------------------------------------------------- REMIT and CASH


def adj(group: str, reason: str, amount: str) -> Adjustment:
    return Adjustment(group, reason, D(amount))


def remittance(
    trace: str,
    bpr: str,
    claims: list[RemitClaim],
    plbs=(),
    *,
    facility="F1",
    payer="PAYER-ACME",
    date=DAY,
    control="0001",
) -> MappedRemittance:
    r = Remittance(
        interchange_control=control,
        group_control="1",
        transaction_control="0001",
        version="005010X221A1",
        sender_id="ACME",
        payment_amount=D(bpr),
        credit_debit="C",
        payment_method="ACH",
        payment_date=date,
        trace_number=trace,
        trace_originator="1999999999",
        payer_name="ACME HEALTH",
        payer_id="99999",
        payee_name="GENERAL HOSPITAL",
        payee_npi="1234567893",
        claims=claims,
        provider_adjustments=list(plbs),
    )
    return MappedRemittance(r, CO, facility, payer, date)


def remit_scenario() -> list[MappedRemittance]:
    paid = RemitClaim(
        "CLM-A",
        "1",
        D("200.00"),
        D("120.00"),
        D("30.00"),
        "PCN-A",
        adjustments=[adj("CO", "45", "50.00")],
        lines=[RemitServiceLine("HC:99213", D("200.00"), D("150.00"), adjustments=[adj("PR", "2", "30.00")])],
        patient_name_phi="DOE^JANE",
        member_id_phi="MEM123456",
    )
    denied = RemitClaim(
        "CLM-B", "4", D("100.00"), D("0.00"), None, "PCN-B", adjustments=[adj("CO", "50", "100.00")]
    )
    reversal = RemitClaim(
        "CLM-C", "22", D("-80.00"), D("-60.00"), None, "PCN-C", adjustments=[adj("CO", "45", "-20.00")]
    )
    plbs = [
        ProviderAdjustment("1234567893", DAY, "L6", "CLM-A", D("-5.00")),  # interest paid to us
        ProviderAdjustment("1234567893", DAY, "WO", "CLM-X", D("10.00")),  # overpayment recovery
    ]
    # BPR02 = 120 + 0 - 60 - (-5 + 10) = 55.00
    r1 = remittance("TRC-1", "55.00", [paid, denied, reversal], plbs)
    r2 = remittance(
        "TRC-2",
        "40.00",
        [RemitClaim("CLM-D", "1", D("40.00"), D("40.00"), None, None)],
        facility="F2",
        payer="PAYER-BLUE",
        control="0002",
    )
    return [r1, r2]


def test_remit_summary_lines_are_exact():
    batch = build_remit_journal(remit_scenario(), business_date=DAY, company=CO)
    # F1: 1010 = 120 - 60 + 5 - 10 = 55 Dr; 1200 = -120 -50 -30 -100 +60 +20 +10 = -210 Cr;
    # 1210 = 30 Dr; 4900 = 50 - 20 = 30 Dr; 4910 = 100 Dr; 7100 = -5 -> 5 Cr.  F2: 40 / 40.
    assert batch.source == "REMIT"
    assert batch.lines == [
        line("1010", 5500),
        line("1010", 4000, fac="F2"),
        line("1200", credit=21000),
        line("1200", credit=4000, fac="F2"),
        line("1210", 3000),
        line("4900", 3000),
        line("4910", 10000),
        line("7100", credit=500),
    ]
    assert batch.total_debit_cents == batch.total_credit_cents == 25500
    assert all(ln.cost_center is None and ln.location is None for ln in batch.lines)
    assert ID_RE.match(batch.external_id)


def test_remit_detail_memos_are_claim_ids_and_plb():
    batch = build_remit_journal(remit_scenario()[:1], business_date=DAY, company=CO, mode="detail")
    memos = {ln.memo for ln in batch.lines}
    assert memos == {"CLM-A", "CLM-B", "CLM-C", "PLB L6 TRC-1", "PLB WO TRC-1"}
    assert net_by_key(batch) == net_by_key(
        build_remit_journal(remit_scenario()[:1], business_date=DAY, company=CO)
    )
    text = repr(batch)
    assert "DOE" not in text and "MEM123456" not in text


def test_remit_contributions_give_ar_relief_per_claim_and_cash_per_trace():
    contrib = remit_posting(remit_scenario(), business_date=DAY, company=CO).contributions
    relief = contrib[(contrib["record_type"] == "claim") & (contrib["component"] == "payment")]
    assert dict(zip(relief["record_key"], -relief["amount_cents"], strict=True)) == {
        "CLM-A": 12000,
        "CLM-C": -6000,
        "CLM-D": 4000,
    }
    cash = contrib[contrib["record_type"] == "trace"].groupby("record_key")["amount_cents"].sum()
    assert cash.to_dict() == {"TRC-1": 5500, "TRC-2": 4000}
    plb = contrib[contrib["record_type"] == "plb"]
    assert sorted(zip(plb["record_key"], plb["account"], plb["amount_cents"], strict=True)) == [
        ("TRC-1|L6|CLM-A", "7100", -500),
        ("TRC-1|WO|CLM-X", "1200", 1000),
    ]
    assert int(contrib["amount_cents"].sum()) == 0
    assert set(contrib.loc[contrib["claim_id"] == "CLM-D", "payer_id"]) == {"PAYER-BLUE"}
    assert "DOE" not in contrib.to_csv()


def test_unbalanced_remittance_is_refused():
    bad = remit_scenario()[0]
    bad.remittance.balance_errors.append("transaction: BPR02 != sum(CLP04) - sum(PLB)")
    with pytest.raises(ValueError, match="not balanced"):
        build_remit_journal([bad], business_date=DAY, company=CO)


def test_remit_of_another_date_is_refused():
    with pytest.raises(ValueError, match="business date"):
        build_remit_journal(remit_scenario(), business_date=DAY + dt.timedelta(days=1), company=CO)


def test_cash_receipts_one_per_trace():
    receipts = build_cash_receipts(remit_scenario())
    assert [(r.trace_number, r.amount_cents, r.payer_id, r.facility, r.receipt_date) for r in receipts] == [
        ("TRC-1", 5500, "PAYER-ACME", "F1", DAY),
        ("TRC-2", 4000, "PAYER-BLUE", "F2", DAY),
    ]
    assert all(ID_RE.match(r.external_id) and r.external_id.startswith("CF-CASH-") for r in receipts)
    assert receipts[0].external_id != receipts[1].external_id
    assert [r.external_id for r in build_cash_receipts(list(reversed(remit_scenario())))] == [
        r.external_id for r in receipts
    ]


# --------------------------------------------------------------------------- external ids and balance


def test_external_id_stable_under_reordering_and_sensitive_to_content():
    lines = [line("1200", 100), line("4000", credit=100, cc="CC-F1-ED")]
    a = external_id("journal", "CHARGES", CO, DAY, lines)
    assert ID_RE.match(a)
    assert external_id("journal", "CHARGES", CO, DAY, list(reversed(lines))) == a
    assert (
        external_id(
            "journal", "CHARGES", CO, DAY, [line("1200", 101), line("4000", credit=101, cc="CC-F1-ED")]
        )
        != a
    )
    assert (
        external_id("journal", "CHARGES", CO, DAY, [lines[0], dataclasses.replace(lines[1], cost_center="X")])
        != a
    )
    assert external_id("journal", "REMIT", CO, DAY, lines).startswith("CF-REMIT-CF01-20250314-")
    assert external_id("journal", "REMIT", CO, DAY, lines)[-12:] == a[-12:]  # content hash only
    with pytest.raises(ValueError):
        external_id("ledger", "CHARGES", CO, DAY, lines)


def test_batch_ids_stable_across_runs_and_input_order():
    charges = charge_scenario()
    first = build_charge_journal(charges, business_date=DAY, company=CO, mode="detail")
    shuffled = charges[:]
    random.Random(3).shuffle(shuffled)
    again = build_charge_journal(shuffled, business_date=DAY, company=CO, mode="detail")
    assert again.external_id == first.external_id
    assert sorted(again.lines, key=repr) == sorted(first.lines, key=repr)


def test_assert_balanced_rejects_unbalanced_and_two_sided_lines():
    ok = JournalBatch("X", CO, DAY, "CHARGES", [line("1200", 100), line("4000", credit=100)])
    assert_balanced(ok)
    with pytest.raises(UnbalancedJournalError, match="debits 100 != credits 99"):
        assert_balanced(JournalBatch("X", CO, DAY, "CHARGES", [line("1200", 100), line("4000", credit=99)]))
    with pytest.raises(UnbalancedJournalError, match="exactly one"):
        assert_balanced(JournalBatch("X", CO, DAY, "CHARGES", [line("1200", 100, 100)]))


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_random_charges_always_balance(seed: int):
    rng = random.Random(seed)
    charges = []
    for n in range(rng.randint(1, 400)):
        supply = rng.random() < 0.3
        fac = rng.choice(["F1", "F2", "F3"])
        dept = rng.choice(["ED", "LAB", "RAD", "PHARM", "SURG"])
        qty = rng.choice(["1", "2", "3", "-1", "0.5"])
        amount = f"{rng.randint(-50000, 500000) / 100:.2f}"
        charges.append(
            charge(
                n + 1,
                amount,
                cc=f"CC-{fac}-{dept}",
                account=rng.choice(["4000", "4010", "4020", "4060"]),
                ttype=rng.choice(["CG", "CG", "CG", "CD", "PY"]),
                qty=qty,
                facility=fac,
                item=f"ITM-{rng.randint(1, 9)}" if supply else None,
                unit_cost=f"{rng.randint(1, 99999) / 1000:.3f}" if supply else None,
            )
        )
    for build in (build_charge_journal, build_supply_journal):
        summary = build(charges, business_date=DAY, company=CO)
        detail = build(charges, business_date=DAY, company=CO, mode="detail")
        if summary is None:
            continue
        assert_balanced(summary)
        assert_balanced(detail)
        assert summary.total_debit_cents == summary.total_credit_cents
        assert net_by_key(summary) == net_by_key(detail)
        assert all((ln.debit_cents > 0) != (ln.credit_cents > 0) for ln in summary.lines)
        revenue = [ln for ln in summary.lines if ln.account.startswith("40")]
        assert all(ln.cost_center for ln in revenue)
        assert all(ln.cost_center is None for ln in summary.lines if ln.account in ("1200", "1400"))
    postable = [c for c in charges if c.charge.transaction_type in ("CG", "CD")]
    frame = charges_frame(postable)
    batch = build_charge_journal(charges, business_date=DAY, company=CO)
    ar = sum(ln.debit_cents - ln.credit_cents for ln in batch.lines if ln.account == "1200") if batch else 0
    assert ar == int(frame["amount_cents"].sum())


def test_charges_frame_columns_are_integer_cents():
    frame = charges_frame(supply_scenario())
    assert frame["amount_cents"].dtype == "int64"
    assert frame["supply_cost_cents"].tolist() == [1277, 426, 0, 220, -110]
    assert frame["quantity_micros"].tolist() == [3_000_000, 1_000_000, 1_000_000, 2_000_000, -1_000_000]
    assert isinstance(frame, pd.DataFrame)


def test_empty_inputs():
    assert build_remit_journal([], business_date=DAY, company=CO) is None
    assert build_cash_receipts([]) == []
    assert build_supply_journal([], business_date=DAY, company=CO) is None
    assert len(remit_posting([], business_date=DAY, company=CO).contributions) == 0
    assert list(charges_frame([]).columns) == list(charges_frame(charge_scenario()).columns)
