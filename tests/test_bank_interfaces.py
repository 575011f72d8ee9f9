"""Bank statement interface (``carefabric.interfaces.bank_statement``) against the real sandbox
SFTP server and a real store on SQLite and PostgreSQL: delivery by ``python -m sandbox install``,
fetch and archive over SFTP, ingest, re-delivery that stores nothing twice, bad files to the
exception queue, and the cash sides read back for the matcher.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import paramiko
import pytest
import scenario
from sqlalchemy.engine import Engine

from carefabric.bank import match_deposits
from carefabric.interfaces.bank_statement import INTERFACE, cash_sides, fetch_statements, process_statement
from carefabric.money import to_cents
from carefabric.store.models import BankDeposit, InboundFile
from sandbox import SFTP_PASSWORD, SFTP_USER
from sandbox.generator import generate
from sandbox.runner import SandboxServers

DATE = dt.date(2025, 3, 14)


@pytest.fixture
def engine(store: Engine) -> Engine:
    """An empty store (conftest ``store``): no crosswalks, no master data."""
    return store


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[SandboxServers]:
    with SandboxServers(tmp_path / "sandbox") as servers:
        yield servers


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bank_generated")
    generate(out, seed=5, encounters=48, days=2, facilities=2, start_date=DATE)
    return out


@pytest.fixture
def sftp(sandbox: SandboxServers) -> Iterator[paramiko.SFTPClient]:
    transport = paramiko.Transport(("127.0.0.1", sandbox.sftp_port))
    transport.connect(username=SFTP_USER, password=SFTP_PASSWORD)
    client = paramiko.SFTPClient.from_transport(transport)
    assert client is not None
    try:
        yield client
    finally:
        client.close()
        transport.close()


def install(scenario_dir: Path, sandbox: SandboxServers) -> str:
    """``python -m sandbox install --sftp-only``, as the demo runs it (the bank re-sending)."""
    result = subprocess.run(
        [sys.executable, "-m", "sandbox", "install", str(scenario_dir), "--sftp-only", "--sftp-root", str(sandbox.sftp_root)],
        capture_output=True, text=True, check=True,
    )
    return result.stdout


def ingest(sftp: paramiko.SFTPClient, engine: Engine, data_dir: Path) -> list[dict[str, Any]]:
    """What the DAG's fetch and process tasks do, with paramiko instead of the Airflow hook."""
    paths = fetch_statements(sftp, engine, data_dir / "inbox" / "bank")
    return [process_statement(p, engine, business_date=DATE) for p in paths]


def test_delivered_over_sftp_ingested_and_never_doubled(
    engine: Engine, sandbox: SandboxServers, sftp: paramiko.SFTPClient, generated: Path, data_dir: Path
) -> None:
    truth = json.loads((generated / "ground_truth.json").read_text())
    assert "2 bank statement(s)" in install(generated, sandbox)
    assert sorted(sftp.listdir("/inbound/bank")) == ["20250314.bai", "20250315.bai"]

    first = ingest(sftp, engine, data_dir)
    assert [r["status"] for r in first] == ["processed", "processed"]
    assert sftp.listdir("/inbound/bank") == []
    assert sorted(sftp.listdir("/archive/bank")) == ["20250314.bai", "20250315.bai"]
    stored = scenario.rows(engine, BankDeposit)
    assert sorted((d.statement_date.isoformat(), d.bank_account, d.trace_number, d.amount_cents) for d in stored) == sorted(
        (d["statement_date"], d["bank_account"], d["trace_number"], to_cents(Decimal(d["amount"])))
        for d in truth["bank_deposits"]
    )
    files = scenario.rows(engine, InboundFile, InboundFile.source == "bank")
    assert all(f.status == "processed" and Path(f.archive_path).is_file() for f in files)

    install(generated, sandbox)  # the bank sends the same files again
    again = ingest(sftp, engine, data_dir)
    assert [r["status"] for r in again] == ["already_processed", "already_processed"]
    assert len(sftp.listdir("/archive/bank")) == 4  # both copies kept on the server

    # The same statement regenerated with a new file id (other bytes, same deposits).
    original = (generated / "bank" / "20250314.bai").read_text()
    (sandbox.sftp_root / "inbound" / "bank" / "20250314_resend.bai").write_text(
        original.replace(",2025031401,", ",2025031402,", 1))
    (resend,) = ingest(sftp, engine, data_dir)
    assert (resend["status"], resend["stored"]) == ("processed", 0)
    assert resend["already_stored"] == resend["deposits"] > 0
    assert len(scenario.rows(engine, BankDeposit)) == len(stored)
    assert scenario.exceptions(engine) == []


def test_bad_files_go_to_the_exception_queue(
    engine: Engine, sandbox: SandboxServers, sftp: paramiko.SFTPClient, generated: Path, data_dir: Path
) -> None:
    inbound = sandbox.sftp_root / "inbound" / "bank"
    inbound.mkdir(parents=True)
    good = (generated / "bank" / "20250314.bai").read_text()
    (inbound / "cut.bai").write_text("\n".join(good.splitlines()[:-3]) + "\n")
    lines = good.splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith("16,"))
    fields = lines[index].split(",")
    fields[2] = str(int(fields[2]) + 1)  # one cent more than the 49 trailer says
    lines[index] = ",".join(fields)
    (inbound / "totals.bai").write_text("\n".join(lines) + "\n")
    (inbound / "not_bai.bai").write_text("ISA*00*          *00*\n")
    (inbound / "my statement.bai").write_text(good)

    results = {r["file"]: r for r in ingest(sftp, engine, data_dir)}
    assert {name: r["status"] for name, r in results.items()} == dict.fromkeys(["cut.bai", "not_bai.bai", "totals.bai"],
                                                                               "rejected")
    assert "cut short" in results["cut.bai"]["detail"]
    assert results["totals.bai"]["detail"].startswith("control totals do not add up: account ")
    assert "line 1: not a BAI2 record" in results["not_bai.bai"]["detail"]
    assert scenario.rows(engine, BankDeposit) == []

    exceptions = scenario.exceptions(engine)
    unreadable = {e.detail["file"]: e for e in exceptions if e.reason_code == "BANK_FILE_UNREADABLE"}
    assert set(unreadable) == {"cut.bai", "totals.bai", "not_bai.bai"}
    assert all((e.kind, e.interface, e.record_type, e.status) == ("business", INTERFACE, "file", "open")
               for e in unreadable.values())
    assert unreadable["totals.bai"].detail["findings"][0].startswith("account ")
    assert "no deposit from it is stored" in unreadable["cut.bai"].summary
    (unsafe,) = [e for e in exceptions if e.reason_code == "UNSAFE_FILE_NAME"]
    assert unsafe.record_key == "/inbound/bank/my statement.bai"
    for row in scenario.rows(engine, InboundFile, InboundFile.source == "bank"):
        assert row.status == "rejected" and Path(row.archive_path).is_file()  # raw file archived


def test_cash_sides_feed_the_matcher(engine: Engine, data_dir: Path, generated: Path) -> None:
    truth = json.loads((generated / "ground_truth.json").read_text())
    process_statement(generated / "bank" / "20250314.bai", engine, business_date=DATE)
    remits, deposits = cash_sides(engine, DATE)
    assert remits.empty and len(deposits) == sum(1 for d in truth["bank_deposits"] if d["statement_date"] == "2025-03-14")
    result = match_deposits(remits, deposits)
    assert set(result["status"]) == {"missing_in_835"}  # no 835 stored yet: every deposit is unclaimed
    assert int(result["variance_cents"].sum()) == int(deposits["deposit_cents"].sum())
