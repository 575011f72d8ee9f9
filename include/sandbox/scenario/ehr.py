"""The EHR's side of a day: encounters, their charge lines, and the posting policy applied to them.

What happens each day: ``encounters / days`` encounters spread round-robin over the facilities
(every 20th one FHIR-only); each HL7 encounter registers (A04, or A01 for an inpatient), may be
updated (A08), has one DFT^P03 with its charge and supply lines, sometimes a second DFT^P03
with a ``CD`` credit, and ED visits are discharged (A03). Placed per day by the seed:

- a supply line with a fractional quantity (``2.5``), its cost rounded half up per line;
- ``CD`` credits sent both signed and unsigned (positive FT1-10/FT1-11 under ``CD``);
- a registration cancelled by ``ADT^A11`` (no charge follows);
- from the second date on, late charges: a DFT^P03 for an encounter of an earlier date whose
  FT1-4 service date is that earlier date; it posts on the business date that carried it.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from carefabric.money import format_cents
from sandbox import fhir_writer
from sandbox.reference import (
    ATTENDINGS,
    CDM_BY_CODE,
    PAYERS,
    UNKNOWN_CDM,
    CdmEntry,
    ChargeLine,
    Encounter,
    Facility,
    fault_facility,
)
from sandbox.scenario.common import World, cents_of, encounter_id, make_patient, rng_for
from sandbox.scenario.remit import EarlierClaim

FHIR_EVERY = 20  # every 20th encounter of a day is FHIR-only
_CLASS_SETUP = {"E": ("EMR", "ED"), "O": ("OPS", "OPC"), "I": ("MED", "MEDSURG")}
_LABS = ("CDM2001", "CDM2002", "CDM2003", "CDM2004", "CDM2005")
_FRACTIONS = (Decimal("0.5"), Decimal("1.5"), Decimal("2.5"), Decimal("0.25"))


@dataclass(slots=True)
class Policy:
    """The governed mappings as the generator wrote them, and the faults built into them."""

    department_map: dict[tuple[str, str], str]
    cdm_codes: set[str]
    inactive: tuple[str, str, str]  # facility, department, retired cost center
    held_inactive: list[str] = field(default_factory=list)

    def postable(self, fac: str, line: ChargeLine) -> bool:
        return line.cdm.code in self.cdm_codes and self.department_map[(fac, line.department)] != self.inactive[2]


def _charge_plan(rng: random.Random, patient_class: str) -> list[tuple[CdmEntry, int]]:
    """Chargemaster lines an encounter of this class typically produces: (cdm, quantity)."""
    cdm = CDM_BY_CODE
    lines: list[tuple[CdmEntry, int]] = []
    if patient_class == "E":
        lines.append((cdm[rng.choice(("CDM1001", "CDM1002", "CDM1003"))], 1))
        lines += [(cdm[code], 1) for code in rng.sample(_LABS, rng.randint(0, 2))]
        if rng.random() < 0.4:
            lines.append((cdm[rng.choice(("CDM3001", "CDM3002"))], 1))
        if rng.random() < 0.4:
            lines.append((cdm[rng.choice(("CDM4001", "CDM4003"))], rng.randint(1, 2)))
        if rng.random() < 0.5:
            lines.append((cdm[rng.choice(("CDM7001", "CDM7002"))], rng.randint(1, 2)))
    elif patient_class == "O":
        lines += [(cdm[code], 1) for code in rng.sample(_LABS, rng.randint(1, 3))]
        if rng.random() < 0.4:
            lines.append((cdm[rng.choice(("CDM3001", "CDM3003"))], 1))
    else:
        lines.append((cdm["CDM6001"], 1))
        lines += [(cdm[code], 1) for code in rng.sample(_LABS, rng.randint(1, 3))]
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


def make_line(seq: int, index: int, date: dt.date, kind: str, cdm: CdmEntry, qty: int | Decimal,
              dept: str) -> ChargeLine:
    return ChargeLine(transaction_id=f"T{seq:07d}{index:02d}", service_date=date, transaction_type=kind, cdm=cdm,
                      quantity=qty, unit_cents=cdm.price_cents, extended_cents=cents_of(cdm.price_cents * Decimal(qty) / 100),
                      department=dept)


def make_encounter(rng: random.Random, seq: int, fac: Facility, date: dt.date, admit: dt.datetime, slot: int, *,
                   channel: str, patient_class: str | None = None, charged: bool = True) -> Encounter:
    patient_class = patient_class or rng.choices(("E", "O", "I"), weights=(35, 40, 25))[0]
    payer = rng.choice(PAYERS)
    service, point_of_care = _CLASS_SETUP[patient_class]
    encounter = Encounter(
        encounter_id=encounter_id(seq), facility=fac, patient=make_patient(rng, seq, payer),
        patient_class=patient_class, hospital_service=service, point_of_care=point_of_care,
        attending=rng.choice(ATTENDINGS), payer=payer, admit_time=admit,
        discharge_time=admit + dt.timedelta(seconds=slot * 5 // 6) if patient_class == "E" else None,
        service_date=date, channel=channel,
    )
    if charged:
        for index, (cdm, qty) in enumerate(_charge_plan(rng, patient_class), start=1):
            encounter.charges.append(make_line(seq, index, date, "CG", cdm, qty, cdm.department))
    encounter.updated = rng.random() < 0.2
    return encounter


@dataclass(slots=True)
class DayFeatures:
    """Where the day's EHR features sit: (facility, encounter seq) picks drawn from the seed."""

    fractional: tuple[str, int] | None
    cancel_facility: str
    late: list[Encounter]

    @classmethod
    def draw(cls, world: World, date: dt.date, by_fac: dict[str, list[tuple[int, str]]], first_day: bool,
             history: list[Encounter]) -> DayFeatures:
        rng = rng_for(world.seed, "ehr-features", date)
        skip = 3 if first_day else 0  # the first date's fixed fault encounters keep their places
        candidates = [(code, seq) for code, entries in by_fac.items()
                      for position, (seq, _) in enumerate([e for e in entries if e[1] == "hl7"]) if position >= skip]
        late = [e for e in history if not e.malformed_dft]
        picks = rng.sample(late, min(len(late), rng.randint(1, 2))) if late and not first_day else []
        return cls(rng.choice(candidates) if candidates else None, rng.choice(world.codes), picks)


