"""EHR ingest: HL7 v2 batches and FHIR R4 NDJSON from the EHR's landing folder to billing.

Every 5 minutes a run takes the extract files waiting in the landing folder (a manual run may
wait for files with ``wait_for_files``; a scheduled one never sleeps in its sensor, so a manual
trigger never queues behind it); each file is ingested by its own mapped task (register, archive, parse, keep raw
messages, validate with GX, map through the crosswalks, open exceptions); then mapped charges
go to billing with one idempotency key per line. A run that ingested files updates the
``CHARGES`` asset with the business date and counts in the event's extra (``erp_posting`` waits
for it); one that found nothing emits no event. The logic is in
``carefabric.interfaces.ehr_ingest``.
"""

from __future__ import annotations

from pathlib import Path

import pendulum
from airflow.sdk import CronTriggerTimetable, Param, PokeReturnValue, dag, get_current_context, task

from carefabric_airflow import DAGRUN_TIMEOUT, billing_client, business_date, default_args, engine, lineage
from carefabric_airflow.data_assets import CHARGES, announce

INTERFACE = "ehr_ingest"


@dag(
    dag_id=INTERFACE,
    doc_md=__doc__,
    dagrun_timeout=DAGRUN_TIMEOUT,
    description="EHR extracts (HL7 v2, FHIR) to canonical records and billing charges",
    schedule=CronTriggerTimetable("*/5 * * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(INTERFACE),
    params={
        "business_date": Param(None, type=["null", "string"], description="YYYY-MM-DD; default: run date"),
        "wait_for_files": Param(False, type="boolean", description="true: wait up to 14 min for files (false: take what is there now)"),
        "include_processed": Param(False, type="boolean", description="re-read files already processed (a rerun posts nothing twice)"),
    },
    tags=["carefabric", "ehr", "hl7", "fhir", "ingest"],
)
def ehr_ingest() -> None:
    @task.sensor(poke_interval=60, timeout=14 * 60, mode="reschedule", soft_fail=True)
    def wait_for_extracts() -> PokeReturnValue:
        from carefabric.config import landing_dir
        from carefabric.interfaces.ehr_ingest import pending_files

        params = get_current_context()["params"]
        files = pending_files(landing_dir(), engine(), include_processed=params["include_processed"])
        return PokeReturnValue(is_done=bool(files) or not params["wait_for_files"], xcom_value=files)

    @task(max_active_tis_per_dagrun=2, inlets=[lineage.landing()],
          outlets=lineage.store(*lineage.RAW, *lineage.CLINICAL, "exceptions"))
    def ingest(path: str) -> dict:
        from carefabric.interfaces.ehr_ingest import ingest_file

        return ingest_file(Path(path), engine(), business_date=business_date(get_current_context()))

    # all_done: a file that failed must not keep the other files' charges from billing.
    @task(pool="billing_api", outlets=[CHARGES, *lineage.peer(lineage.BILLING_API, "charges:batch")],
          inlets=lineage.store("charges"), trigger_rule="all_done")
    def route_to_billing(results: list[dict]) -> dict:
        from carefabric.interfaces.ehr_ingest import route_charges

        routed = route_charges(engine(), billing_client())
        summary = {"files": len(results), **routed}
        announce(get_current_context(), CHARGES, business_date(get_current_context()), summary, require="files")
        return summary

    route_to_billing(ingest.expand(path=wait_for_extracts()))


ehr_ingest()
