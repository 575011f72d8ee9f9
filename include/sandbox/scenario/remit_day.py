"""One business date of 835 files: the regular payer x facility files, the first date's special
claims and faults, written to ``sftp/`` with billing's matching records and the truth's postings.

First date only (fixed places the demo's story relies on): a denied claim (CLP02 = 4) in the
ACME file of the second facility, a reversal (CLP02 = 22) of a payment billing recorded 21 days
earlier followed by the corrected claim in BLUE/F1, ``L6`` interest in MEDICARE/F1, a claim
billing never had in MEDICARE of the third facility, an unbalanced second BLUE file, an 835
from an unknown payer and a byte copy of ACME/F1 under another name.
"""

from __future__ import annotations

import datetime as dt
import shutil
from typing import Any

from carefabric.money import format_cents
from sandbox import x12_writer
from sandbox.reference import PAYERS, UNKNOWN_PAYER, fault_facility
from sandbox.scenario import remit
from sandbox.scenario.common import World, rng_for
from sandbox.scenario.remit import DayPlan, EarlierClaim, RemitBuilder, Terms
from sandbox.x12_writer import Plb, RemitClaim, RemitTransaction

REVERSAL_DAYS_AGO = 21


def build_day(world: World, builder: RemitBuilder, day_index: int, date: dt.date,
              earlier: list[EarlierClaim], paid_before: list[str]) -> list[RemitTransaction]:
    """The date's 835s (good ones posted by the truth, faults recorded); returns every payment
    announced that day (the bank deposits them all, rejected files included)."""
    first_day = day_index == 0
    per_file = remit.claim_count(world.day_counts[day_index], len(world.facilities))
    plan = DayPlan.draw(world.seed, date, world.codes, earlier)
    paid_earlier: set[int] = set()
    good: list[RemitTransaction] = []
    for payer in PAYERS:
        for fac in world.facilities:
            rng = rng_for(world.seed, "remit", date, payer.payer_id, fac.code)
            tx = builder.transaction(payer, fac, date, "ACH" if rng.random() < 0.8 else "CHK")
            _regular_claims(world, rng, tx, per_file, first_day, plan)
            if first_day and payer.payer_id == "PAYER-BLUE" and fac.code == "F1":
                _reversal(world, rng, tx, day_index)
            claim = remit.pay_earlier(rng, tx, plan, earlier, paid_earlier)
            if claim is not None:
                tx.claims.append(claim)
                world.feature("paid_from_earlier_day", {"claim_id": claim.claim_id, "file": tx.file_name,
                                                        "service_date": claim.statement_date.isoformat()})
            _interest(world, rng, tx, first_day)
            for plb in remit.add_plbs(rng, tx, plan, paid_before):
                world.feature("plb_recoupments", plb)
            while tx.balanced_payment_cents <= 0:  # deductibles and recoupments ate it: add a paying claim
                tx.claims.append(remit.adjudicate(rng, payer, fac, world.seq.next(), date - dt.timedelta(days=8),
                                                  Terms())[0])
            missing = None
            if first_day and payer.payer_id == "PAYER-MEDICARE" and fac.code == fault_facility(world.codes, 3):
                missing = _missing_in_billing(world, rng, tx)
            good.append(tx)
            _bill(world, tx, missing)
    bad = _faulty_files(world, builder, date) if first_day else []
    for tx in good:
        assert tx.payment_cents > 0, tx.file_name
        _write(world, tx)
        world.counts.claims_remitted += len(tx.claims)
        world.counts.remit_transactions += 1
        world.ledger.add_remittance(tx, erp_payer_id=tx.payer.payer_id, facility=tx.facility.code)
    for tx, kind in bad:
        _write(world, tx)
        world.counts.files["x12_835_rejected"] += 1
        _record_bad(world, tx, kind)
    if first_day:
        _duplicate(world, next(t for t in good if t.payer.payer_id == "PAYER-ACME" and t.facility.code == "F1"))
    paid_before += [c.claim_id for tx in good for c in tx.claims if c.status in ("1", "2") and c.paid_cents > 0]
    return good + [tx for tx, _ in bad]


