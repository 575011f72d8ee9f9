"""The close's Data Docs step: the day's canonical records read from the store, validated by the
nightly checkpoint (``checkpoint.run_nightly_checkpoint``), the static site rebuilt.

What "the day" is, per dataset (the same rows the close reconciles):

* ``charges``: charge lines of the business date;
* ``encounters``: encounter events of the day's charges, and those whose message was sent that
  day (an ADT with no charge yet);
* ``remittances`` and ``remit_claims``: the 835s of the business date that post (``balanced``
  or ``posted``; a rejected or unbalanced file is an exception already, not a data-quality row).

Columns are those the suites check (``expectations.SUITES``), nothing else: no token, no payload.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select
from sqlalchemy.engine import Engine

from carefabric.store.db import session_scope
from carefabric.store.models import Charge, Encounter, RemitClaim, Remittance

if TYPE_CHECKING:  # pragma: no cover - typing only
    import pandas

    from carefabric.quality.checkpoint import NightlyDocs

POSTING_REMIT_STATUSES = ("balanced", "posted")
CHARGE_COLUMNS = ("line_key", "facility", "encounter_id", "transaction_date", "transaction_type", "cdm_code",
                  "quantity", "amount_cents", "department")
#: Nights of results and pages kept (``CAREFABRIC_DATA_DOCS_KEEP_DAYS``): the index is rebuilt
#: from every stored result each night, so what is kept is what each night pays for.
DEFAULT_KEEP_DAYS = 90


def day_frames(engine: Engine, day: dt.date) -> dict[str, pandas.DataFrame]:
    """The business date's datasets as frames, one per suite, with the suites' columns."""
    import pandas as pd

    start = dt.datetime.combine(day, dt.time())
    with session_scope(engine) as s:
        charges = s.execute(
            select(*(getattr(Charge, c) for c in CHARGE_COLUMNS)).where(Charge.business_date == day)
        ).all()
        day_encounters = select(Charge.encounter_id).where(Charge.business_date == day)
        encounters = s.execute(
            select(Encounter.encounter_id, Encounter.event_type, Encounter.facility).where(
                or_(Encounter.encounter_id.in_(day_encounters),
                    Encounter.message_time.between(start, start + dt.timedelta(days=1) - dt.timedelta(microseconds=1)))
            )
        ).all()
        posting = (Remittance.business_date == day, Remittance.status.in_(POSTING_REMIT_STATUSES))
        remits = s.execute(
            select(Remittance.trace_number, Remittance.payment_cents, Remittance.balance_errors).where(*posting)
        ).all()
        claims = s.execute(
            select(RemitClaim.patient_control_number, RemitClaim.status, RemitClaim.charge_cents, RemitClaim.paid_cents)
            .join(Remittance, RemitClaim.remittance_id == Remittance.id).where(*posting)
        ).all()
    return {
        "charges": pd.DataFrame([tuple(r) for r in charges], columns=list(CHARGE_COLUMNS)),
        "encounters": pd.DataFrame([tuple(r) for r in encounters], columns=["encounter_id", "event_type", "facility"]),
        "remit_claims": pd.DataFrame([tuple(r) for r in claims],
                                     columns=["patient_control_number", "status", "charge_cents", "paid_cents"]),
        "remittances": pd.DataFrame([(t, c, not errors) for t, c, errors in remits],
                                    columns=["trace_number", "payment_cents", "balanced"]),
    }


def keep_days() -> int:
    return int(os.environ.get("CAREFABRIC_DATA_DOCS_KEEP_DAYS") or DEFAULT_KEEP_DAYS)


def build_day_docs(engine: Engine, day: dt.date) -> NightlyDocs:
    """Run the nightly checkpoint on the day's records and rebuild the Data Docs site."""
    from carefabric.quality.checkpoint import run_nightly_checkpoint

    return run_nightly_checkpoint(day_frames(engine, day), day, keep_days=keep_days())


def build_day_docs_dict(engine: Engine, day: dt.date) -> dict[str, Any]:
    """``build_day_docs`` as a JSON-able dict (an Airflow task's return value)."""
    return build_day_docs(engine, day).to_dict()
