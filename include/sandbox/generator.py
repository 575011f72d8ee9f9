"""Deterministic scenario generator: one business day (or several) of a hospital network.

``generate(out, seed=..., encounters=..., days=..., facilities=..., start_date=...)`` writes the
EHR extracts (HL7 v2 batches and FHIR NDJSON), the payers' 835 files, the ERP master data, the
billing platform's seed, the governed crosswalks, the ground truth and a manifest. Same
arguments give the same bytes: all randomness comes from ``random.Random`` seeded with text
derived from ``seed`` (string seeding is stable across processes and ``PYTHONHASHSEED``), no
wall clock is read, and every JSON file is written with sorted keys.

Output layout (``<out>/``)::

    ehr/<F>_<YYYYMMDD>.hl7           FHS/BHS batch per facility and day (ADT A01/A03/A04/A08, DFT^P03)
    ehr/fhir_<YYYYMMDD>.ndjson       FHIR R4 Encounter, Coverage, ChargeItem (FHIR-only encounters)
    sftp/<payer_id>/era_<x12 id>_<F>_<YYYYMMDD>_<nn>.835   one 835 per payer, payee facility, day
    bank/<YYYYMMDD>.bai              the bank's BAI2 statement of the day (``sandbox.bank_writer``)
    erp_master.json                  ERP /_sandbox/load body (companies ... periods)
    billing_seed.json                billing /_sandbox/load body (claims, payments, patient_balances)
    crosswalks/departments.csv, cdm.csv, payers.csv, facilities.csv
    ground_truth.json                expected postings, receipts, counts, faults, after_fix
    manifest.json                    arguments and sha256 + size of every file above

What happens each day: ``encounters / days`` encounters spread round-robin over the facilities
(every 20th one is a FHIR-only encounter); each HL7 encounter registers (A04, or A01 for an
inpatient), may be updated (A08), has one DFT^P03 with its charge and supply lines, sometimes a
second DFT^P03 with a ``CD`` credit, and ED visits are discharged (A03). The 835s of the day pay
claims of earlier encounters (billing already has those claims and, for the good files, the
payments), so remittance and charge capture are independent as they are in a hospital.

Faults (one each, all on the first day; see ``ground_truth.json`` "faults"):

1. ``UNKNOWN_CDM``: the first HL7 encounter at F1 has an extra FT1 with ``CDM2099`` (not in
   ``cdm.csv``; department LAB).
2. ``INACTIVE_COST_CENTER``: ``departments.csv`` maps F2/PHARM (or the last facility) to
   ``CC-F2-PHARM-OLD``, which the ERP master marks inactive; every such line is held.
3. ``HL7_PARSE_ERROR``: the second HL7 encounter at F3 (or the last facility) has its DFT^P03
   written with an MSH that ends after MSH-7 (no MSH-9 type, no MSH-10 control id).
4. ``UNKNOWN_PAYER``: ``sftp/PAYER-ZENITH/...`` from x12 id ``1999451001`` (in no crosswalk, not
   in the ERP).
5. ``DUPLICATE_INTERCHANGE``: a byte copy of the ACME/F1 file named ``..._01_resend.835``.
6. ``REMIT_UNBALANCED``: a second PAYER-BLUE file for F2 whose BPR02 is off by a few dollars.
7. ``missing_in_billing``: the last claim of the MEDICARE/F3 file has a claim id billing never had.
8. ``ERP_UNAVAILABLE``: a transient 503 on the first ``POST /api/v1/journal-batches`` (the
   demo arms it through ``/_sandbox/faults``; it must be retried, posted once, no exception).

``ground_truth.json`` "counts": ``charge_lines`` are the FT1 lines of parseable messages plus
the FHIR ChargeItems (supply and ``CD`` credit lines included; the malformed message's lines
are only in ``charge_lines_held.HL7_PARSE_ERROR``); ``charge_lines_posted`` = ``charge_lines``
minus the ``UNKNOWN_CDM`` and ``INACTIVE_COST_CENTER`` holds; ``messages`` counts MSH segments
by type (``malformed`` for the truncated one); ``claims_remitted`` and ``cash_receipts`` cover
the good 835s only (not the unknown-payer, unbalanced or duplicate file). "inventory_movements"
is a flat list of summarized lines, each with its ``movement_date``.

Also on the first day, by design: a denied claim (CLP02 = 4) in the ACME/F2 file, a reversal
(CLP02 = 22) of a payment billing recorded 21 days earlier followed by the corrected claim in
the BLUE/F1 file, PLB ``L6`` interest in the MEDICARE/F1 file, a ``CD`` credit on the third HL7
encounter at F1.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import hashlib
import io
import json
import random
import shutil
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from carefabric.money import format_cents
from carefabric.phi import token
from sandbox import bank_writer, fhir_writer, hl7_writer, x12_writer
from sandbox.ground_truth import Ledger
from sandbox.reference import (
    ATTENDINGS,
    CDM_BY_CODE,
    CHARGEMASTER,
    COMPANY,
    COMPANY_NAME,
    CURRENCY,
    DEPARTMENT_NAMES,
    DEPARTMENTS,
    FAMILY_NAMES,
    GIVEN_NAMES,
    GL_ACCOUNTS,
    PAYERS,
    STREETS,
    UNKNOWN_CDM,
    UNKNOWN_PAYER,
    CdmEntry,
    ChargeLine,
    Encounter,
    Facility,
    Patient,
    Payer,
    cost_center,
    fault_facility,
    inactive_cost_center_fault,
)
from sandbox.reference import facilities as make_facilities
from sandbox.x12_writer import Cas, Plb, RemitClaim, RemitLine, RemitTransaction

GENERATOR_VERSION = 1
FHIR_EVERY = 20  # every 20th encounter of a day is FHIR-only
REVERSAL_DAYS_AGO = 21


# --------------------------------------------------------------------------- helpers


def _rng(seed: int, *parts: object) -> random.Random:
    """An independent, reproducible stream per part of the scenario."""
    return random.Random(":".join(["carefabric", str(seed), *map(str, parts)]))


def _scramble(seq: int, factor: int, modulus: int) -> int:
    """A bijection on [0, modulus) so ids look random but never collide."""
    return (seq * factor + 7) % modulus


def _patient(rng: random.Random, seq: int, payer: Payer) -> Patient:
    mrn = f"M{_scramble(seq, 7919, 10**8):08d}"
    return Patient(
        mrn=mrn,
        enterprise_id=f"E{_scramble(seq, 104723, 10**9):09d}",
        family=rng.choice(FAMILY_NAMES),
        given=rng.choice(GIVEN_NAMES),
        middle=rng.choice("ABCDEJKLMRST"),
        birth_date=dt.date(1938, 1, 1) + dt.timedelta(days=rng.randrange(0, 365 * 85)),
        sex=rng.choice("FM"),
        street=f"{rng.randint(10, 9999)} {rng.choice(STREETS)}",
        city="SPRINGFIELD",
        zip_code=f"{rng.randint(10000, 99999)}",
        member_id=f"{payer.plan_code[:3]}{_scramble(seq, 31337, 10**9):09d}",
        token=token(mrn) or "",
    )


def encounter_id(seq: int) -> str:
    return f"V{seq:07d}"


def claim_id(facility_code: str, seq: int) -> str:
    """The patient control number billing sends on the 837 and the payer echoes in CLP01."""
    return f"CLM-{facility_code}-{seq:07d}"


@dataclass(slots=True)
class _Counts:
    files: Counter[str] = field(default_factory=Counter)
    messages: Counter[str] = field(default_factory=Counter)
    fhir: Counter[str] = field(default_factory=Counter)
    encounters_hl7: int = 0
    encounters_fhir: int = 0
    charge_lines: int = 0
    supply_lines: int = 0
    credit_lines: int = 0
    posted_lines: int = 0
    held: Counter[str] = field(default_factory=Counter)
    claims_remitted: int = 0
    remit_transactions: int = 0


@dataclass(slots=True)
class _Billing:
    claims: list[dict[str, str]] = field(default_factory=list)
    payments: list[dict[str, str]] = field(default_factory=list)
    balances: list[dict[str, str]] = field(default_factory=list)

    def add_claim(
        self, claim: RemitClaim, payer_id: str, status: str, submitted: dt.date, updated: str
    ) -> None:
        self.claims.append(
            {
                "claim_id": claim.claim_id,
                "encounter_id": claim.encounter_id,
                "facility": claim.facility,
                "payer_id": payer_id,
                "total_charge": format_cents(abs(claim.charge_cents)),
                "status": status,
                "submitted_date": submitted.isoformat(),
                "updated_at": updated,
            }
        )

    def add_payment(
        self, claim_id_: str, payer_id: str, cents: int, paid: dt.date, trace: str, updated: str
    ) -> None:
        self.payments.append(
            {
                "payment_id": f"PMT-{len(self.payments) + 1:07d}",
                "claim_id": claim_id_,
                "payer_id": payer_id,
                "amount": format_cents(cents),
                "paid_date": paid.isoformat(),
                "trace_number": trace,
                "updated_at": updated,
            }
        )


# --------------------------------------------------------------------------- remittance


class _RemitBuilder:
    """Builds the day's 835 transactions and the billing records that match them."""

    def __init__(self, seed: int, facs: list[Facility]) -> None:
        self.seed = seed
        self.facs = facs
        self.fac_by_code = {fac.code: fac for fac in facs}
        self.claim_seq = 0
        self.control = 100000 + _rng(seed, "control").randrange(0, 800000) * 1000
        self.trace_seq = 0

    def next_claim_seq(self) -> int:
        self.claim_seq += 1
        return self.claim_seq

    def next_control(self) -> int:
        self.control += 1
        return self.control

    def next_trace(self, payer: Payer, date: dt.date, method: str) -> str:
        self.trace_seq += 1
        prefix = "EFT" if method == "ACH" else "CHK"
        return f"{prefix}{payer.x12_id[-4:]}{date:%Y%m%d}{self.trace_seq:06d}"

    # ---------------------------------------------------------------- claims
    def claim_lines(
        self, rng: random.Random, service_date: dt.date, seq: int
    ) -> list[tuple[CdmEntry, int, str]]:
        """The billed lines of a prior encounter: (cdm, quantity, line ref)."""
        count = rng.choice((1, 1, 2, 2, 3, 4))
        picks = rng.sample(CHARGEMASTER, count)
        return [
            (
                cdm,
                rng.randint(1, 3) if cdm.erp_item or cdm.department == "PHARM" else 1,
                f"T{seq:07d}{index:02d}",
            )
            for index, cdm in enumerate(picks, start=1)
        ]

    def adjudicate(
        self,
        rng: random.Random,
        payer: Payer,
        fac: Facility,
        seq: int,
        service_date: dt.date,
        *,
        style: str,
        deny: bool = False,
        rate_bp: int | None = None,
        force_pr: bool = False,
        no_pr: bool = False,
        lines_spec: list[tuple[CdmEntry, int, str]] | None = None,
        patient: Patient | None = None,
    ) -> tuple[RemitClaim, Patient]:
        """One claim as the payer adjudicated it; balances on the line and claim rules by construction."""
        lines_spec = lines_spec or self.claim_lines(rng, service_date, seq)
        patient = patient or _patient(rng, seq, payer)
        rate = rate_bp if rate_bp is not None else payer.allowed_bp + rng.randrange(-500, 501, 100)
        charge_total = sum(cdm.price_cents * qty for cdm, qty, _ in lines_spec)
        claim = RemitClaim(
            claim_id=claim_id(fac.code, seq),
            status="4" if deny else "1",
            charge_cents=charge_total,
            paid_cents=0,
            patient_resp_cents=0,
            filing_indicator=payer.filing_indicator,
            payer_claim_control=f"{rng.randrange(10**13, 10**14)}",
            patient_family=patient.family,
            patient_given=patient.given,
            member_id=patient.member_id,
            statement_date=service_date,
            encounter_id=encounter_id(seq),
            facility=fac.code,
            patient_token=patient.token,
        )
        if style == "claim":
            if deny:
                claim.adjustments.append(Cas("CO", "50", charge_total))
            else:
                allowed = charge_total * rate // 10000
                if charge_total - allowed:
                    claim.adjustments.append(Cas("CO", "45", charge_total - allowed))
                remaining = allowed
                if not no_pr and (force_pr or rng.random() < 0.5):
                    deductible = min(remaining, rng.choice((5000, 10000, 25000)))
                    claim.adjustments.append(Cas("PR", "1", deductible))
                    remaining -= deductible
                if not no_pr and rng.random() < 0.5 and remaining > 0:
                    coins = remaining * 20 // 100
                    claim.adjustments.append(Cas("PR", "2", coins))
                    remaining -= coins
                claim.paid_cents = remaining
        else:
            line_paid_total = 0
            for index, (cdm, qty, ref) in enumerate(lines_spec):
                charge = cdm.price_cents * qty
                procedure = f"HC:{cdm.procedure_code}" if cdm.procedure_code else f"NU:{cdm.revenue_code}"
                line = RemitLine(
                    procedure=procedure,
                    revenue_code=cdm.revenue_code,
                    charge_cents=charge,
                    paid_cents=0,
                    units=qty,
                    service_date=service_date,
                    line_ref=ref,
                    allowed_cents=None if deny else charge * rate // 10000,
                )
                if deny:
                    line.adjustments.append(Cas("CO", "50", charge))
                else:
                    allowed = line.allowed_cents or 0
                    if charge - allowed:
                        line.adjustments.append(Cas("CO", "45", charge - allowed))
                    remaining = allowed
                    if not no_pr and index == 0 and rng.random() < 0.3 and remaining > 0:
                        deductible = min(remaining, rng.choice((5000, 10000, 25000)))
                        line.adjustments.append(Cas("PR", "1", deductible))
                        remaining -= deductible
                    if not no_pr and (force_pr or rng.random() < 0.6) and remaining > 0:
                        coins = remaining * 20 // 100
                        if coins:
                            line.adjustments.append(Cas("PR", "2", coins))
                            remaining -= coins
                    line.paid_cents = remaining
                    line_paid_total += remaining
                claim.lines.append(line)
            claim.paid_cents = line_paid_total
            if not deny and not no_pr and (force_pr or rng.random() < 0.35) and line_paid_total > 0:
                copay = min(line_paid_total, rng.choice((2000, 3000, 5000)))
                claim.adjustments.append(Cas("PR", "3", copay))
                claim.paid_cents -= copay
        claim.patient_resp_cents = sum(a.amount_cents for a in claim.all_adjustments() if a.group == "PR")
        return claim, patient

    @staticmethod
    def reverse(claim: RemitClaim) -> RemitClaim:
        """CLP02 = 22: the same claim with every amount negated (units stay positive)."""
        return RemitClaim(
            claim_id=claim.claim_id,
            status="22",
            charge_cents=-claim.charge_cents,
            paid_cents=-claim.paid_cents,
            patient_resp_cents=-claim.patient_resp_cents,
            filing_indicator=claim.filing_indicator,
            payer_claim_control=claim.payer_claim_control,
            patient_family=claim.patient_family,
            patient_given=claim.patient_given,
            member_id=claim.member_id,
            statement_date=claim.statement_date,
            encounter_id=claim.encounter_id,
            facility=claim.facility,
            patient_token=claim.patient_token,
            adjustments=[Cas(a.group, a.reason, -a.amount_cents) for a in claim.adjustments],
            lines=[
                RemitLine(
                    procedure=line.procedure,
                    revenue_code=line.revenue_code,
                    charge_cents=-line.charge_cents,
                    paid_cents=-line.paid_cents,
                    units=line.units,
                    service_date=line.service_date,
                    line_ref=line.line_ref,
                    allowed_cents=None,
                    adjustments=[Cas(a.group, a.reason, -a.amount_cents) for a in line.adjustments],
                )
                for line in claim.lines
            ],
        )


