"""Registers carefabric's custom deadline reference with Airflow's scheduler.

The scheduler rebuilds a DAG's Deadline Alerts from their serialized form and finds a custom
reference class only among those a plugin lists (``deadline_references``); the DAG file's import
registers it with the SDK side only. ``CloseEmailDue`` computes the nightly close's email
deadline per run on the local calendar (``carefabric_airflow.deadlines``).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from carefabric_airflow.deadlines import CloseEmailDue


class CarefabricDeadlinesPlugin(AirflowPlugin):
    name = "carefabric_deadlines"
    deadline_references = [CloseEmailDue]
