"""Exception replay: after a crosswalk fix, map, route and post the records the queue held back.

Manual (the carefabric console triggers it through the REST API as the operator; or
``erp_master_data`` with the ids a new mapping resolves). Name exception ids, or a reason code
and/or an interface, optionally narrowed to business dates; ids are not required. Every replay
is audited with its actor: the user who triggered the run (Airflow records it), else the
``actor`` param of a DAG-triggered run. The logic is in ``carefabric.interfaces.exception_replay``.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, get_current_context, task

from carefabric_airflow import (
    DAGRUN_TIMEOUT,
    billing_client,
    default_args,
    engine,
    erp_client,
    lineage,
    variable,
)

INTERFACE = "exception_replay"


@dag(
    dag_id=INTERFACE,
    doc_md=__doc__,
    dagrun_timeout=DAGRUN_TIMEOUT,
    description="Replay held records after a crosswalk or master-data fix (by id, reason or interface)",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    default_args=default_args(INTERFACE),
    params={
        "exception_ids": Param([], type=["array", "null"], items={"type": "integer"},
                               description="exception ids to replay (leave empty to replay by reason code)"),
        "reason_code": Param(None, type=["null", "string"], description="replay every open exception with this reason"),
        "interface": Param(None, type=["null", "string"], description="replay every open exception of this interface"),
        "business_date_from": Param(None, type=["null", "string"], format="date",
                                    description="only exceptions whose record's business date is on or after this"),
        "business_date_to": Param(None, type=["null", "string"], format="date",
                                  description="only exceptions whose record's business date is on or before this"),
        "actor": Param("operator", type="string",
                       description="for DAG-triggered runs only; a user's run is audited under that user"),
    },
    tags=["carefabric", "exceptions", "replay", "manual"],
)
def exception_replay() -> None:
    @task(inlets=lineage.store("exceptions"))
    def select_exceptions() -> list[int]:
        import datetime as dt

        from carefabric.console.queries.exceptions import replayable_ids
        from carefabric.interfaces.exception_replay import select_exceptions as select
        from carefabric.store.db import session_scope

        params = get_current_context()["params"]
        ids = [int(i) for i in params.get("exception_ids") or []]
        chosen = select(engine(), exception_ids=ids or None, reason_code=params.get("reason_code"),
                        interface=params.get("interface"))
        start, end = params.get("business_date_from"), params.get("business_date_to")
        if not (start or end):
            return chosen
        with session_scope(engine()) as s:
            return replayable_ids(s, chosen, date_from=dt.date.fromisoformat(start) if start else None,
                                  date_to=dt.date.fromisoformat(end) if end else None)

    @task(pool="erp_api", inlets=lineage.store("exceptions", *lineage.CLINICAL, *lineage.REMITTANCE[:2]),
          outlets=[*lineage.peer(lineage.BILLING_API, "charges:batch"), *lineage.peer(lineage.ERP_API, *lineage.ERP_DOCUMENTS),
                   *lineage.store("exceptions", "exception_events", *lineage.POSTINGS)])
    def replay(ids: list[int]) -> dict:
        from carefabric.interfaces.exception_replay import replay as replay_ids

        if not ids:
            return {"exceptions": 0}
        context = get_current_context()
        user = getattr(context.get("dag_run"), "triggering_user_name", None)
        actor = user or context["params"].get("actor") or "operator"
        mode = variable("carefabric_posting_mode", "summary")
        return replay_ids(engine(), billing_client(), erp_client(), exception_ids=ids, actor=actor, mode=mode)

    replay(select_exceptions())


exception_replay()
