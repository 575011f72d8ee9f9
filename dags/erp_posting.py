"""ERP posting: the day's balanced journals (charges, supplies, remittances), inventory movements
and cash receipts, each posted exactly once through carefabric's outbox.

Data-aware: runs when the day's ``CHARGES`` (ehr_ingest) and ``REMITTANCES`` (payer_remittance)
assets are both updated, or at the 03:00 cut-off for the previous business date, whichever comes
first (``AssetOrTimeSchedule``, ``carefabric_airflow.data_assets``). An asset-triggered run takes
its business date from the events' extra. The later of the two runs posts nothing twice (the
outbox) and, having sent nothing, emits no ``POSTINGS`` event. Summary or detail posting follows
the ``carefabric_posting_mode`` variable.

1. ``build_documents`` stores every document the date still needs (exact payload, records).
2. ``send_documents`` claims and sends them; one whose answer was lost is looked up in the ERP
   before any re-send, so nothing posts twice even where the ERP does not de-duplicate. A 503
   storm leaves documents ``unknown`` and the task retries with backoff.
3. ``settle_and_judge`` closes what posted and fails the run (after everything else was posted)
   while any document is rejected (an ``ERP_REJECTED`` exception each) or unsent.

The logic is in ``carefabric.interfaces.erp_posting`` and ``carefabric.store.outbox``.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, get_current_context, task

from carefabric_airflow import (
    DAGRUN_TIMEOUT,
    business_date,
    default_args,
    engine,
    erp_client,
    lineage,
    variable,
)
from carefabric_airflow.data_assets import POSTINGS, announce, posting_schedule

INTERFACE = "erp_posting"


@dag(
    dag_id=INTERFACE,
    doc_md=__doc__,
    dagrun_timeout=DAGRUN_TIMEOUT,
    description="Balanced, idempotent journals, inventory movements and cash receipts to the ERP",
    schedule=posting_schedule(),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(INTERFACE, retries=4),
    params={"business_date": Param(None, type=["null", "string"], description="YYYY-MM-DD; default: the asset events' date, else interval start")},
    tags=["carefabric", "erp", "gl", "posting"],
)
def erp_posting() -> None:
    @task(inlets=lineage.store(*lineage.CLINICAL, "remittances", "remit_claims", "bank_deposits"),
          outlets=lineage.store(*lineage.POSTINGS))
    def build_documents() -> int:
        """Every record no live document carries yet becomes part of one, stored before sending."""
        from carefabric.interfaces.erp_posting import build_day

        mode = variable("carefabric_posting_mode", "summary")
        return len(build_day(engine(), business_date(get_current_context()), mode=mode))

    @task(pool="erp_api", inlets=lineage.store("erp_postings", "erp_posting_lines"),
          outlets=lineage.peer(lineage.ERP_API, *lineage.ERP_DOCUMENTS))
    def send_documents(_: int) -> dict:
        """Claim, look up if sent before, send; transient faults leave documents for the retry."""
        from carefabric.clients.rest import TransientError
        from carefabric.interfaces.erp_posting import send_outstanding
        from carefabric.store.outbox import outstanding

        day = business_date(get_current_context())
        lease = float(variable("carefabric_outbox_lease_seconds", "120"))
        outcomes = send_outstanding(engine(), erp_client(), day, lease_seconds=lease)
        left = outstanding(engine(), day)
        if left:
            raise TransientError(f"{len(left)} document(s) of {day} not confirmed by the ERP yet")
        return {"sent": len(outcomes), "outcomes": sorted(set(outcomes.values()))}

    @task(outlets=[POSTINGS, *lineage.store("erp_postings", "exceptions")], inlets=lineage.store("erp_postings"))
    def settle_and_judge(sent: dict) -> dict:
        """Rejected or unsent documents fail the run here, after the rest of the day posted."""
        from carefabric.interfaces.erp_posting import settle_day

        day = business_date(get_current_context())
        summary = {**settle_day(engine(), day), "sent": sent["sent"]}
        announce(get_current_context(), POSTINGS, day, summary, require="sent")
        return summary

    settle_and_judge(send_documents(build_documents()))


erp_posting()
