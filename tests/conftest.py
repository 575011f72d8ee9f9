"""Shared fixtures: a scratch PostgreSQL database per test session, and store URLs.

PostgreSQL tests skip with a reason when no server answers at 127.0.0.1:5432, unless
``CAREFABRIC_REQUIRE_POSTGRES=1`` (set by ``.ci/run``), where a missing server fails the run.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

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
