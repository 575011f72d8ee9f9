"""Airflow plugin: the carefabric operator console inside the Airflow API server and UI.

Mounts the console's FastAPI app at ``/carefabric`` (``fastapi_apps``) and adds it to the UI's
navigation (``external_views``: the UI shows it in an iframe at ``/plugin/carefabric``).
Schedules and reruns stay in Airflow's own pages; the console covers the exception queue,
replay, traces, crosswalks and interface health.

Replay from the console answers with the ``exception_replay`` DAG command: routing to billing
and posting to the ERP belong in that DAG (pool, retries, logs), not in a web request.
Plugin FastAPI apps are not behind Airflow's authentication: expose the API server only where
operators are, or put the console behind the same proxy authentication as the UI.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from carefabric.console import create_app
from carefabric.store.db import get_engine

URL_PREFIX = "/carefabric"

#: The console app; its engine is made at the first request (importing this opens no database).
app = create_app(get_engine)


class CarefabricConsolePlugin(AirflowPlugin):
    name = "carefabric_console"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "carefabric console"}]
    external_views = [
        {
            "name": "carefabric console",
            "href": "carefabric/",  # relative to the UI's base URL (works behind a proxy prefix)
            "url_route": "carefabric",
            "destination": "nav",
        }
    ]
