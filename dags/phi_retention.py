"""PHI retention: raw payloads past their retention period are purged; the space is reclaimed.

Daily at 07:30 UTC, after the nightly close. Raw HL7/FHIR payloads and archived inbound files
(835s, bank statements, extracts) older than the ``carefabric_retention_days`` policy (JSON, days
per interface, e.g. ``{"default": 30, "payer_remittance": 365}``) lose their payload; the row keeps
its SHA-256, size, control ids and status, so audits and duplicate checks still work. Anything an
open exception may replay is kept. Then ``VACUUM`` (SQLite) or ``VACUUM (FULL, ANALYZE)`` of the
two payload tables (PostgreSQL: the purge rewrites rows, and a plain ``VACUUM`` leaves the tables
larger than before, see docs/PERFORMANCE.md; ``carefabric_retention_vacuum_full=false`` for a
plain one without the exclusive lock) returns the space, the store's size is measured before and
after, and one audit entry (actor ``phi_retention``) records all of it.
The logic is in ``carefabric.store.retention``.
"""

from __future__ import annotations

import datetime as dt

import pendulum
from airflow.sdk import CronTriggerTimetable, dag, task

from carefabric_airflow import default_args, engine, json_variable, lineage, variable

INTERFACE = "phi_retention"


@dag(
    dag_id=INTERFACE,
    doc_md=__doc__,
    dagrun_timeout=dt.timedelta(hours=3),
    description="Purge raw payloads (PHI) past retention, keep digest/size/ids/status, reclaim space, audit",
    schedule=CronTriggerTimetable("30 7 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(INTERFACE, retries=2),
    tags=["carefabric", "retention", "phi", "maintenance"],
)
def phi_retention() -> None:
    @task(execution_timeout=dt.timedelta(hours=2), inlets=lineage.store(*lineage.RAW, "raw_message_versions", "exceptions"),
          outlets=lineage.store(*lineage.RAW, "raw_message_versions", "audit_log"))
    def purge_and_reclaim() -> dict:
        from carefabric.store.retention import RetentionPolicy, run

        policy = RetentionPolicy(json_variable("carefabric_retention_days", {"default": 30}))
        full = variable("carefabric_retention_vacuum_full", "true").lower() == "true"
        return run(engine(), policy, full_vacuum=full)

    purge_and_reclaim()


phi_retention()
