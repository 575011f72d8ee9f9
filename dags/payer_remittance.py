"""Payer remittance: X12 835 files from the payers' SFTP folders to balanced, stored remittances.

Every 10 minutes a run lists ``/inbound/<payer>/*.835`` on the payer SFTP server (Airflow's SFTP
provider) and takes what is there: scheduled runs poll instead of sleeping in a sensor, so a
manual trigger never waits behind one (``wait_for_files`` lets a manual run wait for files).
Each file is fetched by its own mapped task (unsafe names refused, original moved to
``/archive/<payer>/`` on the server), staged in the handoff store (``carefabric_airflow.handoff``:
object storage, ``CAREFABRIC_HANDOFF_URL``, never a worker's disk, so ``process`` may run on
another worker) and processed by another (pyx12 syntax and a 999 for every
file, streaming parse with balancing, duplicate interchange check, payer and payee mapping).
Files are validated in parallel mapped tasks, not in series. A run that found files updates the
``REMITTANCES`` asset (business date and counts in the event's extra). The logic is in
``carefabric.interfaces.payer_remittance``.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import CronTriggerTimetable, Param, PokeReturnValue, dag, get_current_context, task

from carefabric_airflow import DAGRUN_TIMEOUT, business_date, default_args, engine, json_variable, lineage
from carefabric_airflow.data_assets import REMITTANCES, announce

INTERFACE = "payer_remittance"
SFTP_CONN = "payer_sftp"
INBOUND = "/inbound"
ARCHIVE = "/archive"


@dag(
    dag_id=INTERFACE,
    doc_md=__doc__,
    dagrun_timeout=DAGRUN_TIMEOUT,
    description="Payer X12 835 remittances over SFTP to balanced, stored remittances with a 999 each",
    schedule=CronTriggerTimetable("*/10 * * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(INTERFACE),
    params={
        "business_date": Param(None, type=["null", "string"], description="YYYY-MM-DD; default: run date"),
        "wait_for_files": Param(False, type="boolean", description="true: wait up to 55 min for files (false: take what is there now)"),
    },
    tags=["carefabric", "payer", "x12", "835", "sftp"],
)
def payer_remittance() -> None:
    @task.sensor(poke_interval=120, timeout=55 * 60, mode="reschedule", soft_fail=True)
    def wait_for_remittances() -> PokeReturnValue:
        from airflow.providers.sftp.hooks.sftp import SFTPHook

        from carefabric_airflow.payer_transport import list_remittances

        found = list_remittances(SFTPHook(ssh_conn_id=SFTP_CONN), INBOUND)
        wait = get_current_context()["params"]["wait_for_files"]
        return PokeReturnValue(is_done=bool(found) or not wait, xcom_value=found)

    @task(max_active_tis_per_dagrun=4, inlets=lineage.peer(lineage.PAYER_SFTP, "inbound"),
          outlets=[lineage.handoff(INTERFACE), *lineage.peer(lineage.PAYER_SFTP, "archive"), *lineage.store("inbound_files")])
    def fetch(remote_path: str) -> dict | None:
        """Stage one file in the handoff store and move the original into the server's archive."""
        from airflow.providers.sftp.hooks.sftp import SFTPHook

        from carefabric_airflow.payer_transport import fetch_remittance

        return fetch_remittance(SFTPHook(ssh_conn_id=SFTP_CONN), remote_path, engine(), inbound=INBOUND,
                                archive=ARCHIVE)

    @task(max_active_tis_per_dagrun=4, inlets=[lineage.handoff(INTERFACE)],
          outlets=lineage.store(*lineage.REMITTANCE, "exceptions"))
    def process(fetched: dict | None) -> dict:
        """Validate, parse, balance, map and store the staged file (read from the handoff store)."""
        from carefabric_airflow.payer_transport import process_staged

        if fetched is None:
            return {"status": "refused"}
        return process_staged(
            fetched,
            engine(),
            business_date=business_date(get_current_context()),
            strictness=json_variable("carefabric_payer_strictness", {"default": "lenient"}),
        )

    @task(outlets=[REMITTANCES], trigger_rule="all_done")
    def summarize(results: list[dict]) -> dict:
        statuses: dict[str, int] = {}
        for result in results:
            statuses[result.get("status", "?")] = statuses.get(result.get("status", "?"), 0) + 1
        summary = {"files": len(results), "by_status": statuses}
        announce(get_current_context(), REMITTANCES, business_date(get_current_context()), summary, require="files")
        return summary

    summarize(process.expand(fetched=fetch.expand(remote_path=wait_for_remittances())))


payer_remittance()
