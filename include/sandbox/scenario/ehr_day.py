"""One business date of EHR extracts: an HL7 batch per facility and one FHIR NDJSON file."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from sandbox import hl7_writer
from sandbox.reference import CDM_BY_CODE, Encounter
from sandbox.scenario import ehr
from sandbox.scenario.common import World, rng_for
from sandbox.scenario.ehr import DayFeatures, Policy
from sandbox.scenario.remit import EarlierClaim


def build_day(world: World, policy: Policy, day_index: int, date: dt.date,
              history: list[Encounter]) -> list[EarlierClaim]:
    """Write the date's extracts; append its HL7 encounters to ``history`` (late charges of later
    dates pick from it) and return the claims billing will have sent for them."""
    first_day = day_index == 0
    by_fac: dict[str, list[tuple[int, str]]] = {code: [] for code in world.codes}
    for index in range(world.day_counts[day_index]):
        channel = "fhir" if index % ehr.FHIR_EVERY == ehr.FHIR_EVERY - 1 else "hl7"
        by_fac[world.codes[index % len(world.codes)]].append((world.seq.next(), channel))
    plan = DayFeatures.draw(world, date, by_fac, first_day, history)
    claims: list[EarlierClaim] = []
    today: list[Encounter] = []
    fhir_path = world.out / "ehr" / f"fhir_{date:%Y%m%d}.ndjson"
    with fhir_path.open("w", encoding="utf-8", newline="") as fhir_handle:
        for fac in world.facilities:
            rng = rng_for(world.seed, "ehr", date, fac.code)
            entries = by_fac[fac.code]
            slot = max(1, 86000 // max(1, len(entries)))
            file_name = f"{fac.code}_{date:%Y%m%d}.hl7"
            with (world.out / "ehr" / file_name).open("w", encoding="ascii", newline="") as handle:
                batch = hl7_writer.BatchWriter(handle, fac, date, file_name)
                for late in (e for e in plan.late if e.facility.code == fac.code):
                    _late_charge(world, policy, batch, late, date, file_name)
                hl7_position = 0
                for order, (seq, channel) in enumerate(entries):
                    admit = dt.datetime.combine(date, dt.time(0, 5)) + dt.timedelta(seconds=order * 86000 // len(entries))
                    forced = ("E", "I", "O")[hl7_position] if first_day and channel == "hl7" and fac.code == "F1" \
                        and hl7_position < 3 else None
                    encounter = ehr.make_encounter(rng, seq, fac, date, admit, slot, channel=channel, patient_class=forced)
                    if channel == "fhir":
                        ehr.write_fhir(world, policy, fhir_handle, encounter, date, fhir_path.name)
                        continue
                    world.counts.encounters_hl7 += 1
                    if first_day:
                        ehr.first_day_faults(encounter, policy, hl7_position, world.codes)
                    if plan.fractional == (fac.code, seq):
                        ehr.add_fractional(world, encounter, rng_for(world.seed, "fraction", date))
                    ehr.maybe_credit(world, policy, rng, encounter,
                                     forced=first_day and fac.code == "F1" and hl7_position == 2)
                    hl7_position += 1
                    write_encounter(world, batch, encounter, slot, file_name)
                    ehr.account_lines(world, policy, encounter, date, file_name=file_name)
                    today.append(encounter)
                    claim = ehr.earlier_claim(encounter, policy)
                    if claim is not None and plan.fractional != (fac.code, seq):
                        claims.append(claim)
                if plan.cancel_facility == fac.code:
                    _cancelled_registration(world, batch, rng, fac, date, slot)
                batch.close()
            world.counts.files["hl7"] += 1
    world.counts.files["fhir"] += 1
    history += today
    return claims


def write_encounter(world: World, batch: hl7_writer.BatchWriter, encounter: Encounter, slot: int,
                    file_name: str) -> None:
    """The encounter's messages in time order: registration, charges, update, credits, discharge."""
    counts = world.counts
    t0 = encounter.admit_time
    step = dt.timedelta(seconds=max(0, slot // 6))
    event = {"E": "A04", "O": "A04", "I": "A01"}[encounter.patient_class]
    batch.write(hl7_writer.adt_message(batch, encounter, event, t0)[1])
    counts.messages[f"ADT^{event}"] += 1
    for index, line in enumerate(encounter.charges, start=1):
        line.set_id = index
    control_id, segments = hl7_writer.dft_message(batch, encounter, encounter.charges, t0 + step,
                                                  malformed=encounter.malformed_dft)
    batch.write(segments)
    if encounter.malformed_dft:
        counts.messages["malformed"] += 1
        world.faults.append(_parse_fault(encounter, batch, file_name))
    else:
        counts.messages["DFT^P03"] += 1
    for line in encounter.charges:
        line.message_control_id = control_id
    if encounter.updated:
        batch.write(hl7_writer.adt_message(batch, encounter, "A08", t0 + 2 * step)[1])
        counts.messages["ADT^A08"] += 1
    if encounter.credits:
        for index, line in enumerate(encounter.credits, start=1):
            line.set_id = index
        control_id, segments = hl7_writer.dft_message(batch, encounter, encounter.credits, t0 + 3 * step)
        for line in encounter.credits:
            line.message_control_id = control_id
        batch.write(segments)
        counts.messages["DFT^P03"] += 1
    if encounter.patient_class == "E":
        batch.write(hl7_writer.adt_message(batch, encounter, "A03", t0 + 5 * step)[1])
        counts.messages["ADT^A03"] += 1


def _parse_fault(encounter: Encounter, batch: hl7_writer.BatchWriter, file_name: str) -> dict[str, Any]:
    return {
        "fault": "hl7_parse_error", "exception": "HL7_PARSE_ERROR", "reference": file_name, "expect_open": True,
        "business_date": encounter.service_date.isoformat(),
        "details": {
            "path": f"ehr/{file_name}", "message_index": batch.messages, "encounter_id": encounter.encounter_id,
            "held_lines": len(encounter.charges),
            "why": "MSH ends after MSH-7: no MSH-9 message type, no MSH-10 control id",
        },
    }


def _late_charge(world: World, policy: Policy, batch: hl7_writer.BatchWriter, encounter: Encounter, date: dt.date,
                 file_name: str) -> None:
    """A lab result charged days after the visit: FT1-4 is the visit's date, the journal is today's."""
    rng = rng_for(world.seed, "late", date, encounter.encounter_id)
    cdm = CDM_BY_CODE[rng.choice(("CDM2001", "CDM2002", "CDM2003", "CDM2004", "CDM2005"))]
    seq = int(encounter.encounter_id[1:])
    line = ehr.make_line(seq, 60 + (date - encounter.service_date).days, encounter.service_date, "CG", cdm, 1, "LAB")
    line.set_id = 1
    moment = dt.datetime.combine(date, dt.time(0, 1))
    control_id, segments = hl7_writer.dft_message(batch, encounter, [line], moment)
    line.message_control_id = control_id
    batch.write(segments)
    world.counts.messages["DFT^P03"] += 1
    late = dataclasses.replace(encounter, charges=[line], credits=[], malformed_dft=False)
    ehr.account_lines(world, policy, late, date, file_name=file_name)
    world.feature("late_charges", {
        "business_date": date.isoformat(), "service_date": encounter.service_date.isoformat(),
        "encounter_id": encounter.encounter_id, "transaction_id": line.transaction_id, "facility": encounter.facility.code,
        "cost_center": policy.department_map[(encounter.facility.code, "LAB")], "message_control_id": control_id,
        "line_key": f"{hl7_writer.SENDING_APP}|{encounter.facility.code}|{control_id}|{line.set_id}",
        "amount_cents": line.extended_cents, "posted": policy.postable(encounter.facility.code, line),
    })


def _cancelled_registration(world: World, batch: hl7_writer.BatchWriter, rng: Any, fac: Any, date: dt.date,
                            slot: int) -> None:
    """A registration made in error and cancelled (A04 then A11): no charge, nothing to post."""
    seq = world.seq.next()
    admit = dt.datetime.combine(date, dt.time(23, 50))
    encounter = ehr.make_encounter(rng, seq, fac, date, admit, slot, channel="hl7", patient_class="O", charged=False)
    batch.write(hl7_writer.adt_message(batch, encounter, "A04", admit)[1])
    batch.write(hl7_writer.adt_message(batch, encounter, "A11", admit + dt.timedelta(minutes=5))[1])
    world.counts.messages["ADT^A04"] += 1
    world.counts.messages["ADT^A11"] += 1
    world.feature("cancelled_registrations", {"encounter_id": encounter.encounter_id, "facility": fac.code,
                                              "business_date": date.isoformat()})
