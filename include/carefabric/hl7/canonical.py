"""HL7 v2 message -> canonical ``Encounter`` and ``Charge`` records.

Routed message types: ADT A01 A03 A04 A08 A11 A13 and DFT^P03. Anything else (ORU^R01, ADT^A02,
ACK, ...) comes back with ``skipped_reason`` set: it is stored as skipped, not as an exception.

Decisions (pinned by tests/test_hl7_reader.py):

* Patient: PID-3 repetition whose identifier type (CX-5) is ``MR``; without one, the first
  repetition and a warning. ``patient_token = phi.token(mrn, kind="mrn")``.
* Visit number (PV1-19) is the encounter id. An ADT without one still yields its Encounter,
  with ``encounter_id == ""`` and a warning, so the registration is not lost and downstream
  code can see it has nothing to join on; the id is never invented from MSH-10 (that would
  create a phantom encounter per message). A DFT^P03 without one is an ``HL7ParseError``:
  its charges could not be attached to any encounter or claim.
* Facility: PV1-39 servicing facility, else MSH-4 sending facility.
* Sender (``source``): ``MSH-3|MSH-4``, each the HD namespace id (component 1, else the
  universal id in component 2). With MSH-10 it is the message's idempotency key.
* FT1 amounts: FT1-11 and FT1-12 may be a CP/MO composite (``12.50^USD`` or ``12.50&USD``):
  the number is component 1, sub-component 1. Empty FT1-10 quantity means 1. Empty FT1-11 is
  FT1-10 x FT1-12; both empty marks the line ``needs_price`` (priced from the chargemaster at
  mapping, or held as ``UNPRICED_CHARGE``). When both are given and disagree, FT1-11 wins with
  a warning.
* Sign of charge lines (FT1-6 ``CG``/``CD``): a line is a reversal when its type is ``CD`` or
  its quantity or amount is negative; a reversal gets negative quantity *and* negative
  extended amount (``CD`` with ``1`` and ``12.50`` becomes ``-1`` and ``-12.50``), so summing
  ``extended_amount`` nets credits against charges and inventory sees the return. A ``CG``
  whose quantity and amount have opposite signs gets the same treatment plus a warning. The
  unit amount stays a (positive) price. ``PY``/``AJ`` lines keep the signs the sender wrote.
* FT1-1 set id is the line number (1-based position when empty); a repeated set id is an error
  because ``Charge.line_key`` must be unique per message.
* Dates: ``YYYYMMDD[HHMM[SS[.S]]][+/-ZZZZ]`` strictly (see ``datatypes``); a bad FT1-4, MSH-7,
  PV1-44 or PV1-45 is an error. PID-7 birth date is PHI kept as text: a bad one is a warning.
* PHI: reasons and warnings name segments, positions and fields (``FT1 2: FT1-10 quantity is
  not an HL7 number``), never a value read from the message: a sender that shifts a field can put
  a patient's name anywhere, and reasons reach the exception queue, logs and the console.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from carefabric import phi
from carefabric.canonical import Charge, Encounter
from carefabric.hl7.datatypes import is_hl7_date, parse_datetime
from carefabric.hl7.errors import HL7ParseError
from carefabric.hl7.escapes import Delimiters, unescape
from carefabric.hl7.framing import RawMessage
from carefabric.hl7.message import Message, parse, peek_control_id
from carefabric.hl7.values import CODES, amounts, is_code, opt_code, type_label

__all__ = ["ADT_EVENTS", "CanonicalResult", "ROUTED_TYPES", "canonicalize", "to_canonical", "type_label"]

ADT_EVENTS = frozenset(("A01", "A03", "A04", "A08", "A11", "A13"))
ROUTED_TYPES = frozenset([f"ADT^{e}" for e in ADT_EVENTS] + ["DFT^P03"])


@dataclass(slots=True)
class CanonicalResult:
    """What one message means to carefabric: records to route, or why it is skipped."""

    message_type: str  # MSH-9.1^MSH-9.2, e.g. "DFT^P03"
    control_id: str  # MSH-10
    sender: str  # "MSH-3|MSH-4"
    encounter: Encounter | None = None
    charges: list[Charge] = field(default_factory=list)
    skipped_reason: str | None = None
    warnings: list[str] = field(default_factory=list)
    version: str | None = None  # MSH-12

    @property
    def skipped(self) -> bool:
        return self.skipped_reason is not None




_Reader = Callable[[str], str]
_READERS: dict[tuple[Delimiters, str], tuple[_Reader, _Reader]] = {}


def _readers(d: Delimiters, enc: str) -> tuple[_Reader, _Reader]:
    """``first(value)`` and ``second(value)`` for one delimiter set, as closures.

    ``first`` is repetition 1, component 1, sub-component 1 of a raw value, decoded; ``second``
    the same for component 2. The mapping reads about fifty values per DFT^P03, so these are
    the hot path: closures over local delimiter characters are the cheapest call CPython has.
    """
    hit = _READERS.get((d, enc))
    if hit is not None:
        return hit
    rep, comp, sub, esc = d.repetition, d.component, d.subcomponent, d.escape

    def first(value: str) -> str:
        if rep in value:
            value = value.split(rep, 1)[0]
        if comp in value:
            value = value.split(comp, 1)[0]
        if sub in value:
            value = value.split(sub, 1)[0]
        if esc in value:
            return unescape(value, d, enc)
        return value

    def second(value: str) -> str:
        if rep in value:
            value = value.split(rep, 1)[0]
        comps = value.split(comp, 2)
        if len(comps) < 2:
            return ""
        value = comps[1]
        if sub in value:
            value = value.split(sub, 1)[0]
        if esc in value:
            return unescape(value, d, enc)
        return value

    if len(_READERS) < 64:
        _READERS[(d, enc)] = (first, second)
    return first, second


def _pad(fields: list[str] | None, size: int) -> list[str]:
    """Fields padded with '' so that fields[size - 1] exists (absent and empty mean the same)."""
    if fields is None:
        return [""] * size
    n = len(fields)
    return fields if n >= size else fields + [""] * (size - n)


def _ts(text: str, label: str, cid: str) -> dt.datetime | None:
    if not text:
        return None
    try:
        return parse_datetime(text)
    except ValueError as exc:
        raise HL7ParseError(f"{label} {exc}", cid) from None


def _name(value: str, d: Delimiters, first: _Reader) -> str | None:
    """PID-5 first repetition, components decoded, joined by '^' without trailing empties."""
    if not value:
        return None
    if d.repetition in value:
        value = value.split(d.repetition, 1)[0]
    parts = [first(c) for c in value.split(d.component)]
    while parts and not parts[-1]:
        parts.pop()
    return "^".join(parts) or None


def _mrn(pid3: str, d: Delimiters, first: _Reader, warnings: list[str]) -> str | None:
    """PID-3 identifier of type MR (CX-5), else the first repetition with a warning."""
    if not pid3:
        warnings.append("PID-3 patient identifier is empty: no patient token")
        return None
    reps = pid3.split(d.repetition) if d.repetition in pid3 else [pid3]
    comp = d.component
    for rep in reps:
        comps = rep.split(comp, 5)
        if len(comps) > 4 and first(comps[4]) == "MR":
            mrn = first(comps[0])
            break
    else:
        comps = reps[0].split(comp, 5)
        id_type = first(comps[4]) if len(comps) > 4 else ""
        mrn = first(comps[0])
        kind = "empty" if not id_type else id_type if id_type.isalnum() and len(id_type) <= 5 else "not a code"
        warnings.append(f"PID-3 has no identifier of type MR; used the first repetition (CX-5 type {kind})")
    if not mrn:
        warnings.append("PID-3 patient identifier is empty: no patient token")
        return None
    return mrn


def _hd(value: str, first: _Reader, second: _Reader) -> str:
    """HD namespace id (component 1), else universal id (component 2)."""
    return first(value) or (second(value) if value else "")


def _pick(segments: list[list[str]]) -> tuple[list[str] | None, list[str] | None, list[str] | None,
                                              list[str] | None, list[list[str]]]:
    """The first PID, PV1, IN1 and EVN, and every FT1, in one pass over the segments."""
    pid = pv1 = in1 = evn = None
    ft1s: list[list[str]] = []
    for fields in segments:
        name = fields[0]
        if name == "FT1":
            ft1s.append(fields)
        elif name == "PID":
            if pid is None:
                pid = fields
        elif name == "PV1":
            if pv1 is None:
                pv1 = fields
        elif name == "IN1":
            if in1 is None:
                in1 = fields
        elif name == "EVN" and evn is None:
            evn = fields
    return pid, pv1, in1, evn, ft1s


def _patient(pid: list[str] | None, d: Delimiters, first: _Reader,
             warnings: list[str]) -> tuple[str | None, str | None, str | None]:
    """MRN, name and birth date (PHI: kept in the raw store only; the MRN becomes a token)."""
    if pid is None:
        warnings.append("no PID segment: encounter has no patient")
        return None, None, None
    pid = _pad(pid, 8)
    mrn = _mrn(pid[3], d, first, warnings)
    name = _name(pid[5], d, first)
    birth = first(pid[7]) or None
    if birth is not None and not is_hl7_date(birth):
        warnings.append("PID-7 birth date is not a valid HL7 date (kept as text)")
    return mrn, name, birth


def _visit(pv1: list[str] | None, code: str, facility_msh: str, cid: str, first: _Reader,
           warnings: list[str]) -> tuple[list[str], str, str]:
    """PV1 padded, the visit number and the facility, both checked to be identifiers.

    Canonical rows, line keys' exceptions and ERP lines carry them: never a shifted name.
    """
    if pv1 is None:
        warnings.append("no PV1 segment")
    pv1 = _pad(pv1, 46)
    encounter_id = first(pv1[19])
    if not encounter_id:
        if code == "DFT":
            raise HL7ParseError("DFT^P03 has no PV1-19 visit number: its charges cannot attach to an encounter", cid)
        warnings.append("PV1-19 visit number is empty: encounter recorded with encounter_id ''")
    elif not (encounter_id.isalnum() and len(encounter_id) <= 64 or is_code(encounter_id, 64)):
        raise HL7ParseError("PV1-19 visit number is not an identifier (spaces, or the shape of PHI)", cid)
    facility = first(pv1[39]) or facility_msh
    if facility and not (facility in CODES and len(facility) <= 64 or is_code(facility, 64)):
        raise HL7ParseError("PV1-39 servicing facility (else MSH-4) is not a facility code", cid)
    return pv1, encounter_id, facility


def _check_identifiers(cid: str, application: str, facility: str) -> None:
    """MSH-10 and MSH-3/MSH-4 become line keys, sources and trace keys everywhere downstream: a
    routed message whose ones are not identifiers (a shifted name, an SSN) is refused by field."""
    for label, value in (("MSH-10 control id", cid), ("MSH-3 sending application", application),
                         ("MSH-4 sending facility", facility)):
        if value and not (value in CODES or is_code(value, 128)):
            raise HL7ParseError(f"{label} is not an identifier (spaces, or the shape of PHI)")


def to_canonical(msg: Message) -> CanonicalResult:
    """Map one parsed message to canonical records; ``HL7ParseError`` when it cannot be used."""
    d = msg.delims
    first, second = _readers(d, msg.encoding)
    segments = msg.segments
    msh = _pad(segments[0], 13)
    cid = first(msh[10])
    code = first(msh[9])
    event = second(msh[9])
    facility_msh = _hd(msh[4], first, second)
    sender = f"{_hd(msh[3], first, second)}|{facility_msh}"
    warnings = list(msg.warnings)

    pid, pv1, in1, evn, ft1s = _pick(segments)
    if code == "ADT" and not event and evn is not None and len(evn) > 1:
        event = first(evn[1])
        if event:
            warnings.append("MSH-9 has no trigger event; took it from EVN-1")
    message_type = f"{code}^{event}" if event else code
    if len(cid) > 128 or len(sender) > 128 or len(message_type) > 32:
        raise HL7ParseError("MSH-3/MSH-4, MSH-9 or MSH-10 is longer than the message store keeps (128, 32, 128)")
    result = CanonicalResult(message_type, cid, sender, warnings=warnings, version=first(msh[12]) or None)
    if message_type not in ROUTED_TYPES:
        result.skipped_reason = f"message type {type_label(message_type)} is not routed by carefabric"
        return result

    _check_identifiers(cid, _hd(msh[3], first, second), facility_msh)
    message_time = _ts(first(msh[7]), "MSH-7 message time", cid)
    mrn, name, birth = _patient(pid, d, first, warnings)
    token = phi.token(mrn, kind="mrn")
    pv1, encounter_id, facility = _visit(pv1, code, facility_msh, cid, first, warnings)
    in1 = _pad(in1, 4)

    encounter = Encounter(
        source=sender,
        facility=facility,
        encounter_id=encounter_id,
        event_type=event,
        message_control_id=cid,
        patient_token=token,
        patient_class=opt_code(first(pv1[2]), "PV1-2 patient class", 8, warnings),
        hospital_service=opt_code(first(pv1[10]), "PV1-10 hospital service", 32, warnings),
        location=opt_code(first(pv1[3]), "PV1-3 location", 40, warnings),
        financial_class=opt_code(first(pv1[20]), "PV1-20 financial class", 32, warnings),
        admit_time=_ts(first(pv1[44]), "PV1-44 admit time", cid),
        discharge_time=_ts(first(pv1[45]), "PV1-45 discharge time", cid),
        insurance_plan=opt_code(first(in1[2]), "IN1-2 insurance plan", 64, warnings),
        insurance_company=opt_code(first(in1[3]), "IN1-3 insurance company", 64, warnings),
        message_time=message_time,
        mrn_phi=mrn,
        patient_name_phi=name,
        birth_date_phi=birth,
    )
    result.encounter = encounter
    if code == "DFT":
        if ft1s:
            result.charges = _charges(ft1s, encounter, d, first, warnings)
        else:
            warnings.append("DFT^P03 without FT1 segments: no charges")
    return result


def _charges(
    ft1s: list[list[str]], encounter: Encounter, d: Delimiters, first: _Reader, warnings: list[str]
) -> list[Charge]:
    cid = encounter.message_control_id
    source, facility, encounter_id, token = (
        encounter.source,
        encounter.facility,
        encounter.encounter_id,
        encounter.patient_token,
    )
    rep = d.repetition
    codes = CODES
    charges: list[Charge] = []
    seen: set[int] = set()
    for position, f in enumerate(ft1s, 1):
        if len(f) < 27:
            f = f + [""] * (27 - len(f))
        set_id = first(f[1])
        if set_id:
            if not set_id.isdigit():
                raise HL7ParseError(f"FT1 {position}: FT1-1 set id is not a positive integer", cid)
            line = int(set_id)
        else:
            line = position
        if line in seen:
            raise HL7ParseError(f"FT1 {line}: FT1-1 set id repeats in the message", cid)
        seen.add(line)

        date_text = first(f[4])
        if not date_text:
            raise HL7ParseError(f"FT1 {line}: FT1-4 transaction date is missing", cid)
        try:
            txn_date = parse_datetime(date_text).date()
        except ValueError as exc:
            raise HL7ParseError(f"FT1 {line}: FT1-4 transaction date {exc}", cid) from None
        txn_type = first(f[6])
        if not txn_type:
            raise HL7ParseError(f"FT1 {line}: FT1-6 transaction type is missing", cid)
        cdm = first(f[7])
        if not cdm:
            raise HL7ParseError(f"FT1 {line}: FT1-7 transaction code (CDM) is missing", cid)
        department, txn_id = first(f[13]), first(f[2])
        if not ((txn_type in codes and len(txn_type) <= 4 or is_code(txn_type, 4))
                and (cdm in codes and len(cdm) <= 32 or is_code(cdm, 32))
                and (not department or department in codes and len(department) <= 32 or is_code(department, 32))
                and (not txn_id or txn_id.isalnum() and len(txn_id) <= 64 or is_code(txn_id, 64))):
            raise HL7ParseError(
                f"FT1 {line}: FT1-2 transaction id, FT1-6 type, FT1-7 code or FT1-13 department is not a code", cid
            )

        quantity, amount, unit, needs_price = amounts(f, first, line, txn_type, cid, warnings)
        mods = f[26]
        if not mods:
            modifiers: tuple[str, ...] = ()
        elif rep in mods:
            modifiers = tuple(m for m in map(first, mods.split(rep)) if m)
        else:
            modifiers = (first(mods),)
        if modifiers and not is_code("-".join(modifiers), 64):
            warnings.append(f"FT1 {line}: FT1-26 modifiers are not codes: left empty")
            modifiers = ()
        charges.append(
            Charge(
                source=source,
                facility=facility,
                encounter_id=encounter_id,
                message_control_id=cid,
                line_number=line,
                transaction_id=txn_id or None,
                transaction_date=txn_date,
                transaction_type=txn_type,
                cdm_code=cdm,
                quantity=quantity,
                extended_amount=amount,
                unit_amount=unit,
                department=department or None,
                procedure_code=opt_code(first(f[25]), "FT1-25 procedure code", 32, warnings, line),
                modifiers=modifiers if modifiers != ("",) else (),
                patient_token=token,
                needs_price=needs_price,
            )
        )
    return charges


def canonicalize(raw: RawMessage | str) -> CanonicalResult:
    """``to_canonical(parse(raw))``, with MSH-10 attached to any error raised on the way."""
    try:
        return to_canonical(parse(raw))
    except HL7ParseError as exc:
        if exc.control_id is None:
            exc.control_id = peek_control_id(raw if isinstance(raw, str) else raw.text)
        raise
