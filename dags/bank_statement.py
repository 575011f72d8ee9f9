"""Bank statement: the bank's daily BAI2 file over SFTP to stored deposits for the cash check.

Runs at 02:30 UTC for the previous business date, before ``erp_posting`` (03:00: cash the bank
confirmed for an 835 that cannot post goes to suspense the same night) and ``claims_reconciliation``.
A sensor lists ``/inbound/bank/`` on the bank's SFTP server (Airflow's SFTP provider; the
connection id is the ``carefabric_bank_sftp_conn_id`` variable, ``payer_sftp`` in the sandbox,
whose one SFTP server hosts the bank's folder beside the payers'). The statements are staged in
the handoff store (``carefabric_airflow.handoff``: object storage, not a worker's disk) and their
originals moved to ``/archive/bank/``; each is then read in its own mapped task: its
credits, with the 835 trace (TRN02) found in their CCD+ addenda, go to ``bank_deposits``; a file
that cannot be read or whose control totals do not add up stores nothing and becomes a
``BANK_FILE_UNREADABLE`` exception. A statement delivered again stores nothing twice. The logic
is in ``carefabric.interfaces.bank_statement``.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import CronDataIntervalTimetable, Param, PokeReturnValue, dag, get_current_context, task

from carefabric_airflow import DAGRUN_TIMEOUT, business_date, default_args, engine, lineage, variable

INTERFACE = "bank_statement"
INBOUND = "/inbound/bank"


def _conn_id() -> str:
    return variable("carefabric_bank_sftp_conn_id", "payer_sftp")


@dag(
    dag_id=INTERFACE,
    dagrun_timeout=DAGRUN_TIMEOUT,
    description="Bank BAI2 statements over SFTP to stored deposits (835 trace per deposit) for the cash check",
    doc_md=__doc__,
    schedule=CronDataIntervalTimetable("30 2 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(INTERFACE),
    params={
        "business_date": Param(None, type=["null", "string"], description="YYYY-MM-DD; default: interval start"),
        "wait_for_files": Param(True, type="boolean", description="false: take whatever is there now"),
    },
    tags=["carefabric", "bank", "bai2", "sftp", "cash"],
)
def bank_statement() -> None:
    @task.sensor(poke_interval=300, timeout=3 * 60 * 60, mode="reschedule", soft_fail=True)
    def wait_for_statements() -> PokeReturnValue:
        from airflow.providers.sftp.hooks.sftp import SFTPHook

        from carefabric.interfaces.bank_statement import SUFFIXES

        hook = SFTPHook(ssh_conn_id=_conn_id())
        names = hook.list_directory(INBOUND) if hook.isdir(INBOUND) else []
        found = [n for n in sorted(names or []) if n.lower().endswith(SUFFIXES) and not n.startswith(".")]
        wait = get_current_context()["params"]["wait_for_files"]
        return PokeReturnValue(is_done=bool(found) or not wait, xcom_value=found)

    @task(inlets=lineage.peer(lineage.BANK_SFTP, INBOUND),
          outlets=[lineage.handoff(INTERFACE), *lineage.peer(lineage.BANK_SFTP, "archive/bank")])
    def fetch(_: list[str]) -> list[str]:
        """Stage every waiting statement in the handoff store and archive the originals on the server."""
        from airflow.providers.sftp.hooks.sftp import SFTPHook

        from carefabric_airflow.bank_transport import fetch_bank_statements

        return fetch_bank_statements(SFTPHook(ssh_conn_id=_conn_id()), engine(), inbound=INBOUND)

    @task(max_active_tis_per_dagrun=2, inlets=[lineage.handoff(INTERFACE)],
          outlets=lineage.store("bank_deposits", "exceptions"))
    def process(path: str) -> dict:
        """Read one staged statement (from the handoff store: any worker may run this)."""
        from carefabric_airflow.bank_transport import process_staged_statement

        return process_staged_statement(path, engine(), business_date=business_date(get_current_context()))

    @task(trigger_rule="all_done")
    def summarize(results: list[dict]) -> dict:
        statuses: dict[str, int] = {}
        for result in results:
            statuses[result.get("status", "?")] = statuses.get(result.get("status", "?"), 0) + 1
        stored = sum(int(r.get("stored", 0)) for r in results)
        return {"files": len(results), "by_status": statuses, "deposits_stored": stored}

    summarize(process.expand(path=fetch(wait_for_statements())))


bank_statement()