def _regular_claims(world: World, rng: Any, tx: RemitTransaction, per_file: int, first_day: bool,
                    plan: DayPlan) -> None:
    payer, fac, date = tx.payer, tx.facility, tx.business_date
    key = (payer.payer_id, fac.code)
    special_denial = first_day and payer.payer_id == "PAYER-ACME" and fac.code == fault_facility(world.codes, 2)
    special_pr = first_day and fac.code == "F1" and payer.payer_id in ("PAYER-ACME", "PAYER-MEDICARE")
    for index in range(per_file):
        seq = world.seq.next()
        service_date = date - dt.timedelta(days=rng.randint(7, 45))
        style = "claim" if payer.payer_id == "PAYER-MEDICARE" and (index == 0 or rng.random() < 0.5) else "lines"
        # Random denials never touch the first two claims, so a file always pays something.
        deny = (special_denial and index == 0) or (index > 1 and rng.random() < 0.04)
        terms = Terms(style=style, deny=deny, force_pr=special_pr and index == 0,
                      withhold=not deny and key == plan.withhold and index == per_file - 1)
        claim, _ = remit.adjudicate(rng, payer, fac, seq, service_date, terms)
        tx.claims.append(claim)
        if deny:
            world.feature("denials", claim.claim_id)
        if terms.withhold:
            world.feature("withholds", {"claim_id": claim.claim_id, "file": tx.file_name})
    if key == plan.secondary:
        claim, _ = remit.adjudicate(rng, payer, fac, world.seq.next(), date - dt.timedelta(days=rng.randint(20, 40)),
                                    Terms(secondary=True))
        tx.claims.append(claim)
        world.feature("secondary_claims", {"claim_id": claim.claim_id, "file": tx.file_name})


def _reversal(world: World, rng: Any, tx: RemitTransaction, day_index: int) -> None:
    """A payment made 21 days ago is taken back and the claim paid again, corrected."""
    payer, fac, date = tx.payer, tx.facility, tx.business_date
    seq = world.seq.next()
    service_date = date - dt.timedelta(days=REVERSAL_DAYS_AGO + 10)
    lines_spec = remit.claim_lines(rng, seq)
    original, patient = remit.adjudicate(rng, payer, fac, seq, service_date,
                                         Terms(rate_bp=payer.allowed_bp, no_pr=True), lines_spec)
    corrected, _ = remit.adjudicate(rng, payer, fac, seq, service_date,
                                    Terms(rate_bp=payer.allowed_bp + 800, force_pr=True), lines_spec, patient)
    tx.claims += [remit.reverse(original), corrected]
    earlier = date - dt.timedelta(days=REVERSAL_DAYS_AGO)
    earlier_trace = f"EFT{payer.x12_id[-4:]}{earlier:%Y%m%d}{900000 + day_index:06d}"
    world.billing.add_payment(original.claim_id, payer.payer_id, original.paid_cents, earlier, earlier_trace,
                              f"{earlier.isoformat()}T06:00:00Z")
    world.features["reversal"] = {
        "claim_id": original.claim_id, "original_paid": format_cents(original.paid_cents),
        "original_paid_date": earlier.isoformat(), "original_trace_number": earlier_trace,
        "corrected_paid": format_cents(corrected.paid_cents), "file": tx.file_name,
    }


def _interest(world: World, rng: Any, tx: RemitTransaction, first_day: bool) -> None:
    if first_day and tx.payer.payer_id == "PAYER-MEDICARE" and tx.facility.code == "F1":
        tx.plbs.append(Plb("L6", -rng.randint(150, 4500)))
    elif rng.random() < 0.15:
        tx.plbs.append(Plb("L6", -rng.randint(50, 2500)))
    if tx.plbs:
        world.feature("interest", {"file": tx.file_name, "amount": format_cents(tx.plbs[0].amount_cents)})


def _missing_in_billing(world: World, rng: Any, tx: RemitTransaction) -> RemitClaim:
    claim, _ = remit.adjudicate(rng, tx.payer, tx.facility, world.seq.next(),
                                tx.business_date - dt.timedelta(days=12), Terms())
    tx.claims.append(claim)
    world.faults.append({
        "fault": "missing_in_billing", "reconciliation": "missing_in_billing", "reference": claim.claim_id,
        "expect_open": True, "business_date": tx.business_date.isoformat(),
        "details": {"file": tx.file_name, "payer_id": tx.payer.payer_id, "paid": format_cents(claim.paid_cents)},
    })
    return claim


