"""Replay from the console: ask the orchestrator to run the ``exception_replay`` DAG as the user.

Routing to billing and posting to the ERP belong in that DAG (pool, retries, logs), not in a
web request. The console only decides what to replay (ids, or a reason code with optional
interface and business-date filters), checks that something open matches, and hands the run's
conf to a ``ReplayTrigger``. In Airflow the trigger is the REST API called with the user's own
token (``plugins/carefabric_console.py``), so the run is the user's, with the user's rights.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from carefabric.console.security import Principal

REPLAY_DAG = "exception_replay"


@dataclass(frozen=True)
class TriggeredRun:
    """A DAG run as the console shows it: its state and where to see it in the Airflow UI."""

    dag_id: str
    run_id: str
    state: str
    url: str | None = None
    conf: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class TriggerError(Exception):
    """The orchestrator refused or failed the trigger; ``status_code`` is passed on (403, 404, 502)."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


class ReplayTrigger(Protocol):
    """Starts and looks up ``exception_replay`` runs on behalf of a user."""

    def trigger(self, principal: Principal, conf: dict[str, Any]) -> TriggeredRun: ...

    def status(self, principal: Principal, run_id: str) -> TriggeredRun: ...


def replay_conf(
    *,
    exception_ids: list[int] | None = None,
    reason_code: str | None = None,
    interface: str | None = None,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
) -> dict[str, Any]:
    """The DAG's params for one request. Ids win: a selection replays exactly what was selected."""
    if exception_ids:
        return {"exception_ids": sorted({int(i) for i in exception_ids})}
    conf: dict[str, Any] = {"exception_ids": []}
    if reason_code:
        conf["reason_code"] = reason_code
    if interface:
        conf["interface"] = interface
    if date_from:
        conf["business_date_from"] = date_from.isoformat()
    if date_to:
        conf["business_date_to"] = date_to.isoformat()
    return conf
