"""EHR Bulk Data pull: the night's FHIR extract fetched with ``$export`` (SMART Backend Services).

How Epic, Oracle Health and other EHRs hand out a nightly extract today. For the run's window
(the business date, else the data interval) the DAG:

1. ``kick_off``: signs a JWT client assertion (RS384) with the private key of the ``ehr_fhir``
   connection, exchanges it for an access token and starts ``$export`` (the connection's Group,
   else system level; ``_type`` = Encounter, Coverage, Account, ChargeItem, Claim; ``_since`` and
   ``_until`` = the window; ``Prefer: respond-async``);
2. ``wait_for_export``: defers to a trigger that polls the status URL honouring ``Retry-After``
   and logging ``X-Progress`` (no worker slot held while the EHR works), until the manifest;
3. ``download``: every NDJSON output, atomically, into ``<landing>/fhir_bulk/`` (an export whose
   manifest lists errors is refused whole: a partial extract would under-bill silently);
4. ``ingest``: the same ``ingest_file`` as ``ehr_ingest`` (exceptions, GX, crosswalks), in
   resource order, then ``route_to_billing`` with one idempotency key per charge line;
5. ``release_export``: a teardown that DELETEs the job at the EHR once the files are down, or
   when the wait or the download failed (a job left behind holds the EHR's disk and, at some
   vendors, counts against the client's concurrent-export limit). ``kick_off`` is its setup, so
   clearing a failed ``download`` starts a fresh export instead of asking for a released one.

A refused token or a failed export fails the run with the EHR's own reason (OperationOutcome)
and lands in the exception queue. The logic is in ``carefabric.fhir_bulk``.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import CronDataIntervalTimetable, Param, dag, get_current_context, setup, task, teardown

from carefabric_airflow import DAGRUN_TIMEOUT, assets, billing_client, business_date, engine, lineage
from carefabric_airflow.fhir_bulk import WaitForBulkExport, bulk_default_args

INTERFACE = "ehr_bulk_export"


@dag(
    dag_id=INTERFACE,
    doc_md=__doc__,
    dagrun_timeout=DAGRUN_TIMEOUT,
    description="FHIR Bulk Data $export from the EHR (SMART Backend Services) to canonical records and billing",
    schedule=CronDataIntervalTimetable("30 1 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=bulk_default_args(INTERFACE),
    params={
        "business_date": Param(None, type=["null", "string"], description="YYYY-MM-DD; default: the data interval"),
    },
    tags=["carefabric", "ehr", "fhir", "bulk-data", "ingest"],
)
def ehr_bulk_export() -> None:
    @setup
    def kick_off() -> dict:
        from carefabric.fhir_bulk import TYPES
        from carefabric_airflow.fhir_bulk import bulk_client, export_group, export_window

        since, until = export_window(get_current_context())
        status_url = bulk_client().kick_off(types=TYPES, since=since, until=until, group=export_group())
        return {"status_url": status_url, "since": since.isoformat(), "until": until.isoformat()}

    @task(inlets=lineage.peer(lineage.EHR_FHIR, "$export"), outlets=[lineage.landing("fhir_bulk")])
    def download(manifest: dict) -> list[str]:
        from carefabric.fhir_bulk.pull import bulk_landing
        from carefabric.fhir_bulk.status import Manifest
        from carefabric_airflow.fhir_bulk import bulk_client

        return [str(p) for p in bulk_client().download(Manifest.from_dict(manifest), bulk_landing())]

    @task(inlets=[lineage.landing("fhir_bulk")], outlets=lineage.store(*lineage.RAW, *lineage.CLINICAL, "exceptions"))
    def ingest(paths: list[str]) -> dict:
        from carefabric.fhir_bulk.pull import ingest_downloads

        return ingest_downloads(paths, engine(), business_date=business_date(get_current_context()))

    @task(pool="billing_api", outlets=[assets()["charges"], *lineage.peer(lineage.BILLING_API, "charges:batch")],
          inlets=lineage.store("charges"))
    def route_to_billing(summary: dict) -> dict:
        from carefabric.interfaces.ehr_ingest import route_charges

        return {"files": summary["files"], **route_charges(engine(), billing_client())}

    @teardown
    def release_export(started: dict) -> None:
        from carefabric_airflow.fhir_bulk import bulk_client

        bulk_client().cancel(started["status_url"])

    started = kick_off()
    manifest = WaitForBulkExport(task_id="wait_for_export", status_url=started["status_url"])
    downloaded = download(manifest.output)
    route_to_billing(ingest(downloaded))
    downloaded >> release_export(started)


ehr_bulk_export()
