"""The payers' side of a day: 835 transactions adjudicated so every claim and file balances.

Every claim balances by construction (charge - adjustments = paid, line and claim level); the
generator then decides which files are faults. Features a hospital's remittances carry, placed
by a per-day random stream so their positions move with the seed:

- Medicare sequestration: every paid Medicare claim loses 2% of what it would pay as ``CO-253``;
- a managed-care withhold ``PI-104`` on one claim of the day;
- a secondary claim (CLP02 = 2) whose lines carry the primary payer's payment as ``OA-23``;
- provider-level adjustments other than interest, each naming a claim in PLB03-2: ``WO``
  overpayment recovery, ``72`` authorized return (both recoup money) and ``FB`` forwarding balance;
- from the second business date on, 835s that pay claims of encounters the scenario's own EHR
  extracts billed on earlier days (``EarlierClaim``).
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

from sandbox.reference import CHARGEMASTER, PAYERS, CdmEntry, Facility, Patient, Payer
from sandbox.scenario.common import claim_id, encounter_id, make_patient, rng_for
from sandbox.x12_writer import Cas, Plb, RemitClaim, RemitLine, RemitTransaction

LineSpec = tuple[CdmEntry, int, str]  # (cdm, units, line ref = the EHR transaction id)
SEQUESTRATION_PCT = 2
PLB_RECOUPMENTS = ("WO", "72", "FB")


@dataclass(frozen=True, slots=True)
class EarlierClaim:
    """A claim for an encounter the scenario's EHR sent on an earlier business date."""

    seq: int
    facility: str
    payer_id: str
    service_date: dt.date
    patient: Patient
    lines: tuple[LineSpec, ...]


