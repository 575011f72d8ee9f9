"""HL7 v2.5.1 writer for the sandbox EHR: ADT and DFT^P03 messages in FHS/BHS batch files.

The output is shaped like a real Epic-style interface extract, so the pipeline's parser meets
what it will meet in production:

- segments end with ``\\r``; messages follow each other directly (no MLLP framing);
- the file is ``FHS`` / ``BHS`` ... messages ... ``BTS`` (message count) / ``FTS``;
- MSH-3 ``EPICCARE``, MSH-4 the facility code (``F1``), MSH-10 a control id unique per sender;
- PID-3 repeats: an enterprise id (type ``PI``) first, the MRN (type ``MR``) second, so a parser
  that takes the first repetition gets it wrong;
- PV1-19 is the encounter id, PV1-39 the servicing facility;
- FT1: FT1-2 transaction id, FT1-4 date, FT1-6 ``CG``/``CD``, FT1-7 ``CDM^description^CDM``,
  FT1-10 quantity, FT1-11 extended amount, FT1-12 unit amount, FT1-13 ``DEPT^name``,
  FT1-25 ``CPT^description^C4``. A ``CD`` credit comes both ways the posting policy allows:
  signed (negative FT1-10 *and* FT1-11) or, for a line marked ``unsigned``, with positive numbers
  under ``CD`` (the transaction type alone says it is a credit). A fractional quantity is written
  as a decimal (``2.5``) with FT1-11 the extended amount rounded half up to the cent;
- ``ADT^A11`` cancels a registration (the visit was registered in error, no charge followed);
- free text is escaped (``&`` -> ``\\T\\``, ``|`` -> ``\\F\\`` ...): chargemaster descriptions such as
  ``PT & INR`` arrive as ``PT \\T\\ INR``.

The injected malformed message is a DFT^P03 whose MSH stops after MSH-7: it has no MSH-9
message type and no MSH-10 control id, so no parser can route or key it. Its EVN/PID/PV1/FT1
segments follow as usual; the rest of the batch is well formed.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import TextIO

from sandbox.reference import DEPARTMENT_NAMES, ChargeLine, Encounter, Facility

SENDING_APP = "EPICCARE"
RECEIVING_APP = "CAREFABRIC"
VERSION = "2.5.1"
SEG = "\r"

_ESCAPES = (("\\", "\\E\\"), ("|", "\\F\\"), ("^", "\\S\\"), ("&", "\\T\\"), ("~", "\\R\\"))


def escape(text: str) -> str:
    """Escape a free-text value with the default delimiters ``|^~\\&``."""
    for raw, escaped in _ESCAPES:
        text = text.replace(raw, escaped)
    return text


def ts(moment: dt.datetime) -> str:
    """HL7 DTM to the second."""
    return moment.strftime("%Y%m%d%H%M%S")


def _segment(name: str, fields: dict[int, str]) -> str:
    """A segment from 1-based field positions (missing positions stay empty)."""
    width = max(fields) if fields else 0
    values = [fields.get(index, "") for index in range(1, width + 1)]
    return "|".join([name, *values]) + SEG


def _money(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    cents = abs(cents)
    return f"{sign}{cents // 100}.{cents % 100:02d}"


def msh(facility: Facility, moment: dt.datetime, message_type: str, control_id: str) -> str:
    """MSH with the sending application/facility and the message type ``ADT^A01^ADT_A01``."""
    return (
        f"MSH|^~\\&|{SENDING_APP}|{facility.code}|{RECEIVING_APP}|CF01|{ts(moment)}||"
        f"{message_type}|{control_id}|P|{VERSION}|||AL|NE" + SEG
    )


def truncated_msh(facility: Facility, moment: dt.datetime) -> str:
    """The injected fault: an MSH that ends after MSH-7 (no type, no control id)."""
    return f"MSH|^~\\&|{SENDING_APP}|{facility.code}|{RECEIVING_APP}|CF01|{ts(moment)}" + SEG


def pid(encounter: Encounter) -> str:
    patient = encounter.patient
    return _segment(
        "PID",
        {
            1: "1",
            3: f"{patient.enterprise_id}^^^EPI^PI~{patient.mrn}^^^{encounter.facility.code}^MR",
            5: f"{escape(patient.family)}^{escape(patient.given)}^{escape(patient.middle)}",
            7: patient.birth_date.strftime("%Y%m%d"),
            8: patient.sex,
            11: f"{escape(patient.street)}^^{escape(patient.city)}^ST^{patient.zip_code}",
        },
    )


def pv1(encounter: Encounter, *, discharged: bool) -> str:
    doc_id, doc_family, doc_given = encounter.attending
    fields = {
        1: "1",
        2: encounter.patient_class,
        3: f"{encounter.point_of_care}^^^{encounter.facility.code}",
        7: f"{doc_id}^{doc_family}^{doc_given}",
        10: encounter.hospital_service,
        19: encounter.encounter_id,
        20: encounter.payer.filing_indicator,
        39: encounter.facility.code,
        44: ts(encounter.admit_time),
    }
    if discharged and encounter.discharge_time is not None:
        fields[45] = ts(encounter.discharge_time)
    return _segment("PV1", fields)


def in1(encounter: Encounter) -> str:
    payer = encounter.payer
    return _segment(
        "IN1",
        {
            1: "1",
            2: payer.plan_code,
            3: payer.payer_id,
            4: escape(payer.name),
            36: encounter.patient.member_id,
        },
    )


def evn(event: str, moment: dt.datetime) -> str:
    return f"EVN|{event}|{ts(moment)}" + SEG


def _quantity(value: object) -> str:
    """An integer as is, a fraction as a plain decimal without trailing zeros (``2.5``)."""
    text = f"{Decimal(str(value)).normalize():f}"
    return text


def ft1(line: ChargeLine, encounter: Encounter) -> str:
    """One FT1 (see the module docstring for the field layout)."""
    cdm = line.cdm
    procedure = f"{cdm.procedure_code}^{escape(cdm.description)}^C4" if cdm.procedure_code else ""
    return _segment(
        "FT1",
        {
            1: str(line.set_id),
            2: line.transaction_id,
            4: line.service_date.strftime("%Y%m%d"),
            5: line.service_date.strftime("%Y%m%d"),
            6: line.transaction_type,
            7: f"{cdm.code}^{escape(cdm.description)}^CDM",
            8: escape(cdm.description),
            10: _quantity(abs(line.quantity) if line.unsigned else line.quantity),
            11: _money(abs(line.extended_cents) if line.unsigned else line.extended_cents),
            12: _money(line.unit_cents),
            13: f"{line.department}^{escape(_department_name(line.department))}",
            16: f"{line.department}^^^{encounter.facility.code}",
            20: encounter.attending[0],
            25: procedure,
        },
    )


def _department_name(code: str) -> str:
    return DEPARTMENT_NAMES.get(code, code)


class BatchWriter:
    """Writes one facility-day FHS/BHS batch file message by message (streaming).

    ``messages`` counts every MSH written (BTS-1), including the malformed one.
    """

    def __init__(self, handle: TextIO, facility: Facility, business_date: dt.date, file_name: str) -> None:
        self.handle = handle
        self.facility = facility
        self.business_date = business_date
        self.messages = 0
        self._counter = 0
        created = dt.datetime.combine(business_date, dt.time(23, 59, 0))
        batch_id = f"{facility.code}{business_date:%Y%m%d}"
        handle.write(
            f"FHS|^~\\&|{SENDING_APP}|{facility.code}|{RECEIVING_APP}|CF01|{ts(created)}||{file_name}|"
            f"DAILY ADT AND CHARGE EXTRACT|{batch_id}" + SEG
        )
        handle.write(
            f"BHS|^~\\&|{SENDING_APP}|{facility.code}|{RECEIVING_APP}|CF01|{ts(created)}||{batch_id}-1|"
            f"ADT AND DFT|{batch_id}-1" + SEG
        )

    def next_control_id(self) -> str:
        """MSH-10: facility + date + sequence, unique for the sender."""
        self._counter += 1
        return f"{self.facility.code}{self.business_date:%Y%m%d}{self._counter:06d}"

    def write(self, segments: list[str]) -> None:
        self.handle.write("".join(segments))
        self.messages += 1

    def close(self) -> None:
        self.handle.write(f"BTS|{self.messages}" + SEG)
        self.handle.write("FTS|1" + SEG)


ADT_STRUCTURE = {"A01": "ADT_A01", "A03": "ADT_A03", "A04": "ADT_A01", "A08": "ADT_A01", "A11": "ADT_A09"}


def adt_message(
    writer: BatchWriter, encounter: Encounter, event: str, moment: dt.datetime
) -> tuple[str, list[str]]:
    """An ADT message; returns (control id, segments)."""
    control_id = writer.next_control_id()
    segments = [
        msh(encounter.facility, moment, f"ADT^{event}^{ADT_STRUCTURE[event]}", control_id),
        evn(event, moment),
        pid(encounter),
        pv1(encounter, discharged=event == "A03"),
    ]
    if event != "A03":
        segments.append(in1(encounter))
    return control_id, segments


def dft_message(
    writer: BatchWriter,
    encounter: Encounter,
    lines: list[ChargeLine],
    moment: dt.datetime,
    *,
    malformed: bool = False,
) -> tuple[str | None, list[str]]:
    """A DFT^P03 with one FT1 per line; ``malformed`` truncates its MSH (the injected fault)."""
    if malformed:
        control_id = None
        head = truncated_msh(encounter.facility, moment)
    else:
        control_id = writer.next_control_id()
        head = msh(encounter.facility, moment, "DFT^P03^DFT_P03", control_id)
    segments = [head, evn("P03", moment), pid(encounter), pv1(encounter, discharged=False)]
    segments.extend(ft1(line, encounter) for line in lines)
    segments.append(in1(encounter))
    return control_id, segments
