"""Where carefabric keeps its files and which database it uses.

Everything defaults to the project's ``data/`` folder and an embedded SQLite store, so the
demo runs on a fresh machine. ``CAREFABRIC_DATA_DIR`` and ``CAREFABRIC_DB_URL`` point a real
installation at its own volume and PostgreSQL.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def data_dir() -> Path:
    """The data folder (created on first use)."""
    path = Path(os.environ.get("CAREFABRIC_DATA_DIR", PROJECT_ROOT / "data"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def db_url() -> str:
    """The integration store's SQLAlchemy URL (SQLite under the data folder by default)."""
    url = os.environ.get("CAREFABRIC_DB_URL")
    if url:
        return url
    return f"sqlite:///{data_dir() / 'carefabric.db'}"


def landing_dir() -> Path:
    """Where the EHR drops its extract files (HL7 v2 batches and FHIR NDJSON)."""
    path = Path(os.environ.get("CAREFABRIC_LANDING_DIR", data_dir() / "landing" / "ehr"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def archive_dir() -> Path:
    """Where every inbound file is copied before it is parsed."""
    path = data_dir() / "archive"
    path.mkdir(parents=True, exist_ok=True)
    return path