def _claim_count(day_encounters: int, facility_count: int) -> int:
    """Claims per (payer, facility) file: about 70% of a day's encounter volume, at least 2."""
    return max(2, day_encounters * 7 // (10 * len(PAYERS) * facility_count))


# --------------------------------------------------------------------------- EHR side


_CLASS_SETUP = {
    "E": ("EMR", "ED"),
    "O": ("OPS", "OPC"),
    "I": ("MED", "MEDSURG"),
}


def _charge_plan(rng: random.Random, patient_class: str) -> list[tuple[CdmEntry, int]]:
    """Chargemaster lines an encounter of this class typically produces: (cdm, quantity)."""
    cdm = CDM_BY_CODE
    lines: list[tuple[CdmEntry, int]] = []
    labs = ["CDM2001", "CDM2002", "CDM2003", "CDM2004", "CDM2005"]
    if patient_class == "E":
        lines.append((cdm[rng.choice(("CDM1001", "CDM1002", "CDM1003"))], 1))
        lines += [(cdm[code], 1) for code in rng.sample(labs, rng.randint(0, 2))]
        if rng.random() < 0.4:
            lines.append((cdm[rng.choice(("CDM3001", "CDM3002"))], 1))
        if rng.random() < 0.4:
            lines.append((cdm[rng.choice(("CDM4001", "CDM4003"))], rng.randint(1, 2)))
        if rng.random() < 0.5:
            lines.append((cdm[rng.choice(("CDM7001", "CDM7002"))], rng.randint(1, 2)))
    elif patient_class == "O":
        lines += [(cdm[code], 1) for code in rng.sample(labs, rng.randint(1, 3))]
        if rng.random() < 0.4:
            lines.append((cdm[rng.choice(("CDM3001", "CDM3003"))], 1))
    else:
        lines.append((cdm["CDM6001"], 1))
        lines += [(cdm[code], 1) for code in rng.sample(labs, rng.randint(1, 3))]
        lines.append((cdm[rng.choice(("CDM4002", "CDM4003"))], rng.randint(1, 3)))
        if rng.random() < 0.3:
            lines.append((cdm[rng.choice(("CDM5001", "CDM5002"))], 1))
            lines.append((cdm["CDM7004"], rng.randint(2, 6)))
            lines.append((cdm["CDM7005"], rng.randint(1, 4)))
        if rng.random() < 0.4:
            lines.append((cdm["CDM7003"], 1))
        if rng.random() < 0.3:
            lines.append((cdm["CDM6002"], rng.randint(4, 12)))
    return lines


def _make_encounter(
    rng: random.Random,
    seq: int,
    fac: Facility,
    date: dt.date,
    admit: dt.datetime,
    slot_seconds: int,
    *,
    channel: str,
    patient_class: str | None = None,
) -> Encounter:
    patient_class = patient_class or rng.choices(("E", "O", "I"), weights=(35, 40, 25))[0]
    payer = rng.choice(PAYERS)
    service, point_of_care = _CLASS_SETUP[patient_class]
    discharge = admit + dt.timedelta(seconds=slot_seconds * 5 // 6) if patient_class == "E" else None
    encounter = Encounter(
        encounter_id=encounter_id(seq),
        facility=fac,
        patient=_patient(rng, seq, payer),
        patient_class=patient_class,
        hospital_service=service,
        point_of_care=point_of_care,
        attending=rng.choice(ATTENDINGS),
        payer=payer,
        admit_time=admit,
        discharge_time=discharge,
        service_date=date,
        channel=channel,
    )
    for index, (cdm, qty) in enumerate(_charge_plan(rng, patient_class), start=1):
        encounter.charges.append(_line(seq, index, date, "CG", cdm, qty, cdm.department))
    encounter.updated = rng.random() < 0.2
    return encounter


def _line(seq: int, index: int, date: dt.date, kind: str, cdm: CdmEntry, qty: int, dept: str) -> ChargeLine:
    return ChargeLine(
        transaction_id=f"T{seq:07d}{index:02d}",
        service_date=date,
        transaction_type=kind,
        cdm=cdm,
        quantity=qty,
        unit_cents=cdm.price_cents,
        extended_cents=cdm.price_cents * qty,
        department=dept,
    )


# --------------------------------------------------------------------------- generate


def _day_counts(encounters: int, days: int) -> list[int]:
    return [encounters // days + (1 if index < encounters % days else 0) for index in range(days)]


def _clean_outputs(out: Path) -> None:
    """Remove files a previous run wrote here (only our own layout), so no stale file lingers."""
    for sub in ("ehr", "sftp", "crosswalks", "bank"):
        if (out / sub).is_dir():
            shutil.rmtree(out / sub)
    for name in ("erp_master.json", "billing_seed.json", "ground_truth.json", "manifest.json"):
        (out / name).unlink(missing_ok=True)


def _dump_json(path: Path, payload: Any) -> None:
    path.write_text(json.dumps(payload, sort_keys=True, indent=2) + "\n", encoding="utf-8")


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.write_text(buffer.getvalue(), encoding="utf-8")


def _write_json_lists(path: Path, lists: dict[str, list[dict[str, str]]]) -> None:
    """A JSON object of lists written item by item (billing seeds get large in benchmarks)."""
    with path.open("w", encoding="utf-8") as handle:
        handle.write("{\n")
        for key_index, key in enumerate(sorted(lists)):
            handle.write(f"  {json.dumps(key)}: [")
            for index, item in enumerate(lists[key]):
                handle.write(("\n    " if index == 0 else ",\n    ") + json.dumps(item, sort_keys=True))
            handle.write("\n  ]" if lists[key] else "]")
            handle.write(",\n" if key_index < len(lists) - 1 else "\n")
        handle.write("}\n")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def generate(
    out_dir: Path,
    *,
    seed: int,
    encounters: int,
    days: int,
    facilities: int,
    start_date: dt.date,
) -> dict[str, Any]:
    """Write the whole scenario into ``out_dir`` and return the manifest (also written)."""
    if facilities < 1 or facilities > 99:
        raise ValueError("facilities must be between 1 and 99")
    if days < 1:
        raise ValueError("days must be at least 1")
    if encounters < 4 * facilities * days:
        raise ValueError(
            f"encounters must be at least 4 x facilities x days ({4 * facilities * days}) "
            "so every fault has an encounter to sit on"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _clean_outputs(out)
    for sub in ("ehr", "sftp", "crosswalks"):
        (out / sub).mkdir(parents=True, exist_ok=True)

    facs = make_facilities(facilities)
    codes = [fac.code for fac in facs]
    fac_by_code = {fac.code: fac for fac in facs}
    dates = [start_date + dt.timedelta(days=index) for index in range(days)]
    day_counts = _day_counts(encounters, days)

    inactive_fac, inactive_dept, inactive_cc = inactive_cost_center_fault(codes)
    department_map = {(code, dept): cost_center(code, dept) for code in codes for dept in DEPARTMENTS}
    department_map[(inactive_fac, inactive_dept)] = inactive_cc
    active_cc = {cc for key, cc in department_map.items() if cc != inactive_cc}
    cdm_crosswalk = {entry.code: entry for entry in CHARGEMASTER}  # UNKNOWN_CDM deliberately absent

    ledger = Ledger()
    after_fix = Ledger()
    counts = _Counts()
    billing = _Billing()
    faults: list[dict[str, Any]] = []
    features: dict[str, Any] = {"denials": [], "interest": [], "credits": []}

    # ------------------------------------------------------------------ remittances (835)
    remit = _RemitBuilder(seed, facs)
    sftp = out / "sftp"
    paid: dict[dt.date, list[RemitTransaction]] = {}  # every payment announced: the bank's deposits
    for day_index, date in enumerate(dates):
        first_day = day_index == 0
        per_file = _claim_count(day_counts[day_index], facilities)
        updated = f"{date.isoformat()}T06:00:00Z"
        good: list[RemitTransaction] = []
        bad: list[tuple[RemitTransaction, str]] = []  # (transaction, fault kind)
        for payer in PAYERS:
            for fac in facs:
                rng = _rng(seed, "remit", date, payer.payer_id, fac.code)
                method = "ACH" if rng.random() < 0.8 else "CHK"
                tx = RemitTransaction(
                    payer=payer,
                    facility=fac,
                    business_date=date,
                    control_number=remit.next_control(),
                    trace_number=remit.next_trace(payer, date, method),
                    payment_method=method,
                    file_name=f"era_{payer.x12_id}_{fac.code}_{date:%Y%m%d}_01.835",
                )
                special_denial = (
                    first_day and payer.payer_id == "PAYER-ACME" and fac.code == fault_facility(codes, 2)
                )
                special_pr = (
                    first_day and fac.code == "F1" and payer.payer_id in ("PAYER-ACME", "PAYER-MEDICARE")
                )
                for index in range(per_file):
                    seq = remit.next_claim_seq()
                    service_date = date - dt.timedelta(days=rng.randint(7, 45))
                    if payer.payer_id == "PAYER-MEDICARE":
                        style = "claim" if (index == 0 or rng.random() < 0.5) else "lines"
                    else:
                        style = "lines"
                    # Random denials never touch the first two claims, so a file always pays something.
                    deny = (special_denial and index == 0) or (index > 1 and rng.random() < 0.04)
                    claim, _ = remit.adjudicate(
                        rng,
                        payer,
                        fac,
                        seq,
                        service_date,
                        style=style,
                        deny=deny,
                        force_pr=special_pr and index == 0,
                    )
                    tx.claims.append(claim)
                    if deny:
                        features["denials"].append(claim.claim_id)
                if first_day and payer.payer_id == "PAYER-BLUE" and fac.code == "F1":
                    # A payment made 21 days ago is taken back and the claim paid again, corrected.
                    seq = remit.next_claim_seq()
                    service_date = date - dt.timedelta(days=REVERSAL_DAYS_AGO + 10)
                    lines_spec = remit.claim_lines(rng, service_date, seq)
                    original, patient = remit.adjudicate(
                        rng,
                        payer,
                        fac,
                        seq,
                        service_date,
                        style="lines",
                        rate_bp=payer.allowed_bp,
                        lines_spec=lines_spec,
                        no_pr=True,
                    )
                    corrected, _ = remit.adjudicate(
                        rng,
                        payer,
                        fac,
                        seq,
                        service_date,
                        style="lines",
                        rate_bp=payer.allowed_bp + 800,
                        lines_spec=lines_spec,
                        patient=patient,
                        force_pr=True,
                    )
                    reversal = remit.reverse(original)
                    tx.claims += [reversal, corrected]
                    earlier = date - dt.timedelta(days=REVERSAL_DAYS_AGO)
                    earlier_trace = f"EFT{payer.x12_id[-4:]}{earlier:%Y%m%d}{900000 + day_index:06d}"
                    billing.add_payment(
                        original.claim_id,
                        payer.payer_id,
                        original.paid_cents,
                        earlier,
                        earlier_trace,
                        f"{earlier.isoformat()}T06:00:00Z",
                    )
                    features["reversal"] = {
                        "claim_id": original.claim_id,
                        "original_paid": format_cents(original.paid_cents),
                        "original_paid_date": earlier.isoformat(),
                        "original_trace_number": earlier_trace,
                        "corrected_paid": format_cents(corrected.paid_cents),
                        "file": tx.file_name,
                    }
                if first_day and payer.payer_id == "PAYER-MEDICARE" and fac.code == "F1":
                    interest = -rng.randint(150, 4500)
                    tx.plbs.append(Plb("L6", interest))
                elif rng.random() < 0.15:
                    tx.plbs.append(Plb("L6", -rng.randint(50, 2500)))
                if tx.plbs:
                    features["interest"].append(
                        {"file": tx.file_name, "amount": format_cents(tx.plbs[0].amount_cents)}
                    )
                while tx.balanced_payment_cents <= 0:  # deductibles ate everything: add a paying claim
                    claim, _ = remit.adjudicate(
                        rng, payer, fac, remit.next_claim_seq(), date - dt.timedelta(days=8), style="lines"
                    )
                    tx.claims.append(claim)
                missing_claim: RemitClaim | None = None
                if first_day and payer.payer_id == "PAYER-MEDICARE" and fac.code == fault_facility(codes, 3):
                    seq = remit.next_claim_seq()
                    missing_claim, _ = remit.adjudicate(
                        rng, payer, fac, seq, date - dt.timedelta(days=12), style="lines"
                    )
                    tx.claims.append(missing_claim)
                    faults.append(
                        {
                            "fault": "missing_in_billing",
                            "reconciliation": "missing_in_billing",
                            "reference": missing_claim.claim_id,
                            "expect_open": True,
                            "details": {
                                "file": tx.file_name,
                                "payer_id": payer.payer_id,
                                "paid": format_cents(missing_claim.paid_cents),
                            },
                        }
                    )
                good.append(tx)
                for claim in tx.claims:
                    if claim is missing_claim:
                        continue
                    if claim.status == "22":
                        continue  # the claim record is added once, with the corrected claim
                    status = "denied" if claim.status == "4" else "paid"
                    billing.add_claim(
                        claim, payer.payer_id, status, claim.statement_date + dt.timedelta(days=2), updated
                    )
                    final_pr = claim.patient_resp_cents
                    if final_pr > 0:
                        billing.balances.append(
                            {
                                "account_token": claim.patient_token,
                                "encounter_id": claim.encounter_id,
                                "balance": format_cents(final_pr),
                                "updated_at": updated,
                            }
                        )
                for claim in tx.claims:
                    if claim is not missing_claim:
                        billing.add_payment(
                            claim.claim_id, payer.payer_id, claim.paid_cents, date, tx.trace_number, updated
                        )

        if first_day:
            # Unbalanced: a second BLUE file whose BPR02 does not equal sum(CLP04) - sum(PLB).
            payer = next(p for p in PAYERS if p.payer_id == "PAYER-BLUE")
            fac = fac_by_code[fault_facility(codes, 2)]
            rng = _rng(seed, "remit-unbalanced", date)
            tx = RemitTransaction(
                payer=payer,
                facility=fac,
                business_date=date,
                control_number=remit.next_control(),
                trace_number=remit.next_trace(payer, date, "ACH"),
                payment_method="ACH",
                file_name=f"era_{payer.x12_id}_{fac.code}_{date:%Y%m%d}_02.835",
                bpr_error_cents=rng.randint(1000, 5000),
            )
            for _ in range(2):
                claim, _ = remit.adjudicate(
                    rng, payer, fac, remit.next_claim_seq(), date - dt.timedelta(days=9), style="lines"
                )
                tx.claims.append(claim)
            bad.append((tx, "remit_unbalanced"))
            # Unknown payer: an 835 from a payer no crosswalk and no ERP master knows.
            fac = facs[0]
            rng = _rng(seed, "remit-unknown-payer", date)
            tx = RemitTransaction(
                payer=UNKNOWN_PAYER,
                facility=fac,
                business_date=date,
                control_number=remit.next_control(),
                trace_number=remit.next_trace(UNKNOWN_PAYER, date, "CHK"),
                payment_method="CHK",
                file_name=f"era_{UNKNOWN_PAYER.x12_id}_{fac.code}_{date:%Y%m%d}_01.835",
            )
            for _ in range(2):
                claim, _ = remit.adjudicate(
                    rng,
                    UNKNOWN_PAYER,
                    fac,
                    remit.next_claim_seq(),
                    date - dt.timedelta(days=15),
                    style="lines",
                )
                tx.claims.append(claim)
            bad.append((tx, "unknown_payer"))

        paid[date] = good + [tx for tx, _ in bad]
        for tx in good:
            assert tx.payment_cents > 0, tx.file_name
            path = sftp / tx.payer.payer_id / tx.file_name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(x12_writer.render(tx), encoding="ascii", newline="")
            counts.files["x12_835"] += 1
            counts.claims_remitted += len(tx.claims)
            counts.remit_transactions += 1
            ledger.add_remittance(tx, erp_payer_id=tx.payer.payer_id, facility=tx.facility.code)
        for tx, kind in bad:
            path = sftp / tx.payer.payer_id / tx.file_name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(x12_writer.render(tx), encoding="ascii", newline="")
            counts.files["x12_835"] += 1
            counts.files["x12_835_rejected"] += 1
            for claim in tx.claims:
                billing.add_claim(
                    claim,
                    tx.payer.payer_id,
                    "submitted",
                    claim.statement_date + dt.timedelta(days=2),
                    updated,
                )
            rel = path.relative_to(out).as_posix()
            if kind == "remit_unbalanced":
                faults.append(
                    {
                        "fault": "remit_unbalanced",
                        "exception": "REMIT_UNBALANCED",
                        "reference": tx.file_name,
                        "expect_open": True,
                        "details": {
                            "path": rel,
                            "bpr02": format_cents(tx.payment_cents),
                            "sum_clp04_minus_plb": format_cents(tx.balanced_payment_cents),
                            "trace_number": tx.trace_number,
                        },
                    }
                )
            else:
                faults.append(
                    {
                        "fault": "unknown_payer",
                        "exception": "UNKNOWN_PAYER",
                        "reference": tx.file_name,
                        "expect_open": True,
                        "details": {
                            "path": rel,
                            "x12_payer_id": tx.payer.x12_id,
                            "trace_number": tx.trace_number,
                        },
                    }
                )
        if first_day:
            original = next(t for t in good if t.payer.payer_id == "PAYER-ACME" and t.facility.code == "F1")
            source = sftp / original.payer.payer_id / original.file_name
            duplicate = source.with_name(source.stem + "_resend.835")
            shutil.copyfile(source, duplicate)
            counts.files["x12_835"] += 1
            counts.files["x12_835_rejected"] += 1
            faults.append(
                {
                    "fault": "duplicate_interchange",
                    "exception": "DUPLICATE_INTERCHANGE",
                    "reference": duplicate.name,
                    "expect_open": True,
                    "details": {
                        "path": duplicate.relative_to(out).as_posix(),
                        "original": original.file_name,
                        "isa13": original.isa13,
                        "gs06": original.gs06,
                        "st02": original.st02,
                    },
                }
            )

    # ------------------------------------------------------------------ EHR (HL7 + FHIR)
    seq = remit.claim_seq
    unknown_fac = facs[0].code
    malformed_fac = fault_facility(codes, 3)
    held_inactive: list[str] = []
    for day_index, date in enumerate(dates):
        first_day = day_index == 0
        by_fac: dict[str, list[tuple[int, str]]] = {code: [] for code in codes}
        for index in range(day_counts[day_index]):
            seq += 1
            channel = "fhir" if index % FHIR_EVERY == FHIR_EVERY - 1 else "hl7"
            by_fac[codes[index % facilities]].append((seq, channel))
        fhir_path = out / "ehr" / f"fhir_{date:%Y%m%d}.ndjson"
        with fhir_path.open("w", encoding="utf-8", newline="") as fhir_handle:
            for fac in facs:
                rng = _rng(seed, "ehr", date, fac.code)
                entries = by_fac[fac.code]
                slot = max(1, 86000 // max(1, len(entries)))
                file_name = f"{fac.code}_{date:%Y%m%d}.hl7"
                path = out / "ehr" / file_name
                hl7_position = 0
                with path.open("w", encoding="ascii", newline="") as handle:
                    batch = hl7_writer.BatchWriter(handle, fac, date, file_name)
                    for order, (enc_seq, channel) in enumerate(entries):
                        admit = dt.datetime.combine(date, dt.time(0, 5)) + dt.timedelta(
                            seconds=order * 86000 // len(entries)
                        )
                        forced_class = None
                        if first_day and channel == "hl7" and fac.code == "F1" and hl7_position < 3:
                            forced_class = ("E", "I", "O")[hl7_position]
                        encounter = _make_encounter(
                            rng, enc_seq, fac, date, admit, slot, channel=channel, patient_class=forced_class
                        )
                        if channel == "fhir":
                            counts.encounters_fhir += 1
                            for name, number in fhir_writer.write_encounter(fhir_handle, encounter).items():
                                counts.fhir[name] += number
                            _account_lines(
                                encounter,
                                ledger,
                                after_fix,
                                counts,
                                department_map,
                                active_cc,
                                cdm_crosswalk,
                                inactive_cc,
                                held_inactive,
                                faults,
                                file_name=fhir_path.name,
                            )
                            continue
                        counts.encounters_hl7 += 1
                        if first_day:
                            if fac.code == unknown_fac and hl7_position == 0:
                                encounter.charges.append(
                                    _line(
                                        enc_seq, len(encounter.charges) + 1, date, "CG", UNKNOWN_CDM, 1, "LAB"
                                    )
                                )
                            if (
                                fac.code == inactive_fac
                                and hl7_position == 0
                                and not any(line.department == inactive_dept for line in encounter.charges)
                            ):
                                encounter.charges.append(
                                    _line(
                                        enc_seq,
                                        len(encounter.charges) + 1,
                                        date,
                                        "CG",
                                        CDM_BY_CODE["CDM4001"],
                                        1,
                                        "PHARM",
                                    )
                                )
                            if fac.code == malformed_fac and hl7_position == 1:
                                encounter.malformed_dft = True
                            if fac.code == "F1" and hl7_position == 1:
                                encounter.updated = True
                        credit_wanted = (
                            first_day and fac.code == "F1" and hl7_position == 2
                        ) or rng.random() < 0.04
                        if credit_wanted and not encounter.malformed_dft:
                            reversible = [
                                line
                                for line in encounter.charges
                                if not line.is_supply
                                and line.cdm.code in cdm_crosswalk
                                and department_map[(fac.code, line.department)] != inactive_cc
                            ]
                            if reversible:
                                original = reversible[-1]
                                credit = _line(
                                    enc_seq,
                                    50 + len(encounter.credits),
                                    date,
                                    "CD",
                                    original.cdm,
                                    -original.quantity,
                                    original.department,
                                )
                                encounter.credits.append(credit)
                                features["credits"].append(
                                    {
                                        "transaction_id": credit.transaction_id,
                                        "reverses": original.transaction_id,
                                    }
                                )
                        hl7_position += 1
                        _write_hl7_encounter(batch, encounter, slot, counts, faults, file_name)
                        _account_lines(
                            encounter,
                            ledger,
                            after_fix,
                            counts,
                            department_map,
                            active_cc,
                            cdm_crosswalk,
                            inactive_cc,
                            held_inactive,
                            faults,
                            file_name=file_name,
                        )
                    batch.close()
                counts.files["hl7"] += 1
        counts.files["fhir"] += 1

    faults.append(
        {
            "fault": "inactive_cost_center",
            "exception": "INACTIVE_COST_CENTER",
            "reference": inactive_cc,
            "expect_open": True,
            "details": {
                "facility": inactive_fac,
                "department": inactive_dept,
                "held_lines": len(held_inactive),
                "sample_transaction_ids": held_inactive[:10],
            },
        }
    )
    faults.append(
        {
            "fault": "erp_unavailable",
            "exception": "ERP_UNAVAILABLE",
            "reference": "/api/v1/journal-batches",
            "expect_open": False,
            "expected": "retried with backoff; the batch is posted once; no exception left open",
            "erp_fault": {
                "path_prefix": "/api/v1/journal-batches",
                "method": "POST",
                "status": 503,
                "count": 1,
            },
        }
    )
    fault_order = [
        "unknown_cdm",
        "inactive_cost_center",
        "hl7_parse_error",
        "unknown_payer",
        "duplicate_interchange",
        "remit_unbalanced",
        "missing_in_billing",
        "erp_unavailable",
    ]
    faults.sort(key=lambda item: fault_order.index(item["fault"]))

    # ------------------------------------------------------------------ master data, seeds, crosswalks
    _write_csv(
        out / "crosswalks" / "departments.csv",
        ["facility", "department", "cost_center"],
        [[code, dept, department_map[(code, dept)]] for code in codes for dept in DEPARTMENTS],
    )
    _write_csv(
        out / "crosswalks" / "cdm.csv",
        ["cdm_code", "description", "revenue_account", "erp_item", "procedure_code"],
        [
            [e.code, e.description, e.revenue_account, e.erp_item or "", e.procedure_code]
            for e in CHARGEMASTER
        ],
    )
    _write_csv(
        out / "crosswalks" / "payers.csv",
        ["x12_payer_id", "erp_payer_id"],
        [[p.x12_id, p.payer_id] for p in PAYERS],
    )
    _write_csv(
        out / "crosswalks" / "facilities.csv",
        ["facility", "npi", "location", "company"],
        [[fac.code, fac.npi, fac.location, COMPANY] for fac in facs],
    )
    _dump_json(
        out / "erp_master.json", _erp_master(facs, codes, inactive_fac, inactive_dept, inactive_cc, dates)
    )
    billing.claims.sort(key=lambda c: c["claim_id"])
    billing.balances.sort(key=lambda b: (b["encounter_id"], b["account_token"]))
    _write_json_lists(
        out / "billing_seed.json",
        {"claims": billing.claims, "payments": billing.payments, "patient_balances": billing.balances},
    )

    # The bank comes last and draws from its own random stream: nothing above moves with it.
    bank = bank_writer.write_statements(out, paid, seed=seed, facilities=facs)
    unknown_fault = next(f for f in faults if f["fault"] == "unknown_cdm")
    ground_truth = {
        "business_date": dates[0].isoformat(),
        "business_dates": [date.isoformat() for date in dates],
        "seed": seed,
        "company": COMPANY,
        "generator_version": GENERATOR_VERSION,
        "counts": {
            "files": dict(sorted(counts.files.items())),
            "messages": dict(sorted(counts.messages.items())),
            "fhir_resources": dict(sorted(counts.fhir.items())),
            "encounters": counts.encounters_hl7 + counts.encounters_fhir,
            "encounters_hl7": counts.encounters_hl7,
            "encounters_fhir": counts.encounters_fhir,
            "charge_lines": counts.charge_lines,
            "supply_lines": counts.supply_lines,
            "credit_lines": counts.credit_lines,
            "charge_lines_posted": counts.posted_lines,
            "charge_lines_held": dict(sorted(counts.held.items())),
            "claims_remitted": counts.claims_remitted,
            "remit_transactions_posted": counts.remit_transactions,
            "cash_receipts": len(ledger.receipts),
        },
        "journals": ledger.journals(),
        "inventory_movements": ledger.inventory_movements(),
        "cash_receipts": ledger.cash_receipts(),
        "faults": faults,
        "after_fix": {
            "crosswalk": {
                "table": "cdm",
                "cdm_code": UNKNOWN_CDM.code,
                "description": UNKNOWN_CDM.description,
                "revenue_account": UNKNOWN_CDM.revenue_account,
                "erp_item": None,
                "procedure_code": UNKNOWN_CDM.procedure_code,
            },
            "replay": unknown_fault["details"],
            "journals": after_fix.journals(),
        },
        "scenario": features,
        **bank,
    }
    _dump_json(out / "ground_truth.json", ground_truth)

    files = sorted(p for p in out.rglob("*") if p.is_file() and p.name != "manifest.json" and _ours(out, p))
    manifest = {
        "generator": "carefabric-sandbox",
        "generator_version": GENERATOR_VERSION,
        "args": {
            "seed": seed,
            "encounters": encounters,
            "days": days,
            "facilities": facilities,
            "date": start_date.isoformat(),
        },
        "files": [
            {"path": p.relative_to(out).as_posix(), "sha256": _sha256(p), "bytes": p.stat().st_size}
            for p in files
        ],
    }
    _dump_json(out / "manifest.json", manifest)
    return manifest


def _ours(out: Path, path: Path) -> bool:
    """Whether a file under ``out`` belongs to the generated layout (foreign files are not listed)."""
    rel = path.relative_to(out).parts
    return rel[0] in ("ehr", "sftp", "crosswalks", "bank") or (
        len(rel) == 1 and rel[0] in ("erp_master.json", "billing_seed.json", "ground_truth.json")
    )


def _write_hl7_encounter(
    batch: hl7_writer.BatchWriter,
    encounter: Encounter,
    slot: int,
    counts: _Counts,
    faults: list[dict[str, Any]],
    file_name: str,
) -> None:
    """The encounter's messages in time order: registration, charges, update, credits, discharge."""
    t0 = encounter.admit_time
    step = dt.timedelta(seconds=max(0, slot // 6))
    event = {"E": "A04", "O": "A04", "I": "A01"}[encounter.patient_class]
    _, segments = hl7_writer.adt_message(batch, encounter, event, t0)
    batch.write(segments)
    counts.messages[f"ADT^{event}"] += 1
    for index, line in enumerate(encounter.charges, start=1):
        line.set_id = index
    control_id, segments = hl7_writer.dft_message(
        batch, encounter, encounter.charges, t0 + step, malformed=encounter.malformed_dft
    )
    batch.write(segments)
    if encounter.malformed_dft:
        counts.messages["malformed"] += 1
        faults.append(
            {
                "fault": "hl7_parse_error",
                "exception": "HL7_PARSE_ERROR",
                "reference": file_name,
                "expect_open": True,
                "details": {
                    "path": f"ehr/{file_name}",
                    "message_index": batch.messages,
                    "encounter_id": encounter.encounter_id,
                    "held_lines": len(encounter.charges),
                    "why": "MSH ends after MSH-7: no MSH-9 message type, no MSH-10 control id",
                },
            }
        )
    else:
        counts.messages["DFT^P03"] += 1
    for line in encounter.charges:
        line.message_control_id = control_id
    if encounter.updated:
        _, segments = hl7_writer.adt_message(batch, encounter, "A08", t0 + 2 * step)
        batch.write(segments)
        counts.messages["ADT^A08"] += 1
    if encounter.credits:
        for index, line in enumerate(encounter.credits, start=1):
            line.set_id = index
        _, segments = hl7_writer.dft_message(batch, encounter, encounter.credits, t0 + 3 * step)
        batch.write(segments)
        counts.messages["DFT^P03"] += 1
    if encounter.patient_class == "E":
        _, segments = hl7_writer.adt_message(batch, encounter, "A03", t0 + 5 * step)
        batch.write(segments)
        counts.messages["ADT^A03"] += 1


def _account_lines(
    encounter: Encounter,
    ledger: Ledger,
    after_fix: Ledger,
    counts: _Counts,
    department_map: dict[tuple[str, str], str],
    active_cc: set[str],
    cdm_crosswalk: dict[str, CdmEntry],
    inactive_cc: str,
    held_inactive: list[str],
    faults: list[dict[str, Any]],
    *,
    file_name: str,
) -> None:
    """Apply the posting policy to every charge line of the encounter (held lines excluded)."""
    fac = encounter.facility
    for line, in_malformed in [(x, encounter.malformed_dft) for x in encounter.charges] + [
        (x, False) for x in encounter.credits
    ]:
        if in_malformed:
            counts.held["HL7_PARSE_ERROR"] += 1
            continue
        counts.charge_lines += 1
        if line.is_supply:
            counts.supply_lines += 1
        if line.transaction_type == "CD":
            counts.credit_lines += 1
        cc = department_map[(fac.code, line.department)]
        if line.cdm.code not in cdm_crosswalk:
            counts.held["UNKNOWN_CDM"] += 1
            assert cc in active_cc
            after_fix.add_charge(
                line.service_date,
                facility=fac.code,
                cost_center=cc,
                revenue_account=line.cdm.revenue_account,
                amount_cents=line.extended_cents,
            )
            faults.append(
                {
                    "fault": "unknown_cdm",
                    "exception": "UNKNOWN_CDM",
                    "reference": line.cdm.code,
                    "expect_open": True,
                    "details": {
                        "path": f"ehr/{file_name}",
                        "encounter_id": encounter.encounter_id,
                        "transaction_id": line.transaction_id,
                        "message_control_id": line.message_control_id,
                        "line_number": line.set_id,
                        "amount": format_cents(line.extended_cents),
                        "facility": fac.code,
                        "department": line.department,
                        "cost_center": cc,
                        "service_date": line.service_date.isoformat(),
                    },
                }
            )
            continue
        if cc == inactive_cc:
            counts.held["INACTIVE_COST_CENTER"] += 1
            held_inactive.append(line.transaction_id)
            continue
        counts.posted_lines += 1
        ledger.add_charge(
            line.service_date,
            facility=fac.code,
            cost_center=cc,
            revenue_account=line.cdm.revenue_account,
            amount_cents=line.extended_cents,
        )
        if line.cdm.erp_item is not None and line.cdm.unit_cost_cents is not None:
            ledger.add_supply(
                line.service_date,
                facility=fac.code,
                cost_center=cc,
                location=fac.location,
                item=line.cdm.erp_item,
                quantity=line.quantity,
                unit_cost_cents=line.cdm.unit_cost_cents,
            )


def _erp_master(
    facs: list[Facility],
    codes: list[str],
    inactive_fac: str,
    inactive_dept: str,
    inactive_cc: str,
    dates: list[dt.date],
) -> dict[str, Any]:
    """The ERP's master data: the inactive cost center is listed (inactive), the unknown payer is not."""
    cost_centers = [
        {
            "cost_center": cost_center(code, dept),
            "company_id": COMPANY,
            "facility": code,
            "department": dept,
            "name": f"{code} {DEPARTMENT_NAMES[dept]}",
            "active": True,
        }
        for code in codes
        for dept in DEPARTMENTS
    ]
    cost_centers.append(
        {
            "cost_center": inactive_cc,
            "company_id": COMPANY,
            "facility": inactive_fac,
            "department": inactive_dept,
            "name": f"{inactive_fac} {DEPARTMENT_NAMES[inactive_dept]} (retired)",
            "active": False,
        }
    )
    months = sorted({date.strftime("%Y-%m") for date in dates})
    first = dates[0].replace(day=1)
    previous = (first - dt.timedelta(days=1)).strftime("%Y-%m")
    return {
        "companies": [{"company_id": COMPANY, "name": COMPANY_NAME, "currency": CURRENCY}],
        "cost_centers": sorted(cost_centers, key=lambda c: c["cost_center"]),
        "gl_accounts": [
            {"account": account, "name": name, "type": kind, "active": True}
            for account, name, kind in GL_ACCOUNTS
        ],
        "items": [
            {
                "item": e.erp_item,
                "description": e.description,
                "unit_cost": format_cents(e.unit_cost_cents or 0),
                "uom": "EA",
                "active": True,
            }
            for e in CHARGEMASTER
            if e.erp_item
        ],
        "locations": [
            {"location": fac.location, "facility": fac.code, "name": f"{fac.name} STOREROOM"} for fac in facs
        ],
        "payers": [
            {"payer_id": p.payer_id, "name": p.name, "x12_id": p.x12_id, "active": True} for p in PAYERS
        ],
        "periods": [{"period": previous, "status": "closed"}]
        + [{"period": m, "status": "open"} for m in months],
    }


# --------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sandbox generate",
        description="Write a deterministic hospital-network scenario with its ground truth.",
    )
    parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    parser.add_argument("--encounters", type=int, default=60, help="encounters in total (default 60)")
    parser.add_argument("--days", type=int, default=1, help="business days (default 1)")
    parser.add_argument("--facilities", type=int, default=3, help="facilities F1..Fn (default 3)")
    parser.add_argument(
        "--date",
        type=dt.date.fromisoformat,
        default=dt.date(2025, 3, 14),
        help="first business date YYYY-MM-DD",
    )
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    return parser


def main(argv: list[str] | None = None) -> int:
    """CLI entry (``python -m sandbox generate ...`` calls this with the arguments after ``generate``)."""
    args = build_parser().parse_args(argv)
    try:
        manifest = generate(
            args.out,
            seed=args.seed,
            encounters=args.encounters,
            days=args.days,
            facilities=args.facilities,
            start_date=args.date,
        )
    except ValueError as exc:
        print(f"generate: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {len(manifest['files'])} files to {args.out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main(sys.argv[1:]))
