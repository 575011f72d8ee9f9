"""The store and crosswalk lookups a FHIR file's read needs (``carefabric.fhir.ReadContext``).

A bulk export writes one file per resource type, so a ChargeItem's ``context`` may name an
Encounter read from another file, and an ``entered-in-error`` ChargeItem reverses a charge
stored on an earlier day: both are found in the store here. Prices come from the CDM crosswalk
(``price_cents``), payers from the payer crosswalk. The source's own identifier systems and
default facility come from ``CAREFABRIC_FHIR_CONFIG`` (JSON, see ``FhirConfig.from_json``), e.g.
``{"visit_systems": ["http://ehr.example/visits"], "facility": "F1"}``.
"""

from __future__ import annotations

import os
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.engine import Engine

from carefabric.canonical import Charge
from carefabric.fhir import SOURCE, FhirConfig, ReadContext
from carefabric.store.crosswalks import Crosswalks
from carefabric.store.db import session_scope
from carefabric.store.models import Charge as ChargeRow
from carefabric.store.models import Encounter as EncounterRow


def read_context(engine: Engine, cw: Crosswalks, config: FhirConfig | None = None) -> ReadContext:
    config = config or FhirConfig.from_json(os.environ.get("CAREFABRIC_FHIR_CONFIG"))

    def price(code: str) -> int | None:
        entry = cw.cdm_entry(code)
        return entry.price_cents if entry is not None else None

    def encounter(resource_id: str) -> tuple[str, str | None] | None:
        with session_scope(engine) as s:
            row = s.execute(
                select(EncounterRow.encounter_id, EncounterRow.facility)
                .where(EncounterRow.source == config.source, EncounterRow.message_control_id == resource_id)
                .limit(1)
            ).first()
        return (row[0], row[1]) if row else None

    def charge(line_key: str) -> Charge | None:
        # only a charge that went somewhere (mapped, routed) is reversed, as corrections.py does: a
        # credit for a held line would post revenue down while the charge itself never posted
        with session_scope(engine) as s:
            row = s.scalars(select(ChargeRow).where(ChargeRow.line_key == line_key,
                                                    ChargeRow.status.in_(("mapped", "routed")))).first()
            return _charge_of(row) if row is not None else None

    return ReadContext(config=config, price_lookup=price, encounter_lookup=encounter, charge_lookup=charge,
                       payer_lookup=cw.erp_payer)


def _charge_of(row: ChargeRow) -> Charge:
    unit = Decimal(row.unit_amount_cents) / 100 if row.unit_amount_cents is not None else None
    return Charge(
        source=row.source or SOURCE, facility=row.facility, encounter_id=row.encounter_id,
        message_control_id=row.message_control_id, line_number=row.line_number, transaction_id=row.transaction_id,
        transaction_date=row.transaction_date, transaction_type=row.transaction_type, cdm_code=row.cdm_code,
        quantity=Decimal(row.quantity), extended_amount=Decimal(row.amount_cents) / 100, unit_amount=unit,
        department=row.department, procedure_code=row.procedure_code,
        modifiers=tuple(row.modifiers.split("^")) if row.modifiers else (), patient_token=row.patient_token,
    )