def _bill(world: World, tx: RemitTransaction, missing: RemitClaim | None) -> None:
    """Billing already holds the claims (and the payments) of a good file; not the missing one."""
    updated = f"{tx.business_date.isoformat()}T06:00:00Z"
    for claim in tx.claims:
        if claim is missing:
            continue
        if claim.status != "22":  # the claim record is added once, with the corrected claim
            status = "denied" if claim.status == "4" else "paid"
            submitted = min(claim.statement_date + dt.timedelta(days=2), tx.business_date)
            world.billing.add_claim(claim, tx.payer.payer_id, status, submitted, updated)
            if claim.patient_resp_cents > 0:
                world.billing.balances.append({"account_token": claim.patient_token, "encounter_id": claim.encounter_id,
                                               "balance": format_cents(claim.patient_resp_cents), "updated_at": updated})
        world.billing.add_payment(claim.claim_id, tx.payer.payer_id, claim.paid_cents, tx.business_date,
                                  tx.trace_number, updated)


def _faulty_files(world: World, builder: RemitBuilder, date: dt.date) -> list[tuple[RemitTransaction, str]]:
    """An unbalanced second BLUE file and an 835 from a payer no crosswalk or ERP master knows."""
    blue = next(p for p in PAYERS if p.payer_id == "PAYER-BLUE")
    fac = next(f for f in world.facilities if f.code == fault_facility(world.codes, 2))
    rng = rng_for(world.seed, "remit-unbalanced", date)
    unbalanced = builder.transaction(blue, fac, date, "ACH", 2, bpr_error_cents=rng.randint(1000, 5000))
    for _ in range(2):
        unbalanced.claims.append(remit.adjudicate(rng, blue, fac, world.seq.next(), date - dt.timedelta(days=9),
                                                  Terms())[0])
    fac = world.facilities[0]
    rng = rng_for(world.seed, "remit-unknown-payer", date)
    unknown = builder.transaction(UNKNOWN_PAYER, fac, date, "CHK")
    for _ in range(2):
        unknown.claims.append(remit.adjudicate(rng, UNKNOWN_PAYER, fac, world.seq.next(),
                                               date - dt.timedelta(days=15), Terms())[0])
    # Once the payer is mapped and the file replayed, it posts like any other (the demo's fix).
    world.payer_fix.add_remittance(unknown, erp_payer_id=UNKNOWN_PAYER.payer_id, facility=fac.code)
    return [(unbalanced, "remit_unbalanced"), (unknown, "unknown_payer")]


def _write(world: World, tx: RemitTransaction) -> None:
    path = world.out / "sftp" / tx.payer.payer_id / tx.file_name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(x12_writer.render(tx), encoding="ascii", newline="")
    world.counts.files["x12_835"] += 1


def _record_bad(world: World, tx: RemitTransaction, kind: str) -> None:
    updated = f"{tx.business_date.isoformat()}T06:00:00Z"
    for claim in tx.claims:
        world.billing.add_claim(claim, tx.payer.payer_id, "submitted", claim.statement_date + dt.timedelta(days=2),
                                updated)
        if kind == "unknown_payer":  # billing posted this 835 itself; only carefabric lacks the payer
            world.billing.add_payment(claim.claim_id, tx.payer.payer_id, claim.paid_cents, tx.business_date,
                                      tx.trace_number, updated)
    rel = f"sftp/{tx.payer.payer_id}/{tx.file_name}"
    details: dict[str, Any] = {"path": rel, "trace_number": tx.trace_number}
    if kind == "remit_unbalanced":
        details |= {"bpr02": format_cents(tx.payment_cents), "sum_clp04_minus_plb": format_cents(tx.balanced_payment_cents)}
    else:
        details |= {"x12_payer_id": tx.payer.x12_id, "erp_payer_id": tx.payer.payer_id, "payer_name": tx.payer.name,
                    "facility": tx.facility.code, "amount": format_cents(tx.payment_cents)}
    world.faults.append({"fault": kind, "exception": kind.upper(), "reference": tx.file_name, "expect_open": True,
                         "business_date": tx.business_date.isoformat(), "details": details})


def _duplicate(world: World, original: RemitTransaction) -> None:
    source = world.out / "sftp" / original.payer.payer_id / original.file_name
    duplicate = source.with_name(source.stem + "_resend.835")
    shutil.copyfile(source, duplicate)
    world.counts.files["x12_835"] += 1
    world.counts.files["x12_835_rejected"] += 1
    world.faults.append({
        "fault": "duplicate_interchange", "exception": "DUPLICATE_INTERCHANGE", "reference": duplicate.name,
        "expect_open": True, "business_date": original.business_date.isoformat(),
        "details": {"path": duplicate.relative_to(world.out).as_posix(), "original": original.file_name,
                    "isa13": original.isa13, "gs06": original.gs06, "st02": original.st02},
    })
