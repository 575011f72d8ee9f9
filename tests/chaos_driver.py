"""One ``erp_posting`` day in a process of its own, so a fault test can ``kill -9`` it mid-flight.

Usage: ``python tests/chaos_driver.py STORE_URL ERP_URL YYYY-MM-DD LEASE_SECONDS [START_AT]``
(``START_AT``: a Unix time to wait for, so two drivers start at the same instant). It runs the
same function the DAG's tasks run (``carefabric.interfaces.erp_posting.post_day``); what a kill
leaves behind is what a killed Airflow worker leaves behind.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import scenario  # noqa: E402

from carefabric.interfaces.erp_posting import post_day  # noqa: E402
from carefabric.store.db import get_engine  # noqa: E402


def main(argv: list[str]) -> int:
    store_url, erp_url, day, lease = argv[:4]
    if len(argv) > 4:
        time.sleep(max(0.0, float(argv[4]) - time.time()))
    post_day(get_engine(store_url), scenario.erp_client(erp_url), dt.date.fromisoformat(day), lease_seconds=float(lease))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
