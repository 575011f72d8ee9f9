"""Every DAG imports cleanly and follows the project's authoring rules.

The rules are the Astronomer template's integrity checks (no import errors, tags, retries) plus
ours: an owner, and a light module scope (the dag-processor re-parses these files every few
seconds, so pandas, Great Expectations and database engines must not load at import time).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

DAGS_DIR = Path(__file__).resolve().parents[1] / "dags"
EXPECTED_DAGS = {
    "ehr_ingest",
    "payer_remittance",
    "billing_sync",
    "erp_master_data",
    "erp_posting",
    "claims_reconciliation",
    "exception_replay",
    "bank_statement",
    "phi_retention",
    "ehr_bulk_export",
}
HEAVY_MODULES = ("pandas", "great_expectations", "matplotlib", "pyx12", "hl7apy", "paramiko.transport_sftp")


@pytest.fixture(scope="module")
def dagbag(tmp_path_factory: pytest.TempPathFactory, monkeypatch_module: pytest.MonkeyPatch):
    monkeypatch_module.setenv("AIRFLOW_HOME", str(tmp_path_factory.mktemp("airflow_home")))
    monkeypatch_module.setenv("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_DIR))


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def test_no_import_errors(dagbag) -> None:
    assert dagbag.import_errors == {}, dagbag.import_errors


def test_every_interface_has_its_dag(dagbag) -> None:
    assert set(dagbag.dag_ids) == EXPECTED_DAGS


@pytest.mark.parametrize("dag_id", sorted(EXPECTED_DAGS))
def test_dag_follows_authoring_rules(dagbag, dag_id: str) -> None:
    dag = dagbag.dags.get(dag_id)
    assert dag is not None
    assert dag.tags, f"{dag_id} has no tags"
    assert dag.description, f"{dag_id} has no description"
    assert dag.doc_md and len(dag.doc_md) > 200, f"{dag_id} shows no documentation in the UI (doc_md)"
    assert dag.dagrun_timeout is not None, f"{dag_id} runs have no dagrun_timeout"
    for task in dag.tasks:
        assert task.owner and task.owner != "airflow", f"{dag_id}.{task.task_id} has no owner"
        assert task.execution_timeout is not None, f"{dag_id}.{task.task_id} has no execution_timeout"
        assert task.retries >= 2 or task.task_id in NO_RETRY_TASKS.get(dag_id, ()), (
            f"{dag_id}.{task.task_id} retries={task.retries}"
        )


# Tasks that must never be retried automatically (a manual replay is an operator's decision).
NO_RETRY_TASKS: dict[str, tuple[str, ...]] = {}


def test_dag_files_import_without_heavy_modules() -> None:
    """Parsing a DAG file must not import pandas, GX, matplotlib or the X12/HL7 libraries."""
    code = (
        "import importlib.util, json, sys, pathlib\n"
        f"heavy = {HEAVY_MODULES!r}\n"
        "out = {}\n"
        f"for path in sorted(pathlib.Path({str(DAGS_DIR)!r}).glob('*.py')):\n"
        "    spec = importlib.util.spec_from_file_location(path.stem, path)\n"
        "    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)\n"
        "    out[path.name] = [m for m in heavy if m in sys.modules]\n"
        "print(json.dumps(out))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded, "no DAG files found"
    assert all(not heavy for heavy in loaded.values()), loaded
