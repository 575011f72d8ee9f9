"""Shared fixtures: a scratch PostgreSQL database per test session, store URLs, and the
interface tests' day, peers and store.

PostgreSQL tests skip with a reason when no server answers at 127.0.0.1:5432, unless
``CAREFABRIC_REQUIRE_POSTGRES=1`` (set by ``.ci/run``), where a missing server fails the run.

The interface fixtures (``day_dir``, ``sandbox``, ``peers``, ``data_dir``, ``store``,
``engine``) are the one home of what most interface modules start from; a module that needs
another day or store overrides the name (a module fixture may take the conftest one of the
same name and add to it).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from airflow.providers.sftp.hooks.sftp import SFTPHook
    from sqlalchemy.engine import Engine

    from sandbox.runner import SandboxServers

# Tests run in the sandbox: the PHI token key falls back to the sandbox key (carefabric.phi).
os.environ.setdefault("CAREFABRIC_SANDBOX", "1")

PG_ADMIN_URL = os.environ.get("CAREFABRIC_TEST_PG_ADMIN", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
# shared/samples sits beside the checkout (CI clones the repo next to shared/);
# CAREFABRIC_SAMPLES_DIR points elsewhere.
SAMPLES_DIR = Path(
    os.environ.get("CAREFABRIC_SAMPLES_DIR", Path(__file__).resolve().parents[1].parent / "shared" / "samples")
)


def _pg_reachable() -> str | None:
    """None when PostgreSQL answers, else the reason it does not."""
    try:
        import sqlalchemy as sa

        engine = sa.create_engine(PG_ADMIN_URL)
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
        engine.dispose()
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        return f"PostgreSQL at 127.0.0.1:5432 not reachable: {type(exc).__name__}: {str(exc).splitlines()[0]}"


@pytest.fixture(autouse=True)
def _peer_call_recorder_per_test() -> Iterator[None]:
    """Each test starts with the process's peer-call recorder unbound and empty.

    A client built from an Airflow connection binds it for the life of the process (right for a
    task process); in a test worker that binding and its unwritten sums would carry one test's
    peer calls into the next test's store (``carefabric.peer_calls``).
    """
    from carefabric import peer_calls

    peer_calls.RECORDER.reset()
    yield
    peer_calls.RECORDER.reset()


@pytest.fixture(scope="session")
def pg_scratch_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped afterwards."""
    reason = _pg_reachable()
    if reason:
        if os.environ.get("CAREFABRIC_REQUIRE_POSTGRES") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    import sqlalchemy as sa

    name = f"cf_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(
                sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"), {"n": name}
            )
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty store URL, once on SQLite and once on the scratch PostgreSQL database.

    PostgreSQL tests share the session database, so each gets its own schema-free reset by
    the store's own ``drop_all``/migrations (see tests that use it).
    """
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return request.getfixturevalue("pg_scratch_url")


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """``shared/samples``: real public HL7 and X12 files written by others.

    A clone without ``shared/`` beside it skips these tests with the reason; CI
    (``CAREFABRIC_REQUIRE_SAMPLES=1``, set by ``.ci/run``) fails instead.
    """
    if not SAMPLES_DIR.is_dir():
        reason = f"public samples not found at {SAMPLES_DIR} (clone beside shared/ or set CAREFABRIC_SAMPLES_DIR)"
        if os.environ.get("CAREFABRIC_REQUIRE_SAMPLES") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return SAMPLES_DIR


# --------------------------------------------------------------------------- interface tests


@pytest.fixture(scope="module")
def day_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One small generated business day (``scenario.generate_day``), once a module."""
    import scenario

    out = tmp_path_factory.mktemp("day")
    scenario.generate_day(out)
    return out


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServers]:
    """The sandbox peers (ERP, billing, SFTP, SMTP, EHR FHIR) on free loopback ports, once a module."""
    from sandbox.runner import SandboxServers

    with SandboxServers(tmp_path_factory.mktemp("sandbox")) as servers:
        yield servers


@pytest.fixture
def peers(sandbox: SandboxServers, day_dir: Path) -> SandboxServers:
    """Both HTTP peers emptied, the ERP loaded with the day's master data (``/_sandbox/load``)."""
    import scenario

    return scenario.reset_peers(sandbox, day_dir)


@pytest.fixture
def sftp_hook(sandbox: SandboxServers, monkeypatch: pytest.MonkeyPatch) -> SFTPHook:
    """The sftp provider's hook on the sandbox SFTP server, as the payer DAG's ``fetch`` gets it."""
    from airflow.providers.sftp.hooks.sftp import SFTPHook

    from sandbox import SFTP_PASSWORD, SFTP_USER

    monkeypatch.setenv("AIRFLOW_CONN_PAYER_SFTP_T", json.dumps({
        "conn_type": "sftp", "host": "127.0.0.1", "port": sandbox.sftp_port, "login": SFTP_USER,
        "password": SFTP_PASSWORD, "extra": {"no_host_key_check": True}}))
    return SFTPHook(ssh_conn_id="payer_sftp_t")


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The test's own ``CAREFABRIC_DATA_DIR`` (archives, landing, handoff)."""
    path = tmp_path / "data"
    monkeypatch.setenv("CAREFABRIC_DATA_DIR", str(path))
    return path


@pytest.fixture
def store(store_url: str, data_dir: Path) -> Iterator[Engine]:
    """An empty store of the test's own at head, on SQLite and on PostgreSQL."""
    import scenario

    with scenario.migrated_store(store_url) as engine:
        yield engine


@pytest.fixture
def engine(store: Engine, day_dir: Path) -> Engine:
    """The store holding the day's crosswalks and ERP master data: what a day starts from."""
    import scenario

    scenario.seed_store(store, day_dir)
    return store
