"""carefabric's Celery configuration: Airflow's defaults, and heavy imports done once per worker.

``carefabric_airflow.celery_config`` is what ``[celery] celery_config_options`` names in the
compose file and the scheduler bench. A real worker using it runs in
``tests/test_bench_scheduler.py`` (the tiny day on Celery); here, the two promises in isolation.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("airflow.providers.celery")


def test_config_is_airflows_default_config() -> None:
    from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG

    from carefabric_airflow.celery_config import CELERY_CONFIG

    assert CELERY_CONFIG == DEFAULT_CELERY_CONFIG
    assert CELERY_CONFIG is not DEFAULT_CELERY_CONFIG  # a copy: changing ours leaves Airflow's alone


def test_worker_start_imports_the_heavy_modules_and_survives_a_missing_one() -> None:
    # A fresh interpreter: this test process has long imported pandas and the interfaces itself.
    code = (
        "import sys\n"
        "from celery.signals import worker_init\n"
        "import carefabric_airflow.celery_config as cc\n"
        "assert 'great_expectations' not in sys.modules and 'carefabric.interfaces.payer_remittance' not in sys.modules\n"
        "cc.PRELOAD = ('carefabric.no_such_module', *cc.PRELOAD)\n"
        "took = cc.preload(cc.PRELOAD)\n"
        "assert took['carefabric.no_such_module'] == 'ModuleNotFoundError', took\n"
        "assert all(isinstance(v, float) for k, v in took.items() if k != 'carefabric.no_such_module'), took\n"
        "assert {'great_expectations', 'pyx12.x12n_document', 'carefabric.interfaces.payer_remittance'} <= set(sys.modules)\n"
        "assert any(r() is cc._preload_on_worker_start for _, r in worker_init.receivers)\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-3000:]
