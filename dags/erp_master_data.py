"""ERP master data: replicate companies, cost centers, GL accounts, items, locations, payers and
periods into the crosswalk store; report drift; re-queue exceptions a new mapping resolves.

Runs daily before the feeds post. Exceptions that today's mappings resolve are handed to the
``exception_replay`` DAG (triggered with their ids). The logic is in
``carefabric.interfaces.erp_master_data``.
"""

from __future__ import annotations

import pendulum
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import CronTriggerTimetable, dag, task

from carefabric_airflow import DAGRUN_TIMEOUT, default_args, engine, erp_client, lineage
from carefabric_airflow.data_assets import MASTER_DATA

INTERFACE = "erp_master_data"


@dag(
    dag_id=INTERFACE,
    doc_md=__doc__,
    dagrun_timeout=DAGRUN_TIMEOUT,
    description="ERP master data to the crosswalk store; drift report; re-queue resolvable exceptions",
    schedule=CronTriggerTimetable("30 0 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(INTERFACE),
    tags=["carefabric", "erp", "master-data", "crosswalks"],
)
def erp_master_data() -> None:
    @task(pool="erp_api", inlets=lineage.peer(lineage.ERP_API, *lineage.ERP_MASTER_LISTS),
          outlets=[MASTER_DATA, *lineage.store(*lineage.MASTER)])
    def replicate() -> dict:
        from carefabric.interfaces.erp_master_data import replicate as replicate_lists

        return replicate_lists(engine(), erp_client())

    @task
    def report_drift(counts: dict) -> list[dict]:
        from carefabric.interfaces.erp_master_data import drift

        findings = drift(engine())
        for finding in findings:
            print(f"drift: {finding['kind']} {finding['key']} -> {finding['value']}")
        return findings

    @task(inlets=lineage.store("exceptions", *lineage.MASTER))
    def find_resolvable(findings: list[dict]) -> list[int]:
        from carefabric.interfaces.erp_master_data import resolvable_exceptions

        return resolvable_exceptions(engine())

    @task.short_circuit
    def anything_to_replay(ids: list[int]) -> bool:
        return bool(ids)

    ids = find_resolvable(report_drift(replicate()))
    requeue_for_replay = TriggerDagRunOperator(
        task_id="requeue_for_replay",
        trigger_dag_id="exception_replay",
        conf={"exception_ids": ids, "actor": "erp_master_data"},
        wait_for_completion=False,
    )
    anything_to_replay(ids) >> requeue_for_replay


erp_master_data()