class RemitBuilder:
    """Builds 835 transactions and numbers them (control numbers, traces) for a whole scenario."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.control = 100000 + rng_for(seed, "control").randrange(0, 800000) * 1000
        self.trace_seq = 0

    def next_control(self) -> int:
        self.control += 1
        return self.control

    def next_trace(self, payer: Payer, date: dt.date, method: str) -> str:
        self.trace_seq += 1
        prefix = "EFT" if method == "ACH" else "CHK"
        return f"{prefix}{payer.x12_id[-4:]}{date:%Y%m%d}{self.trace_seq:06d}"

    def transaction(self, payer: Payer, fac: Facility, date: dt.date, method: str, file_no: int = 1,
                    bpr_error_cents: int = 0) -> RemitTransaction:
        return RemitTransaction(
            payer=payer, facility=fac, business_date=date, control_number=self.next_control(),
            trace_number=self.next_trace(payer, date, method), payment_method=method,
            file_name=f"era_{payer.x12_id}_{fac.code}_{date:%Y%m%d}_{file_no:02d}.835",
            bpr_error_cents=bpr_error_cents,
        )


def claim_lines(rng: random.Random, seq: int) -> list[LineSpec]:
    """The billed lines of an encounter from before the scenario: (cdm, units, line ref)."""
    count = rng.choice((1, 1, 2, 2, 3, 4))
    picks = rng.sample(CHARGEMASTER, count)
    return [
        (cdm, rng.randint(1, 3) if cdm.erp_item or cdm.department == "PHARM" else 1, f"T{seq:07d}{index:02d}")
        for index, cdm in enumerate(picks, start=1)
    ]


@dataclass(slots=True)
class Terms:
    """How the payer adjudicates one claim (the knobs the scenario turns)."""

    style: str = "lines"  # "lines" (2110 loops) or "claim" (claim-level CAS only)
    deny: bool = False
    rate_bp: int | None = None
    force_pr: bool = False
    no_pr: bool = False
    secondary: bool = False  # CLP02 = 2: the primary payer's payment is OA-23
    withhold: bool = False  # PI-104 managed-care withhold on the first line / the claim


def adjudicate(rng: random.Random, payer: Payer, fac: Facility, seq: int, service_date: dt.date, terms: Terms,
               lines_spec: list[LineSpec] | None = None, patient: Patient | None = None) -> tuple[RemitClaim, Patient]:
    """One claim as the payer adjudicated it; balances on the line and claim rules by construction."""
    lines_spec = lines_spec or claim_lines(rng, seq)
    patient = patient or make_patient(rng, seq, payer)
    rate = terms.rate_bp if terms.rate_bp is not None else payer.allowed_bp + rng.randrange(-500, 501, 100)
    charge_total = sum(cdm.price_cents * qty for cdm, qty, _ in lines_spec)
    claim = RemitClaim(
        claim_id=claim_id(fac.code, seq), status="4" if terms.deny else ("2" if terms.secondary else "1"),
        charge_cents=charge_total, paid_cents=0, patient_resp_cents=0, filing_indicator=payer.filing_indicator,
        payer_claim_control=f"{rng.randrange(10**13, 10**14)}", patient_family=patient.family,
        patient_given=patient.given, member_id=patient.member_id, statement_date=service_date,
        encounter_id=encounter_id(seq), facility=fac.code, patient_token=patient.token,
    )
    if terms.style == "claim":
        _adjudicate_claim_level(rng, payer, claim, rate, terms)
    else:
        _adjudicate_lines(rng, payer, claim, lines_spec, service_date, rate, terms)
    claim.patient_resp_cents = sum(a.amount_cents for a in claim.all_adjustments() if a.group == "PR")
    return claim, patient


def _payer_cuts(payer: Payer, adjustments: list[Cas], remaining: int, allowed: int, *, withhold: bool,
                secondary: bool) -> int:
    """Adjustments that are not the patient's: the primary's payment on a secondary claim (OA-23),
    a managed-care withhold (PI-104) and Medicare sequestration (CO-253, last, on what is left)."""
    if secondary and remaining > 0:
        prior = remaining * 60 // 100
        adjustments.append(Cas("OA", "23", prior))
        remaining -= prior
    if withhold and remaining > 0:
        held = max(1, allowed * 5 // 100)
        adjustments.append(Cas("PI", "104", min(held, remaining)))
        remaining -= min(held, remaining)
    if payer.payer_id == "PAYER-MEDICARE" and remaining > 0:
        cut = remaining * SEQUESTRATION_PCT // 100
        if cut:
            adjustments.append(Cas("CO", "253", cut))
            remaining -= cut
    return remaining


def _adjudicate_claim_level(rng: random.Random, payer: Payer, claim: RemitClaim, rate: int, terms: Terms) -> None:
    charge_total = claim.charge_cents
    if terms.deny:
        claim.adjustments.append(Cas("CO", "50", charge_total))
        return
    allowed = charge_total * rate // 10000
    if charge_total - allowed:
        claim.adjustments.append(Cas("CO", "45", charge_total - allowed))
    remaining = _payer_cuts(payer, claim.adjustments, allowed, allowed, withhold=terms.withhold,
                            secondary=terms.secondary)
    if not terms.no_pr and (terms.force_pr or rng.random() < 0.5):
        deductible = min(remaining, rng.choice((5000, 10000, 25000)))
        claim.adjustments.append(Cas("PR", "1", deductible))
        remaining -= deductible
    if not terms.no_pr and rng.random() < 0.5 and remaining > 0:
        coins = remaining * 20 // 100
        claim.adjustments.append(Cas("PR", "2", coins))
        remaining -= coins
    claim.paid_cents = remaining


def _adjudicate_lines(rng: random.Random, payer: Payer, claim: RemitClaim, lines_spec: list[LineSpec],
                      service_date: dt.date, rate: int, terms: Terms) -> None:
    line_paid_total = 0
    for index, (cdm, qty, ref) in enumerate(lines_spec):
        charge = cdm.price_cents * qty
        procedure = f"HC:{cdm.procedure_code}" if cdm.procedure_code else f"NU:{cdm.revenue_code}"
        line = RemitLine(procedure=procedure, revenue_code=cdm.revenue_code, charge_cents=charge, paid_cents=0,
                         units=qty, service_date=service_date, line_ref=ref,
                         allowed_cents=None if terms.deny else charge * rate // 10000)
        claim.lines.append(line)
        if terms.deny:
            line.adjustments.append(Cas("CO", "50", charge))
            continue
        allowed = line.allowed_cents or 0
        if charge - allowed:
            line.adjustments.append(Cas("CO", "45", charge - allowed))
        remaining = _payer_cuts(payer, line.adjustments, allowed, allowed, withhold=terms.withhold and index == 0,
                                secondary=terms.secondary)
        if not terms.no_pr and index == 0 and rng.random() < 0.3 and remaining > 0:
            deductible = min(remaining, rng.choice((5000, 10000, 25000)))
            line.adjustments.append(Cas("PR", "1", deductible))
            remaining -= deductible
        if not terms.no_pr and (terms.force_pr or rng.random() < 0.6) and remaining > 0:
            coins = remaining * 20 // 100
            if coins:
                line.adjustments.append(Cas("PR", "2", coins))
                remaining -= coins
        line.paid_cents = remaining
        line_paid_total += remaining
    claim.paid_cents = line_paid_total
    if not terms.deny and not terms.no_pr and (terms.force_pr or rng.random() < 0.35) and line_paid_total > 0:
        copay = min(line_paid_total, rng.choice((2000, 3000, 5000)))
        claim.adjustments.append(Cas("PR", "3", copay))
        claim.paid_cents -= copay


def reverse(claim: RemitClaim) -> RemitClaim:
    """CLP02 = 22: the same claim with every amount negated (units stay positive)."""
    return RemitClaim(
        claim_id=claim.claim_id, status="22", charge_cents=-claim.charge_cents, paid_cents=-claim.paid_cents,
        patient_resp_cents=-claim.patient_resp_cents, filing_indicator=claim.filing_indicator,
        payer_claim_control=claim.payer_claim_control, patient_family=claim.patient_family,
        patient_given=claim.patient_given, member_id=claim.member_id, statement_date=claim.statement_date,
        encounter_id=claim.encounter_id, facility=claim.facility, patient_token=claim.patient_token,
        adjustments=[Cas(a.group, a.reason, -a.amount_cents) for a in claim.adjustments],
        lines=[
            RemitLine(procedure=line.procedure, revenue_code=line.revenue_code, charge_cents=-line.charge_cents,
                      paid_cents=-line.paid_cents, units=line.units, service_date=line.service_date,
                      line_ref=line.line_ref, allowed_cents=None,
                      adjustments=[Cas(a.group, a.reason, -a.amount_cents) for a in line.adjustments])
            for line in claim.lines
        ],
    )


def claim_count(day_encounters: int, facility_count: int) -> int:
    """Claims per (payer, facility) file: about 70% of a day's encounter volume, at least 2."""
    return max(2, day_encounters * 7 // (10 * len(PAYERS) * facility_count))


@dataclass(slots=True)
class DayPlan:
    """Where the day's remittance features sit (drawn from the seed and the date)."""

    plb: dict[str, tuple[str, str]]  # reason -> (payer_id, facility)
    secondary: tuple[str, str]
    withhold: tuple[str, str]
    first_earlier: tuple[str, str] | None  # the file that surely pays an earlier day's claim

    @classmethod
    def draw(cls, seed: int, date: dt.date, codes: list[str], earlier: list[EarlierClaim]) -> DayPlan:
        rng = rng_for(seed, "remit-features", date)
        files = [(p.payer_id, code) for p in PAYERS for code in codes]
        plb = {reason: rng.choice(files) for reason in PLB_RECOUPMENTS}
        secondary = rng.choice([f for f in files if f[0] != "PAYER-MEDICARE"])
        with_earlier = sorted({(c.payer_id, c.facility) for c in earlier})
        return cls(plb, secondary, rng.choice(files), rng.choice(with_earlier) if with_earlier else None)


def add_plbs(rng: random.Random, tx: RemitTransaction, plan: DayPlan, paid_before: list[str]) -> list[dict[str, str]]:
    """The day's non-interest provider adjustments that fall on this file, each naming a claim."""
    key = (tx.payer.payer_id, tx.facility.code)
    added = []
    for reason in PLB_RECOUPMENTS:
        if plan.plb[reason] != key:
            continue
        reference = rng.choice(paid_before) if paid_before else tx.claims[0].claim_id
        amount = rng.randint(200, 3000)
        tx.plbs.append(Plb(reason, amount, reference))
        added.append({"file": tx.file_name, "reason": reason, "claim_id": reference, "amount_cents": str(amount)})
    return added


def pay_earlier(rng: random.Random, tx: RemitTransaction, plan: DayPlan, pool: list[EarlierClaim],
                seq_claims: set[int]) -> RemitClaim | None:
    """Maybe pay one claim of an earlier business date's encounter (same payer and facility)."""
    key = (tx.payer.payer_id, tx.facility.code)
    fits = [c for c in pool if (c.payer_id, c.facility) == key and c.seq not in seq_claims]
    if not fits or (plan.first_earlier != key and rng.random() < 0.5):
        return None
    chosen = rng.choice(fits)
    seq_claims.add(chosen.seq)
    claim, _ = adjudicate(rng, tx.payer, tx.facility, chosen.seq, chosen.service_date,
                          Terms(), lines_spec=list(chosen.lines), patient=chosen.patient)
    return claim
