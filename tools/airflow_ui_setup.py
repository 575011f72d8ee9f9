"""Prepare ``$AIRFLOW_HOME`` for ``make airflow``: metadata DB, store, connections and variables."""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from airflow_runtime import airflow_env, ensure_metadata_db, load_settings  # noqa: E402

from carefabric.config import data_dir  # noqa: E402
from carefabric.store.db import upgrade  # noqa: E402


def main() -> None:
    home = Path(os.environ.get("AIRFLOW_HOME", data_dir() / "airflow_home"))
    env = airflow_env(home)
    ensure_metadata_db(env)
    load_settings(env, sandbox_dir=data_dir() / "sandbox")
    upgrade()
    print(f"Airflow home {home}: metadata DB migrated, connections and variables loaded, store at head.")


if __name__ == "__main__":
    main()
