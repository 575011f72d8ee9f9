"""From a finished export to the EHR ingest: where the files land and who reads them.

The downloads go under the landing folder, in ``fhir_bulk/`` (``bulk_landing``): the
``ehr_ingest`` sensor lists only the landing folder itself (the EHR's HL7 batches), so a pulled
file is read once, by the pull that fetched it, through the very same ``ingest_file``.
Idempotent twice over: a file already downloaded for a manifest is not fetched again, and a
file whose bytes were already ingested (a rerun's new export of the same resources) is a
``duplicate`` to ``ingest_file``; every charge still carries its own idempotency key.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from carefabric.config import landing_dir

FOLDER = "fhir_bulk"


def bulk_landing(landing: Path | None = None) -> Path:
    """The folder pulled exports are downloaded into (created on first use)."""
    path = (landing or landing_dir()) / FOLDER
    path.mkdir(parents=True, exist_ok=True)
    return path


def ingest_downloads(paths: Iterable[str | Path], engine: Engine, *, business_date: dt.date | None,
                     validate: bool = True) -> dict[str, Any]:
    """Hand each downloaded file to the EHR ingest, in the order given (Encounters first, so a
    ChargeItem's encounter is in the store when its file is read); counts only, no PHI."""
    from carefabric.interfaces.ehr_ingest import ingest_file

    results = [ingest_file(Path(p), engine, business_date=business_date, validate=validate) for p in paths]
    totals = {"files": len(results), "duplicates": sum(r["status"] == "duplicate" for r in results)}
    for key in ("messages", "encounters", "charges", "held", "message_errors"):
        totals[key] = sum(int(r.get(key, 0)) for r in results)
    return {**totals, "by_file": [{k: v for k, v in r.items() if k != "sha256"} for r in results]}
