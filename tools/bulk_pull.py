"""The demo's EHR extract through the Bulk Data pull: what ``run_day`` needs for ``ehr_bulk_export``.

The scenario's FHIR resources go to the sandbox EHR's FHIR server instead of the landing folder
(``python -m sandbox install --fhir-bulk``), the ``ehr_fhir`` connection points at the server the
sandbox actually started (its port, and the client key it generated, read by
``airflow_runtime.load_settings``), and ``ehr_bulk_export`` runs right after ``ehr_ingest``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DAG_ID = "ehr_bulk_export"


def fhir_url(sandbox_dir: Path) -> str:
    """The EHR FHIR base URL of the running sandbox (its ``ready.json``)."""
    return str(json.loads((Path(sandbox_dir) / "ready.json").read_text())["ehr_fhir_url"])


def install_args(sandbox_dir: Path) -> list[str]:
    """Extra ``sandbox install`` arguments: FHIR to the EHR server, not the landing folder."""
    return ["--fhir-bulk", "--fhir-url", fhir_url(sandbox_dir)]


def deliver(view: Path, sandbox_dir: Path) -> list[Path]:
    """The staged date's FHIR files into the EHR's FHIR server (as the EHR records them that day);
    returns the files delivered, which therefore stay out of the landing folder."""
    from sandbox.__main__ import load_fhir

    files = sorted((view / "ehr").glob("fhir_*.ndjson"))
    if files:
        load_fhir(view, fhir_url(sandbox_dir))
    return files


def connection_overrides(sandbox_dir: Path) -> dict[str, dict[str, Any]]:
    """The ``ehr_fhir`` connection's host and port as the sandbox bound them (port 0 in tests)."""
    host, port = fhir_url(sandbox_dir).split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)
    return {"ehr_fhir": {"host": host, "port": int(port)}}


__all__ = ["DAG_ID", "connection_overrides", "deliver", "fhir_url", "install_args"]
