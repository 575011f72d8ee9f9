"""Payer 835 and bank BAI2 transport with the sftp provider's SFTPHook against the sandbox SFTP
server, and the handoff between ``fetch`` and ``process`` through object storage instead of a
worker's disk.

``fetch`` runs as "worker A" and ``process`` as "worker B" (each with its own data folder); only
the handoff store (``CAREFABRIC_HANDOFF_URL``) is shared, as an object store would be.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import scenario
from sqlalchemy.engine import Engine

from carefabric.store.models import ExceptionRecord, InboundFile
from sandbox import SFTP_PASSWORD, SFTP_USER
from sandbox.sftp_server import SftpDrop


@pytest.fixture
def sftp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SftpDrop]:
    server = SftpDrop(tmp_path / "sftp")
    server.start()
    monkeypatch.setenv("AIRFLOW_CONN_PAYER_SFTP_T", json.dumps({
        "conn_type": "sftp", "host": "127.0.0.1", "port": server.port, "login": SFTP_USER,
        "password": SFTP_PASSWORD, "extra": {"no_host_key_check": True}}))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    with scenario.migrated_store(f"sqlite:///{tmp_path / 'store.db'}") as eng:
        yield eng


def test_fetch_stages_archives_on_the_server_and_process_reads_the_stage(
        sftp: SftpDrop, engine: Engine, samples_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.providers.sftp.hooks.sftp import SFTPHook

    from carefabric_airflow.payer_transport import fetch_remittance, list_remittances, process_staged

    sample = (samples_dir / "x12_835" / "lfh_managed_care.835").read_bytes()
    inbound = sftp.root / "inbound" / "PAYER-A"  # created after the server started: no archive folder yet
    inbound.mkdir(parents=True)
    for name in ("good.835", "..evil.835", "notes.txt"):
        (inbound / name).write_bytes(sample)
    (sftp.root / "inbound" / "PAYER-B").mkdir()
    (sftp.root / "inbound" / "PAYER-B" / "same.835").write_bytes(sample[:-1] + b"\n")
    (sftp.root / "archive" / "PAYER-B").mkdir()
    (sftp.root / "archive" / "PAYER-B" / "same.835").write_bytes(b"an earlier delivery under this name")

    monkeypatch.setenv("CAREFABRIC_HANDOFF_URL", f"file://{tmp_path / 'object-store' / 'handoff'}")
    monkeypatch.setenv("CAREFABRIC_DATA_DIR", str(tmp_path / "worker-a"))
    hook = SFTPHook(ssh_conn_id="payer_sftp_t")
    listed = list_remittances(hook)
    assert listed == ["/inbound/PAYER-A/..evil.835", "/inbound/PAYER-A/good.835", "/inbound/PAYER-B/same.835"]
    fetched = {path: fetch_remittance(hook, path, engine) for path in listed}

    # refused name: an exception, the file untouched on the server; accepted ones archived there
    assert fetched["/inbound/PAYER-A/..evil.835"] is None
    (refused,) = scenario.exceptions(engine, ExceptionRecord.reason_code == "UNSAFE_FILE_NAME")
    assert refused.record_key == "/inbound/PAYER-A/..evil.835"
    assert sorted(p.name for p in inbound.iterdir()) == ["..evil.835", "notes.txt"]
    assert (sftp.root / "archive" / "PAYER-A" / "good.835").read_bytes() == sample
    kept = sorted(p.name for p in (sftp.root / "archive" / "PAYER-B").iterdir())
    assert kept[-1] == "same.835" and kept[0].endswith("_same.835") and len(kept) == 2  # both copies kept

    # staged in the object store, nothing on worker A's disk
    good = fetched["/inbound/PAYER-A/good.835"]
    assert good is not None and good["payer"] == "PAYER-A"
    assert good["path"].startswith(f"file://{tmp_path / 'object-store' / 'handoff'}/payer_remittance/PAYER-A/")
    assert Path(good["path"].removeprefix("file://")).read_bytes() == sample
    assert not (tmp_path / "worker-a").exists()

    # worker B processes what worker A staged; the stage is gone afterwards
    monkeypatch.setenv("CAREFABRIC_DATA_DIR", str(tmp_path / "worker-b"))
    result = process_staged(good, engine, business_date=scenario.BUSINESS_DATE)
    assert result["file"] == "good.835" and result["transactions"] == 1
    (row,) = scenario.rows(engine, InboundFile, InboundFile.name == "good.835")
    assert Path(row.archive_path).read_bytes() == sample and str(tmp_path / "worker-b") in row.archive_path
    assert not Path(good["path"].removeprefix("file://")).exists()


def test_bank_statements_are_staged_then_read_on_another_worker(
        sftp: SftpDrop, engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.providers.sftp.hooks.sftp import SFTPHook

    from carefabric_airflow.bank_transport import fetch_bank_statements, process_staged_statement

    sample = (Path(__file__).parent / "samples_extra" / "bai2" / "moj_example.bai2").read_bytes()
    (sftp.root / "inbound" / "bank").mkdir(parents=True)
    (sftp.root / "inbound" / "bank" / "stmt_1.bai2").write_bytes(sample)
    monkeypatch.setenv("CAREFABRIC_HANDOFF_URL", f"file://{tmp_path / 'object-store'}")
    monkeypatch.setenv("CAREFABRIC_DATA_DIR", str(tmp_path / "worker-a"))

    (url,) = fetch_bank_statements(SFTPHook(ssh_conn_id="payer_sftp_t"), engine, inbound="/inbound/bank")
    assert url.startswith(f"file://{tmp_path / 'object-store'}/bank_statement/") and url.endswith("/stmt_1.bai2")
    assert list((sftp.root / "inbound" / "bank").iterdir()) == []
    assert (sftp.root / "archive" / "bank" / "stmt_1.bai2").read_bytes() == sample
    assert not (tmp_path / "worker-a").exists()  # nothing left on worker A's disk

    monkeypatch.setenv("CAREFABRIC_DATA_DIR", str(tmp_path / "worker-b"))
    result = process_staged_statement(url, engine, business_date=scenario.BUSINESS_DATE)
    assert (result["file"], result["status"], result["stored"]) == ("stmt_1.bai2", "processed", 1)
    (row,) = scenario.rows(engine, InboundFile, InboundFile.name == "stmt_1.bai2")
    assert row.status == "processed"
    assert not Path(url.removeprefix("file://")).exists()