def account_lines(world: World, policy: Policy, encounter: Encounter, date: dt.date, *, file_name: str) -> None:
    """Apply the posting policy to every charge line of the encounter (held lines excluded).

    Journal date = the business date that carried the line, whatever its FT1-4 service date."""
    fac = encounter.facility
    counts = world.counts
    for line, in_malformed in [(x, encounter.malformed_dft) for x in encounter.charges] + [
        (x, False) for x in encounter.credits
    ]:
        if in_malformed:
            counts.held["HL7_PARSE_ERROR"] += 1
            continue
        counts.charge_lines += 1
        counts.supply_lines += line.is_supply
        counts.credit_lines += line.transaction_type == "CD"
        cc = policy.department_map[(fac.code, line.department)]
        if line.cdm.code not in policy.cdm_codes:
            counts.held["UNKNOWN_CDM"] += 1
            world.after_fix.add_charge(date, facility=fac.code, cost_center=cc,
                                       revenue_account=line.cdm.revenue_account, amount_cents=line.extended_cents)
            world.faults.append(_unknown_cdm_fault(encounter, line, cc, file_name, date))
            continue
        if cc == policy.inactive[2]:
            counts.held["INACTIVE_COST_CENTER"] += 1
            policy.held_inactive.append(line.transaction_id)
            continue
        counts.posted_lines += 1
        world.ledger.add_charge(date, facility=fac.code, cost_center=cc, revenue_account=line.cdm.revenue_account,
                                amount_cents=line.extended_cents)
        if line.cdm.erp_item is not None and line.cdm.unit_cost_cents is not None:
            world.ledger.add_supply(date, facility=fac.code, cost_center=cc, location=fac.location,
                                    item=line.cdm.erp_item, quantity=line.quantity,
                                    unit_cost_cents=line.cdm.unit_cost_cents)


