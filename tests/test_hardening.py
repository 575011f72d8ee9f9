"""Hardening: the PHI token key fails closed outside the sandbox; the store and connection files
are owner-only; ``make airflow`` listens on 127.0.0.1 unless told otherwise."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import pytest

from carefabric import phi
from carefabric.store.db import get_engine

PROJECT = Path(__file__).resolve().parents[1]


def test_token_key_fails_closed_outside_the_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CAREFABRIC_TOKEN_KEY", raising=False)
    monkeypatch.delenv("CAREFABRIC_SANDBOX", raising=False)
    with pytest.raises(phi.TokenKeyMissing, match="CAREFABRIC_TOKEN_KEY is not set"):
        phi.token("M00340524", kind="mrn")
    monkeypatch.setenv("CAREFABRIC_SANDBOX", "1")
    sandbox = phi.token("M00340524", kind="mrn")
    monkeypatch.setenv("CAREFABRIC_TOKEN_KEY", "a-real-secret")
    monkeypatch.delenv("CAREFABRIC_SANDBOX")
    real = phi.token("M00340524", kind="mrn")
    assert sandbox and real and sandbox != real and real.startswith("tok_")


def test_store_file_is_created_owner_only(tmp_path: Path) -> None:
    engine = get_engine(f"sqlite:///{tmp_path / 'store.db'}")
    with engine.connect() as conn:
        conn.exec_driver_sql("create table t (x int)")
    engine.dispose()
    assert stat.S_IMODE((tmp_path / "store.db").stat().st_mode) == 0o600


def test_connection_files_are_owner_only(tmp_path: Path) -> None:
    sys.path.insert(0, str(PROJECT / "tools"))
    try:
        from airflow_runtime import SETTINGS_FILE, settings_to_import_files
    finally:
        sys.path.remove(str(PROJECT / "tools"))
    (tmp_path / "connections.json").write_text("{}")
    (tmp_path / "connections.json").chmod(0o644)  # left by an older run
    conn_file, var_file = settings_to_import_files(SETTINGS_FILE, tmp_path)
    assert json.loads(conn_file.read_text())
    for path in (conn_file, var_file):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_make_airflow_listens_on_localhost_and_keeps_files_private() -> None:
    script = (PROJECT / "tools" / "airflow_standalone.sh").read_text()
    assert 'AIRFLOW__API__HOST="${AIRFLOW_HOST:-127.0.0.1}"' in script
    assert "umask 077" in script and "operator:user" in script and "viewer:viewer" in script
