"""OpenLineage: every interface's tasks name their datasets, the events carry them and no PHI.

The events of real DAG runs are checked in tests/test_dags_e2e.py (``check_day_lineage`` below,
called on the business day that test already runs: no DAG run of its own here). These tests read
the declarations, the dataset naming and the PHI guards of the sandbox and the compose file.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT / "tools"))

from openlineage_sandbox import EMISSION, PHI_GUARDS, events_file, sandbox_env  # noqa: E402

INTERFACES = ("ehr_ingest", "ehr_bulk_export", "payer_remittance", "billing_sync", "bank_statement",
              "erp_master_data", "erp_posting", "claims_reconciliation", "exception_replay", "phi_retention")
# A dataset is a folder, a table or an endpoint: a name ending like a delivered file means a file
# name (which may carry PHI) got into lineage.
FILE_NAME = re.compile(r"\.(835|hl7|bai2?|ndjson|json|csv|txt|x12|edi)$", re.IGNORECASE)

Pair = tuple[str, str]


def _ol_datasets(objects: Iterable[Any]) -> set[Pair]:
    """What the OpenLineage provider makes of a task's inlets or outlets (its own converter)."""
    from airflow.providers.openlineage.extractors.manager import ExtractorManager

    found = [ExtractorManager.convert_to_ol_dataset(o) for o in objects]
    return {(d.namespace, d.name) for d in found if d is not None}


def test_store_namespace_follows_openlineage_naming_without_credentials() -> None:
    from carefabric_airflow.lineage import store_namespace

    assert store_namespace("postgresql+psycopg2://carefabric:s3cret@db.internal:6432/carefabric") == (
        "postgres://db.internal:6432", "carefabric.public")
    assert store_namespace("postgresql://u:p@postgres/cf") == ("postgres://postgres:5432", "cf.public")
    assert store_namespace("sqlite:////srv/data/carefabric.db") == ("sqlite:///srv/data/carefabric.db", "main")


def test_every_interface_declares_inputs_and_outputs_the_provider_converts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAREFABRIC_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CAREFABRIC_DB_URL", "postgresql+psycopg2://carefabric:pw-not-in-lineage@postgres/carefabric")
    monkeypatch.setenv("CAREFABRIC_HANDOFF_URL", "s3://aws_default@handoff-bucket/carefabric/handoff")
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(str(PROJECT / "dags"))
    assert not bag.import_errors
    for dag_id in INTERFACES:
        dag = bag.dags[dag_id]
        inputs = set().union(*(_ol_datasets(t.inlets) for t in dag.tasks))
        outputs = set().union(*(_ol_datasets(t.outlets) for t in dag.tasks))
        assert inputs and outputs, f"{dag_id}: no dataset in {'inputs' if not inputs else 'outputs'}"
        for namespace, name in inputs | outputs:
            assert "pw-not-in-lineage" not in namespace + name and "aws_default" not in namespace + name
            assert not FILE_NAME.search(name), f"{dag_id}: a file name in lineage: {name}"
    fetch = bag.dags["payer_remittance"].get_task("fetch")
    assert _ol_datasets(fetch.inlets) == {("sftp", "payer/inbound")}
    assert ("s3://handoff-bucket", "carefabric/handoff/payer_remittance") in _ol_datasets(fetch.outlets)
    process = bag.dags["payer_remittance"].get_task("process")
    assert ("postgres://postgres:5432", "carefabric.public.remittances") in _ol_datasets(process.outlets)
    send = bag.dags["erp_posting"].get_task("send_documents")
    assert _ol_datasets(send.outlets) == {("https", f"erp/api/v1/{p}")
                                          for p in ("journal-batches", "inventory-movements", "cash-receipts")}


def test_erp_paths_match_the_clients() -> None:
    """The lineage module repeats the ERP's paths (importing the clients is too heavy for parsing)."""
    from carefabric.clients.erp import MASTER_DATA
    from carefabric.posting.payloads import DOCUMENT_PATHS
    from carefabric_airflow.lineage import ERP_DOCUMENTS, ERP_MASTER_LISTS

    assert ERP_MASTER_LISTS == MASTER_DATA
    assert set(ERP_DOCUMENTS) == {p.strip("/") for p in DOCUMENT_PATHS.values()}


