"""Celery configuration for carefabric's workers: Airflow's defaults, plus heavy imports done once.

On CeleryExecutor every task instance runs in a process the Celery pool process forks for it
(the task SDK's supervisor, then the task runner). What the pool process has imported, the task
inherits; what it has not, every task imports again. carefabric's file tasks import Great
Expectations (``import great_expectations`` is 1.7-2.4 s on a quiet core, over 15 s on a loaded
one), pandas, pyx12 and the interface modules: the regional day has ~55 such task instances
(``ehr_ingest`` per extract file, ``payer_remittance`` per 835), so those imports were paid ~55
times. Importing them once when the worker starts (Celery's ``worker_init`` signal, in the
worker's main process before its pool is forked) makes every task start with them loaded.

Nothing is connected or opened here: only modules are imported, so nothing process-bound (a
database connection, a thread) is inherited by a fork. A module that fails to import is logged
and skipped: the task that needs it imports it itself, and reports the error there.

Enable with ``AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS=carefabric_airflow.celery_config.CELERY_CONFIG``
(``docker-compose.yaml`` and ``tools/bench_scheduler.py`` do).
"""

from __future__ import annotations

import importlib
import logging
import time
from typing import Any

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG
from celery.signals import worker_init  # type: ignore[import-untyped]

log = logging.getLogger(__name__)

CELERY_CONFIG: dict[str, Any] = dict(DEFAULT_CELERY_CONFIG)

#: Imported once per worker; each costs every task that needs it an import otherwise.
PRELOAD = (
    "pandas",
    "great_expectations",
    "pyx12.x12n_document",
    "carefabric.quality.validate",
    "carefabric.interfaces.ehr_ingest",
    "carefabric.interfaces.payer_remittance",
    "carefabric.interfaces.erp_posting",
    "carefabric.interfaces.claims_reconciliation",
    "carefabric_airflow.payer_transport",
    "airflow.providers.sftp.hooks.sftp",
)


def preload(modules: tuple[str, ...] = PRELOAD) -> dict[str, float | str]:
    """Import ``modules``; returns seconds per module, or the error's type for one that failed."""
    took: dict[str, float | str] = {}
    for name in modules:
        t0 = time.perf_counter()
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - a preload must never keep a worker from starting
            took[name] = type(exc).__name__
            log.warning("carefabric preload: %s not imported (%s); tasks import it themselves", name, type(exc).__name__)
            continue
        took[name] = round(time.perf_counter() - t0, 2)
    return took


@worker_init.connect
def _preload_on_worker_start(**_: Any) -> None:
    took = preload()
    log.info("carefabric preload: %s", took)
