"""Exception replay: after a crosswalk fix, map, route and post the records the queue held back.

Manual (or triggered by ``erp_master_data`` with the ids a new mapping resolves). Name exception
ids, a reason code, or an interface; every replay is audited with its actor. The logic is in
``carefabric.interfaces.exception_replay``.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, get_current_context, task

from carefabric_airflow import billing_client, default_args, engine, erp_client, variable

INTERFACE = "exception_replay"


@dag(
    dag_id=INTERFACE,
    description="Replay held records after a crosswalk or master-data fix (by id, reason or interface)",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    default_args=default_args(INTERFACE),
    params={
        "exception_ids": Param([], type="array", description="exception ids to replay"),
        "reason_code": Param(None, type=["null", "string"], description="replay every open exception with this reason"),
        "interface": Param(None, type=["null", "string"], description="replay every open exception of this interface"),
        "actor": Param("operator", type="string", description="who asked for the replay (audit log)"),
    },
    tags=["carefabric", "exceptions", "replay", "manual"],
)
def exception_replay() -> None:
    @task
    def select_exceptions() -> list[int]:
        from carefabric.interfaces.exception_replay import select_exceptions as select

        params = get_current_context()["params"]
        ids = [int(i) for i in params.get("exception_ids") or []]
        return select(engine(), exception_ids=ids or None, reason_code=params.get("reason_code"), interface=params.get("interface"))

    @task(pool="erp_api")
    def replay(ids: list[int]) -> dict:
        from carefabric.interfaces.exception_replay import replay as replay_ids

        if not ids:
            return {"exceptions": 0}
        actor = get_current_context()["params"].get("actor") or "operator"
        mode = variable("carefabric_posting_mode", "summary")
        return replay_ids(engine(), billing_client(), erp_client(), exception_ids=ids, actor=actor, mode=mode)

    replay(select_exceptions())


exception_replay()
