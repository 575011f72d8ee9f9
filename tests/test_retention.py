"""PHI retention on a real store (SQLite and PostgreSQL) filled through the real interfaces.

A day's HL7 extracts (plus one bigger extract, so the space is measurable) and 835s are
ingested; retention then runs as of 40 days later with 30 days for the EHR and a year for
payers. EHR payloads go (digest and size kept, control ids and status untouched, archived files
deleted), payer files (835s are kept only as archived files) and anything an open exception may replay stay, an audit entry records
it, and the store's payload tables shrink on disk.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import pytest
import scenario
from sqlalchemy import select
from sqlalchemy.engine import Engine

from carefabric.interfaces import ehr_ingest, payer_remittance
from carefabric.store import retention
from carefabric.store.db import session_scope
from carefabric.store.models import AuditLog, ExceptionRecord, InboundFile, RawMessage
from carefabric.store.types import utcnow

DAY = scenario.BUSINESS_DATE
POLICY = retention.RetentionPolicy({"default": 30, "ehr_ingest": 30, "payer_remittance": 365})


@pytest.fixture(scope="module")
def day_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("day")
    scenario.generate_day(out)
    batch = next(iter(sorted((out / "ehr").glob("*.hl7")))).read_bytes()
    scenario.write_big_hl7(out / "big.hl7", scenario.hl7_messages(batch), 500_000)
    return out


@pytest.fixture
def engine(engine: Engine, day_dir: Path) -> Engine:
    """The seeded store (conftest) holding the day's extracts, the big one too, and its 835s."""
    for path in [*sorted((day_dir / "ehr").glob("*.hl7")), day_dir / "big.hl7"]:
        ehr_ingest.ingest_file(path, engine, business_date=DAY, validate=False)
    for path in sorted((day_dir / "sftp").glob("*/*.835")):
        payer_remittance.process_file(path, engine, payer_folder=path.parent.name, business_date=DAY)
    return engine


def _messages(engine: Engine) -> dict[int, tuple[str | None, str, str, str]]:
    with session_scope(engine) as s:
        return {r.id: (r.interface, r.control_id, r.status, r.payload) for r in s.scalars(select(RawMessage))}


def test_retention_purges_old_ehr_payloads_keeps_proof_and_reclaims_space(engine: Engine) -> None:
    before = _messages(engine)
    with session_scope(engine) as s:
        protected = {i for i in s.scalars(select(ExceptionRecord.message_id).where(
            ExceptionRecord.status == "open", ExceptionRecord.message_id.is_not(None)))}
        archives = {f.id: Path(f.archive_path) for f in s.scalars(select(InboundFile).where(InboundFile.interface == "ehr_ingest"))}
        # 835s live only as archived files (no raw message rows): a year for payers keeps them.
        payer_archives = [Path(f.archive_path) for f in s.scalars(select(InboundFile).where(
            InboundFile.interface == "payer_remittance", InboundFile.archive_path.is_not(None)))]
    ehr = {i for i, m in before.items() if m[0] == "ehr_ingest"}
    assert len(ehr) > 500 and payer_archives and all(p.is_file() for p in [*archives.values(), *payer_archives])

    summary = retention.run(engine, POLICY, full_vacuum=True, now=utcnow() + dt.timedelta(days=40))

    after = _messages(engine)
    with session_scope(engine) as s:
        rows = {r.id: r for r in s.scalars(select(RawMessage))}
        files = {f.id: f for f in s.scalars(select(InboundFile).where(InboundFile.interface == "ehr_ingest"))}
        entry = s.scalars(select(AuditLog).where(AuditLog.action == "retention_purge")).one()
    purged = ehr - protected
    assert summary["purged"]["ehr_ingest"]["messages"] == len(purged)
    for i in purged:
        interface, control_id, status, payload = before[i]
        row = rows[i]
        assert row.payload == "" and row.purged_at is not None
        assert (row.control_id, row.status) == (control_id, status)
        assert row.payload_sha256 == hashlib.sha256(payload.encode()).hexdigest()
        assert row.payload_bytes == len(payload.encode())
    for i in ehr & protected:
        assert after[i][3] == before[i][3], "kept payload changed"
    assert all(not p.exists() for p in archives.values())
    assert all(p.is_file() for p in payer_archives)
    assert all(f.purged_at is not None and len(f.sha256) == 64 and f.size_bytes > 0 for f in files.values())
    assert "payer_remittance" not in summary["purged"]
    # Measured on disk, before and after: the store shrinks. On PostgreSQL a store under ~1 MB may
    # not (page granularity, rebuilt indexes): seen once in CI at 0.9 -> 1.1 MB; the purge itself is
    # checked above, and PERFORMANCE.md has the figures on a 20 MB store.
    if engine.dialect.name == "sqlite" or summary["size_before_bytes"] > 4_000_000:
        assert summary["size_after_bytes"] < summary["size_before_bytes"]
    assert entry.actor == "phi_retention" and entry.detail["size_before_bytes"] == summary["size_before_bytes"]
    print(f"\n{engine.dialect.name}: {len(purged)} payloads, {summary['size_before_bytes']:,} -> "
          f"{summary['size_after_bytes']:,} bytes ({summary['reclaim']})")

    again = retention.run(engine, POLICY, now=utcnow() + dt.timedelta(days=40))
    assert again["purged"] == {} and again["reclaim"] is None


def test_policy_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        retention.RetentionPolicy({"default": 0})
    assert retention.RetentionPolicy({"default": 7, "ehr_ingest": 30}).days_for(None) == 7