def test_sandbox_writes_events_under_the_data_folder_with_the_phi_guards(tmp_path: Path) -> None:
    env = sandbox_env(tmp_path)
    transport = json.loads(env["AIRFLOW__OPENLINEAGE__TRANSPORT"])
    assert transport == {"type": "file", "log_file_path": str(tmp_path / "lineage" / "openlineage.jsonl"),
                         "append": True}
    assert events_file(tmp_path).parent.is_dir()
    policy = json.loads(env["AIRFLOW__OPENLINEAGE__EMISSION_POLICY"])
    assert policy == [{"scope": {}, "locked": True, "controls": {
        "include_source_code": False, "hook_lineage": False, "include_full_task_info": False}}]
    assert env["AIRFLOW__OPENLINEAGE__EXECUTE_IN_THREAD"] == "true"


def test_production_compose_sends_to_marquez_with_the_same_phi_guards() -> None:
    compose = yaml.safe_load((PROJECT / "docker-compose.yaml").read_text())
    env = compose["x-airflow-common"]["environment"]
    shared = {**PHI_GUARDS, **EMISSION}
    assert {k: env.get(k) for k in shared} == shared
    transport = json.loads(env["AIRFLOW__OPENLINEAGE__TRANSPORT"])
    assert transport["type"] == "http" and "${OPENLINEAGE_URL:-http" in transport["url"]
    assert env["AIRFLOW__OPENLINEAGE__NAMESPACE"]


# ---- the events of a real business day (called from tests/test_dags_e2e.py)

def read_events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _pairs(event: dict[str, Any], side: str) -> set[Pair]:
    return {(d["namespace"], d["name"]) for d in event.get(side) or []}


def expected_day_lineage(data: Path, store_db: str) -> dict[str, tuple[set[Pair], set[Pair]]]:
    """(inputs, outputs) of the tasks that carry a business day from the peers to the ERP."""
    from carefabric_airflow.lineage import store_namespace

    namespace, prefix = store_namespace(store_db)

    def store(*tables: str) -> set[Pair]:
        return {(namespace, f"{prefix}.{t}") for t in tables}

    handoff = ("file://", str((data / "handoff" / "payer_remittance").resolve()).lstrip("/"))
    landing = ("file://", str((data / "landing" / "ehr").resolve()).lstrip("/"))
    remittance = store("remittances", "remit_claims", "remit_lines", "remit_adjustments", "provider_adjustments",
                       "ack_999", "exceptions")
    erp_documents = {("https", f"erp/api/v1/{p}") for p in ("journal-batches", "inventory-movements", "cash-receipts")}
    return {
        "payer_remittance.fetch": ({("sftp", "payer/inbound")},
                                   {handoff, ("sftp", "payer/archive"), *store("inbound_files")}),
        "payer_remittance.process": ({handoff}, remittance),
        "ehr_ingest.ingest": ({landing}, store("inbound_files", "raw_messages", "encounters", "charges",
                                              "supply_usage", "exceptions")),
        "ehr_ingest.route_to_billing": (store("charges"), {("https", "billing/api/v1/charges:batch")}),
        "erp_posting.send_documents": (store("erp_postings", "erp_posting_lines"), erp_documents),
        "claims_reconciliation.email_finance": (store("reconciliation_runs", "reconciliation_items"),
                                                {("smtp", "finance/reconciliation-report")}),
    }


def check_day_lineage(data: Path, store_db: str) -> None:
    """The day's lineage file: START and COMPLETE per task with its datasets, guards in force."""
    events = read_events(events_file(data))
    by_job: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for event in events:
        by_job.setdefault(event["job"]["name"], {}).setdefault(event["eventType"], []).append(event)
    for dag_id in ("erp_master_data", "ehr_ingest", "ehr_bulk_export", "payer_remittance", "billing_sync",
                   "bank_statement", "erp_posting", "claims_reconciliation", "exception_replay"):
        assert any(job.startswith(f"{dag_id}.") and {"START", "COMPLETE"} <= set(kinds)
                   for job, kinds in by_job.items()), f"no START and COMPLETE task events of {dag_id}"
    for job, (inputs, outputs) in expected_day_lineage(data, store_db).items():
        kinds = by_job.get(job, {})
        assert kinds.get("START") and kinds.get("COMPLETE"), f"{job}: {sorted(kinds)}"
        for event in kinds["START"] + kinds["COMPLETE"]:
            assert (_pairs(event, "inputs"), _pairs(event, "outputs")) == (inputs, outputs), job
    for event in events:
        facets = {**event["job"].get("facets", {}), **event["run"].get("facets", {})}
        assert not {"sourceCode", "sourceCodeLocation", "sql"} & set(facets), event["job"]["name"]
        for namespace, name in _pairs(event, "inputs") | _pairs(event, "outputs"):
            assert not FILE_NAME.search(name), f"a file name in lineage: {namespace} {name}"
