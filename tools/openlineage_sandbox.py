"""OpenLineage in the sandbox: every event as one JSON line in ``<data>/lineage/openlineage.jsonl``.

``make demo``, ``make airflow`` and the whole-DAG tests run Airflow with these settings
(``airflow_runtime.airflow_env``; ``airflow_standalone.sh`` evaluates this script's output).
Production sends the same events to Marquez over HTTP (docker-compose.yaml; docs/OPERATIONS.md,
"Lineage"). A setting already in the environment wins, e.g. ``AIRFLOW__OPENLINEAGE__DISABLED=true``
to measure without lineage.

The datasets come from the tasks' inlets and outlets (``carefabric_airflow.lineage``). The PHI
guards below hold in production too (the compose file repeats them; tests/test_lineage.py keeps
the two equal), all in one locked emission policy:

* no source code facet: task source is not PHI, but a job facet has no business carrying code
  (the emission policy's ``include_source_code``; the older ``disable_source_code`` option only
  earns a deprecation warning from provider 2.20);
* no hook lineage: object storage and SFTP hooks report every file they touch, by name (a staged
  835's or statement's file name), and where they report anything the provider drops the
  declared inlets and outlets;
* no full task info: the curated task facet, never every operator attribute (arguments included).

Emission runs in a thread of the task's process, not a fork of it (``execute_in_thread``): a
fork copies the task runner with its connection to the supervisor, and costs ~0.13 s an event
against ~0.02 s in a thread here (four events of one toy DAG, twice each way, at load 15).

Kept apart from ``carefabric_airflow`` so that tools can import it without importing Airflow.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

NAMESPACE = "carefabric"

PHI_GUARDS = {
    # locked: no DAG or task may switch a guard back on
    "AIRFLOW__OPENLINEAGE__EMISSION_POLICY": json.dumps(
        [{"scope": {}, "controls": {"include_source_code": False, "hook_lineage": False,
                                    "include_full_task_info": False}, "locked": True}]),
}
#: How events are sent, the same in production too.
EMISSION = {"AIRFLOW__OPENLINEAGE__EXECUTE_IN_THREAD": "true"}


def events_file(data: Path) -> Path:
    """Where the sandbox's lineage events go (one JSON event per line, appended)."""
    return data / "lineage" / "openlineage.jsonl"


def sandbox_env(data: Path) -> dict[str, str]:
    """The Airflow settings of lineage in the sandbox (the folder is created: the transport does not)."""
    path = events_file(data)
    path.parent.mkdir(parents=True, exist_ok=True)
    transport = {"type": "file", "log_file_path": str(path), "append": True}
    return {"AIRFLOW__OPENLINEAGE__NAMESPACE": NAMESPACE,
            "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(transport), **PHI_GUARDS, **EMISSION}


if __name__ == "__main__":  # `eval "$(python tools/openlineage_sandbox.py DATA_DIR)"`: exports, unless already set
    for key, value in sandbox_env(Path(sys.argv[1]).resolve()).items():
        print(f"export {key}=${{{key}:-{shlex.quote(value)}}}")
