"""Payer remittance: X12 835 files from the payers' SFTP folders to balanced, stored remittances.

A sensor lists ``/inbound/<payer>/*.835`` on the payer SFTP server (Airflow's SFTP provider).
Each file is fetched by its own mapped task (unsafe names refused, original moved to
``/archive/<payer>/`` on the server) and processed by another (pyx12 syntax and a 999 for every
file, streaming parse with balancing, duplicate interchange check, payer and payee mapping).
Files are validated in parallel mapped tasks, not in series. The logic is in
``carefabric.interfaces.payer_remittance``.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pendulum
from airflow.sdk import CronTriggerTimetable, Param, PokeReturnValue, dag, get_current_context, task

from carefabric_airflow import DAGRUN_TIMEOUT, assets, business_date, default_args, engine, json_variable

INTERFACE = "payer_remittance"
SFTP_CONN = "payer_sftp"
INBOUND = "/inbound"
ARCHIVE = "/archive"


@dag(
    dag_id=INTERFACE,
    doc_md=__doc__,
    dagrun_timeout=DAGRUN_TIMEOUT,
    description="Payer X12 835 remittances over SFTP to balanced, stored remittances with a 999 each",
    schedule=CronTriggerTimetable("0 * * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(INTERFACE),
    params={
        "business_date": Param(None, type=["null", "string"], description="YYYY-MM-DD; default: run date"),
        "wait_for_files": Param(True, type="boolean", description="false: take whatever is there now"),
    },
    tags=["carefabric", "payer", "x12", "835", "sftp"],
)
def payer_remittance() -> None:
    @task.sensor(poke_interval=120, timeout=55 * 60, mode="reschedule", soft_fail=True)
    def wait_for_remittances() -> PokeReturnValue:
        from airflow.providers.sftp.hooks.sftp import SFTPHook

        hook = SFTPHook(ssh_conn_id=SFTP_CONN)
        found: list[str] = []
        for payer in sorted(hook.list_directory(INBOUND) or []):
            folder = f"{INBOUND}/{payer}"
            if hook.isdir(folder):
                found += [f"{folder}/{name}" for name in sorted(hook.list_directory(folder) or []) if name.lower().endswith(".835")]
        wait = get_current_context()["params"]["wait_for_files"]
        return PokeReturnValue(is_done=bool(found) or not wait, xcom_value=found)

    @task(max_active_tis_per_dagrun=4)
    def fetch(remote_path: str) -> dict | None:
        """Download one file and move the original into the server's archive folder."""
        from airflow.providers.sftp.hooks.sftp import SFTPHook

        from carefabric.config import data_dir
        from carefabric.interfaces.common import UnsafeFileName, open_business_exception
        from carefabric.interfaces.payer_remittance import safe_remote_path
        from carefabric.store.db import session_scope

        try:
            payer, name = safe_remote_path(remote_path, INBOUND)
        except UnsafeFileName as exc:
            with session_scope(engine()) as session:
                open_business_exception(
                    session, reason_code="UNSAFE_FILE_NAME", interface=INTERFACE, record_type="remote_file",
                    record_key=remote_path[:255], summary=str(exc)[:480],
                )
            return None
        inbox = data_dir() / "inbox" / "payer" / payer
        inbox.mkdir(parents=True, exist_ok=True)
        local = inbox / name
        hook = SFTPHook(ssh_conn_id=SFTP_CONN)
        hook.retrieve_file(remote_path, str(local) + ".part")
        Path(str(local) + ".part").replace(local)
        with hook.get_managed_conn() as sftp:
            archive = f"{ARCHIVE}/{payer}"
            try:
                sftp.stat(archive)
            except OSError:
                sftp.mkdir(archive)
            target = f"{archive}/{name}"
            with contextlib.suppress(OSError):
                sftp.stat(target)  # that name was archived before (a re-send): keep both copies
                target = f"{archive}/{pendulum.now('UTC').format('YYYYMMDDHHmmss')}_{name}"
            sftp.rename(remote_path, target)
        return {"path": str(local), "payer": payer}

    @task(max_active_tis_per_dagrun=4)
    def process(fetched: dict | None) -> dict:
        from carefabric.interfaces.payer_remittance import process_file

        if fetched is None:
            return {"status": "refused"}
        return process_file(
            Path(fetched["path"]),
            engine(),
            payer_folder=fetched["payer"],
            business_date=business_date(get_current_context()),
            strictness=json_variable("carefabric_payer_strictness", {"default": "lenient"}),
        )

    @task(outlets=[assets()["remittances"]], trigger_rule="all_done")
    def summarize(results: list[dict]) -> dict:
        statuses: dict[str, int] = {}
        for result in results:
            statuses[result.get("status", "?")] = statuses.get(result.get("status", "?"), 0) + 1
        return {"files": len(results), "by_status": statuses}

    summarize(process.expand(fetched=fetch.expand(remote_path=wait_for_remittances())))


payer_remittance()