def _unknown_cdm_fault(encounter: Encounter, line: ChargeLine, cc: str, file_name: str, date: dt.date) -> dict[str, Any]:
    return {
        "fault": "unknown_cdm", "exception": "UNKNOWN_CDM", "reference": line.cdm.code, "expect_open": True,
        "business_date": date.isoformat(),
        "details": {
            "path": f"ehr/{file_name}", "encounter_id": encounter.encounter_id, "transaction_id": line.transaction_id,
            "message_control_id": line.message_control_id, "line_number": line.set_id,
            "amount": format_cents(line.extended_cents), "facility": encounter.facility.code,
            "department": line.department, "cost_center": cc, "service_date": line.service_date.isoformat(),
        },
    }


def first_day_faults(encounter: Encounter, policy: Policy, position: int, codes: list[str]) -> None:
    """The first date's fixed fault lines: an unknown CDM at F1, a retired cost center's line,
    a truncated MSH at the third facility, an A08 at F1."""
    fac, seq, date = encounter.facility.code, int(encounter.encounter_id[1:]), encounter.service_date
    inactive_fac, inactive_dept, _ = policy.inactive
    if fac == codes[0] and position == 0:
        encounter.charges.append(make_line(seq, len(encounter.charges) + 1, date, "CG", UNKNOWN_CDM, 1, "LAB"))
    if fac == inactive_fac and position == 0 and not any(x.department == inactive_dept for x in encounter.charges):
        encounter.charges.append(make_line(seq, len(encounter.charges) + 1, date, "CG", CDM_BY_CODE["CDM4001"], 1,
                                           "PHARM"))
    if fac == fault_facility(codes, 3) and position == 1:
        encounter.malformed_dft = True
    if fac == "F1" and position == 1:
        encounter.updated = True


def maybe_credit(world: World, policy: Policy, rng: random.Random, encounter: Encounter, forced: bool) -> None:
    """A later DFT^P03 reversing the last reversible line with a ``CD`` credit, signed or not."""
    if not (forced or rng.random() < 0.04) or encounter.malformed_dft:
        return
    reversible = [x for x in encounter.charges if not x.is_supply and policy.postable(encounter.facility.code, x)]
    if not reversible:
        return
    original = reversible[-1]
    seq = int(encounter.encounter_id[1:])
    credit = make_line(seq, 50 + len(encounter.credits), encounter.service_date, "CD", original.cdm,
                       -original.quantity, original.department)
    credit.unsigned = forced or rng.random() < 0.5
    encounter.credits.append(credit)
    world.feature("credits", {"transaction_id": credit.transaction_id, "reverses": original.transaction_id,
                              "unsigned": credit.unsigned})


def add_fractional(world: World, encounter: Encounter, rng: random.Random) -> None:
    """A supply line whose quantity is a fraction (half a roll, a quarter vial)."""
    seq = int(encounter.encounter_id[1:])
    cdm = CDM_BY_CODE[rng.choice(("CDM7001", "CDM7002", "CDM7004", "CDM7005"))]
    line = make_line(seq, len(encounter.charges) + 1, encounter.service_date, "CG", cdm, rng.choice(_FRACTIONS),
                     cdm.department)
    encounter.charges.append(line)
    world.feature("fractional_quantities", {"transaction_id": line.transaction_id, "quantity": str(line.quantity),
                                            "amount": format_cents(line.extended_cents)})


def earlier_claim(encounter: Encounter, policy: Policy) -> EarlierClaim | None:
    """The claim billing sends for a finished, cleanly posted HL7 encounter (payable later)."""
    lines = encounter.charges
    if (encounter.channel != "hl7" or encounter.malformed_dft or encounter.credits or not lines
            or not all(policy.postable(encounter.facility.code, x) and isinstance(x.quantity, int) for x in lines)):
        return None
    return EarlierClaim(int(encounter.encounter_id[1:]), encounter.facility.code, encounter.payer.payer_id,
                        encounter.service_date, encounter.patient,
                        tuple((x.cdm, int(x.quantity), x.transaction_id) for x in lines))


def write_fhir(world: World, policy: Policy, handle: Any, encounter: Encounter, date: dt.date, file_name: str) -> None:
    world.counts.encounters_fhir += 1
    for name, number in fhir_writer.write_encounter(handle, encounter).items():
        world.counts.fhir[name] += number
    account_lines(world, policy, encounter, date, file_name=file_name)
