"""The integration store: migrations on both backends, set-based writes, exceptions, crosswalks."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Engine

from carefabric.store import audit, crosswalks, db, exceptions_repo, watermarks
from carefabric.store.bulk import insert_ignore, upsert
from carefabric.store.crosswalks import Crosswalks
from carefabric.store.models import (
    AuditLog,
    Base,
    Charge,
    CrosswalkHistory,
    CwCdm,
    ErpCostCenter,
    ErpItem,
    ExceptionEvent,
    ExceptionRecord,
    RawMessage,
    RemitClaim,
    Remittance,
    SupplyUsage,
)


@pytest.fixture
def url(store_url: str) -> Iterator[str]:
    """An empty store of its own: the SQLite file of this test, or a fresh PostgreSQL schema."""
    if store_url.startswith("sqlite"):
        yield store_url
        return
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(store_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{store_url}?options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def engine(url: str) -> Iterator[Engine]:
    """A store migrated to head; downgraded to base afterwards."""
    db.upgrade(url)
    eng = db.get_engine(url)
    try:
        yield eng
    finally:
        eng.dispose()
        db.downgrade(url)


def _diffs(engine: Engine) -> list[object]:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": False})
        return compare_metadata(ctx, Base.metadata)


def _tables(engine: Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


def _charge_row(n: int, **extra: object) -> dict[str, object]:
    row: dict[str, object] = {
        "line_key": f"EPIC|F1|MSG{n // 10}|{n % 10 + 1}",
        "source": "EPIC|F1",
        "facility": "F1",
        "encounter_id": f"V{n // 10:06d}",
        "message_control_id": f"MSG{n // 10}",
        "line_number": n % 10 + 1,
        "transaction_date": dt.date(2025, 3, 14),
        "transaction_type": "CG",
        "cdm_code": "CDM1001",
        "quantity": Decimal("1"),
        "amount_cents": 1250 + n,
        "department": "ED",
    }
    row.update(extra)
    return row


# --------------------------------------------------------------------------- migrations


def test_migrations_upgrade_downgrade_upgrade_match_models(url: str) -> None:
    assert db.current_revision(url) is None
    db.upgrade(url)
    head = db.head_revision()
    assert head is not None and db.current_revision(url) == head
    engine = db.get_engine(url)
    try:
        assert _tables(engine) == set(Base.metadata.tables) | {"alembic_version"}
        assert _diffs(engine) == []

        db.downgrade(url)
        assert db.current_revision(url) is None
        assert _tables(engine) <= {"alembic_version"}

        db.upgrade(url)
        assert db.current_revision(url) == head
        assert _tables(engine) == set(Base.metadata.tables) | {"alembic_version"}
        assert _diffs(engine) == []
    finally:
        engine.dispose()
        db.downgrade(url)


def test_every_filled_table_has_a_natural_key() -> None:
    exempt = {"audit_log", "exception_events"}  # append-only history
    for name, table in Base.metadata.tables.items():
        if name in exempt:
            continue
        uniques = [c for c in table.constraints if isinstance(c, sa.UniqueConstraint)]
        natural_pk = not any(c.autoincrement is True for c in table.primary_key.columns)
        assert uniques or natural_pk, f"{name} has no natural idempotency key"


def test_sqlite_engine_pragmas(tmp_path: Path) -> None:
    engine = db.get_engine(f"sqlite:///{tmp_path / 'sub' / 'x.db'}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == db.SQLITE_BUSY_TIMEOUT_MS
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- bulk writes


def test_insert_ignore_is_idempotent(engine: Engine) -> None:
    rows = [_charge_row(n) for n in range(25)]
    with db.session_scope(engine) as session:
        assert insert_ignore(session, Charge, rows, ["line_key"]) == 25
    with db.session_scope(engine) as session:
        assert insert_ignore(session, Charge, rows, ["line_key"]) == 0
        # duplicates inside one call count once; only the genuinely new row is inserted
        assert (
            insert_ignore(session, Charge, [*rows[:3], _charge_row(99), _charge_row(99)], ["line_key"]) == 1
        )
    with db.session_scope(engine) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Charge)) == 26
        charge = session.scalars(sa.select(Charge).where(Charge.line_key == rows[0]["line_key"])).one()
        assert charge.status == "received" and charge.quantity == Decimal("1") and charge.amount_cents == 1250
        assert charge.created_at.tzinfo is not None


def test_insert_ignore_batches_on_a_connection(engine: Engine) -> None:
    rows = [
        {"sender": "EPIC|F1", "control_id": f"C{n}", "message_type": "ADT^A01", "payload": "MSH|..."}
        for n in range(2345)
    ]
    with engine.begin() as conn:
        assert (
            insert_ignore(
                conn, RawMessage.__table__, rows, ["sender", "control_id", "message_type"], batch_size=500
            )
            == 2345
        )
    with engine.begin() as conn:
        assert (
            insert_ignore(conn, RawMessage, rows, ["sender", "control_id", "message_type"], batch_size=500)
            == 0
        )
        assert conn.scalar(sa.select(sa.func.count()).select_from(RawMessage.__table__)) == 2345


def test_upsert_updates_and_watermarks(engine: Engine) -> None:
    with db.session_scope(engine) as session:
        items = [{"item": "ITM-1", "unit_cost_cents": 425}, {"item": "ITM-2", "unit_cost_cents": None}]
        assert upsert(session, ErpItem, items, ["item"]) == 2
    with db.session_scope(engine) as session:
        assert (
            upsert(
                session,
                ErpItem,
                [{"item": "ITM-2", "unit_cost_cents": 99, "uom": "EA"}],
                ["item"],
                ["unit_cost_cents"],
            )
            == 1
        )
        got = dict(session.execute(sa.select(ErpItem.item, ErpItem.unit_cost_cents)).all())
        assert got == {"ITM-1": 425, "ITM-2": 99}
        assert session.scalar(sa.select(ErpItem.uom).where(ErpItem.item == "ITM-2")) is None

        assert watermarks.get(session, "billing_sync", "claims") is None
        watermarks.set(session, "billing_sync", "claims", "2025-03-14T00:00:00Z")
        watermarks.set(session, "billing_sync", "claims", "2025-03-15T00:00:00Z")
    with db.session_scope(engine) as session:
        assert watermarks.get(session, "billing_sync", "claims") == "2025-03-15T00:00:00Z"
        assert watermarks.get(session, "billing_sync", "payments", default="1970") == "1970"


def test_timestamps_are_utc_and_children_cascade(engine: Engine) -> None:
    eastern = dt.timezone(dt.timedelta(hours=-5))
    with db.session_scope(engine) as session:
        remit = Remittance(
            interchange_control="000000001",
            group_control="1",
            transaction_control="0001",
            sender_id="ACME",
            trace_number="EFT1",
            payment_cents=12000,
            status="balanced",
        )
        remit.claims.append(
            RemitClaim(seq=1, patient_control_number="CLM1", status="1", charge_cents=20000, paid_cents=12000)
        )
        remit.created_at = dt.datetime(2025, 3, 14, 20, 30, tzinfo=eastern)
        session.add(remit)
    with db.session_scope(engine) as session:
        got = session.scalars(sa.select(Remittance)).one()
        assert got.created_at == dt.datetime(2025, 3, 15, 1, 30, tzinfo=dt.UTC)
        assert got.created_at.utcoffset() == dt.timedelta(0)
        assert [c.patient_control_number for c in got.claims] == ["CLM1"]
        session.delete(got)
    with db.session_scope(engine) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(RemitClaim)) == 0


def test_supply_usage_needs_its_charge(engine: Engine) -> None:
    with db.session_scope(engine) as session:
        insert_ignore(session, Charge, [_charge_row(1)], ["line_key"])
        row = {
            "line_key": _charge_row(1)["line_key"],
            "facility": "F1",
            "transaction_date": dt.date(2025, 3, 14),
            "item": "ITM-1",
            "quantity": Decimal("2"),
        }
        assert insert_ignore(session, SupplyUsage, [row], ["line_key"]) == 1
        assert insert_ignore(session, SupplyUsage, [row], ["line_key"]) == 0
    with pytest.raises(sa.exc.IntegrityError), db.session_scope(engine) as session:
        insert_ignore(session, SupplyUsage, [{**row, "line_key": "no|such|line"}], ["line_key"])


# --------------------------------------------------------------------------- exceptions


def _open(session, key: str = "EPIC|F1|MSG1|2", **extra: object) -> ExceptionRecord:
    args = {
        "kind": "business",
        "reason_code": "UNKNOWN_CDM",
        "interface": "ehr_ingest",
        "record_type": "charge",
        "record_key": key,
        "summary": "CDM code CDM9999 is not in the chargemaster crosswalk",
        "detail": {"cdm_code": "CDM9999"},
    }
    args.update(extra)
    return exceptions_repo.open_exception(session, **args)


def test_open_exception_twice_is_one_row(engine: Engine) -> None:
    with db.session_scope(engine) as session:
        first = _open(session)
    with db.session_scope(engine) as session:
        second = _open(session)
        assert second.id == first.id
    with db.session_scope(engine) as session:
        rows = session.scalars(sa.select(ExceptionRecord)).all()
        assert len(rows) == 1
        exc = rows[0]
        assert exc.status == "open" and exc.attempts == 2
        assert [e.action for e in exc.events] == ["opened", "reoccurred"]
        assert session.scalar(sa.select(sa.func.count()).select_from(ExceptionEvent)) == 2


def test_exception_lifecycle(engine: Engine) -> None:
    with db.session_scope(engine) as session:
        exc = _open(session)
        _open(session, key="EPIC|F1|MSG1|3")
        _open(
            session,
            key="A.835",
            reason_code="UNKNOWN_PAYER",
            interface="payer_remittance",
            record_type="file",
        )
        assert len(exceptions_repo.list_open(session)) == 3
        assert len(exceptions_repo.list_open(session, interface="ehr_ingest")) == 2
        assert len(exceptions_repo.list_open(session, reason_code="UNKNOWN_PAYER")) == 1

        exceptions_repo.mark_replayed(session, exc.id, actor="ops@example.org", note="cdm fixed")
        assert exc.status == "replayed" and exc.closed_at is not None
        reopened = _open(session)  # the problem came back
        assert reopened.id == exc.id and reopened.status == "open" and reopened.attempts == 2
        assert [e.action for e in reopened.events] == ["opened", "replayed", "reopened"]

        assert exceptions_repo.resolve_for(session, record_type="charge", record_keys=["EPIC|F1|MSG1|2"]) == 1
        assert exceptions_repo.find(session, "UNKNOWN_CDM", "charge", "EPIC|F1|MSG1|2").status == "resolved"

        other = exceptions_repo.find(session, "UNKNOWN_CDM", "charge", "EPIC|F1|MSG1|3")
        with pytest.raises(ValueError):
            exceptions_repo.discard(session, other, actor="ops", note="")
        exceptions_repo.discard(session, other, actor="ops", note="test line, not billable")
        again = _open(session, key="EPIC|F1|MSG1|3")
        assert again.status == "discarded" and again.attempts == 2

        assert [e.reason_code for e in exceptions_repo.list_open(session)] == ["UNKNOWN_PAYER"]
    with db.session_scope(engine) as session:
        actions = session.scalars(sa.select(AuditLog.action).order_by(AuditLog.id)).all()
        assert actions == ["exception.replay", "exception.discard"]


def test_open_exceptions_in_bulk(engine: Engine) -> None:
    items = [
        {
            "kind": "business",
            "reason_code": "INACTIVE_COST_CENTER",
            "interface": "ehr_ingest",
            "record_type": "charge",
            "record_key": f"line-{n}",
            "summary": "cost center CC-F1-RAD is inactive in the ERP",
        }
        for n in range(700)
    ]
    with db.session_scope(engine) as session:
        rows = exceptions_repo.open_exceptions(session, items)
        assert len({r.id for r in rows}) == 700
    with db.session_scope(engine) as session:
        rows = exceptions_repo.open_exceptions(session, items[:10])
        assert {r.attempts for r in rows} == {2}
        assert session.scalar(sa.select(sa.func.count()).select_from(ExceptionRecord)) == 700
        with pytest.raises(ValueError):
            exceptions_repo.open_exceptions(session, [{**items[0], "kind": "fatal"}])


def test_open_exceptions_without_rows_counts_every_occurrence(engine: Engine) -> None:
    """The set-based path (new keys opened without loading them) ends where the ORM path does:
    a new key once is opened, a new key twice is opened then reoccurred, a resolved one reopens."""
    def item(key: str, summary: str = "CDM code X has no crosswalk entry") -> dict[str, object]:
        return {"kind": "business", "reason_code": "UNKNOWN_CDM", "interface": "ehr_ingest",
                "record_type": "charge", "record_key": key, "summary": summary, "detail": {"cdm_code": "X"}}

    with db.session_scope(engine) as session:
        exceptions_repo.resolve(session, exceptions_repo.open_exceptions(session, [item("old")])[0])
    with db.session_scope(engine) as session:
        out = exceptions_repo.open_exceptions(
            session, [item("new"), item("twice", "first"), item("old"), item("twice", "second")], returning=False)
        assert out == []
    with db.session_scope(engine) as session:
        found = {k: exceptions_repo.find(session, "UNKNOWN_CDM", "charge", k) for k in ("new", "twice", "old")}
        seen = {k: (e.status, e.attempts, e.summary, [(v.action, v.actor, v.note) for v in e.events])
                for k, e in found.items() if e is not None}
    assert seen == {
        "new": ("open", 1, "CDM code X has no crosswalk entry", [("opened", "system", "CDM code X has no crosswalk entry")]),
        "twice": ("open", 2, "second", [("opened", "system", "first"), ("reoccurred", "system", "second")]),
        "old": ("open", 2, "CDM code X has no crosswalk entry",
                [("opened", "system", "CDM code X has no crosswalk entry"), ("resolved", "system", None),
                 ("reopened", "system", "CDM code X has no crosswalk entry")]),
    }


# --------------------------------------------------------------------------- crosswalks


def _write_crosswalks(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "departments.csv").write_text(
        "facility,department,cost_center\nF1,ED,CC-F1-ED\nF1,RAD,CC-F1-RAD\nF2,ED,CC-F2-ED\n"
    )
    (folder / "cdm.csv").write_text(
        "cdm_code,description,revenue_account,erp_item,procedure_code\n"
        "CDM1001,ED visit level 3,4000,,99283\n"
        "CDM2001,Gauze pad,4060,ITM-0001,A6402\n"
    )
    (folder / "payers.csv").write_text("x12_payer_id,erp_payer_id\n12345,PAYER-ACME\n")
    (folder / "facilities.csv").write_text(
        "facility,npi,location,company\nF1,1234567893,INV-F1,CF01\nF2,1234567894,INV-F2,CF01\n"
    )
    return folder


def test_crosswalk_import_and_set_cdm_write_history_and_audit(engine: Engine, tmp_path: Path) -> None:
    folder = _write_crosswalks(tmp_path / "crosswalks")
    with db.session_scope(engine) as session:
        counts = crosswalks.import_csv_dir(session, folder, actor="seed")
        assert counts["departments"] == {"created": 3, "updated": 0, "unchanged": 0}
        assert counts["cdm"]["created"] == 2 and counts["payers"]["created"] == 1
    with db.session_scope(engine) as session:  # re-import changes nothing
        counts = crosswalks.import_csv_dir(session, folder, actor="seed")
        assert all(c["created"] == 0 and c["updated"] == 0 for c in counts.values())
        assert session.scalar(sa.select(sa.func.count()).select_from(CrosswalkHistory)) == 8

    with db.session_scope(engine) as session:
        row = crosswalks.set_cdm(session, "CDM9999", "4010", procedure_code="80053", actor="ops@example.org")
        assert row.version == 1 and row.changed_by == "ops@example.org"
        row = crosswalks.set_cdm(
            session, "CDM2001", "4060", description="Gauze pad 4x4", actor="ops@example.org"
        )
        assert row.version == 2 and row.erp_item == "ITM-0001"  # None keeps the item
        crosswalks.set_cdm(session, "CDM2001", "4060", actor="ops@example.org")  # no change: no new version
    with db.session_scope(engine) as session:
        assert session.scalars(sa.select(CwCdm.version).where(CwCdm.cdm_code == "CDM2001")).one() == 2
        history = session.scalars(
            sa.select(CrosswalkHistory)
            .where(CrosswalkHistory.crosswalk == "cdm", CrosswalkHistory.key == "CDM2001")
            .order_by(CrosswalkHistory.version)
        ).all()
        assert [(h.version, h.action) for h in history] == [(1, "create"), (2, "update")]
        assert (
            history[1].before["description"] == "Gauze pad"
            and history[1].after["description"] == "Gauze pad 4x4"
        )
        entries = session.scalars(sa.select(AuditLog).order_by(AuditLog.id)).all()
        assert [e.action for e in entries].count("crosswalk.import") == 8
        sets = [e for e in entries if e.action == "crosswalk.set"]
        assert [e.target for e in sets] == ["crosswalk:cdm:CDM9999", "crosswalk:cdm:CDM2001"]
        assert sets[0].actor == "ops@example.org" and sets[0].detail["revenue_account"] == "4010"

        with pytest.raises(crosswalks.CrosswalkError):
            crosswalks.set_cdm(session, "CDM7777", "", actor="ops")


def test_crosswalks_snapshot_lookups(engine: Engine, tmp_path: Path) -> None:
    folder = _write_crosswalks(tmp_path / "crosswalks")
    with db.session_scope(engine) as session:
        crosswalks.import_csv_dir(session, folder, actor="seed")
        upsert(
            session,
            ErpCostCenter,
            [{"cost_center": "CC-F1-ED", "active": True}, {"cost_center": "CC-F1-RAD", "active": False}],
            ["cost_center"],
        )
        upsert(
            session, ErpItem, [{"item": "ITM-0001", "unit_cost_cents": 425}, {"item": "ITM-0002"}], ["item"]
        )
        audit.record(session, "seed", "erp.master", "erp", {"items": 2})

    queries: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda *a: queries.append(a[2]))
    with db.session_scope(engine) as session:
        cw = Crosswalks.load(session)
    loaded = len(queries)
    assert loaded <= 16

    assert cw.cost_center("F1", "ED") == "CC-F1-ED"
    assert cw.cost_center("F1", "LAB") is None and cw.cost_center("F1", None) is None
    assert cw.cdm_entry("CDM2001").erp_item == "ITM-0001"
    assert cw.cdm_entry("CDM1001").erp_item is None and cw.cdm_entry("CDM1001").revenue_account == "4000"
    assert cw.cdm_entry("NOPE") is None
    assert cw.erp_payer("12345") == "PAYER-ACME" and cw.erp_payer("99999") is None
    assert cw.facility_by_npi("1234567894").facility == "F2"
    assert cw.facility("F1").location == "INV-F1" and cw.facility("F1").company == "CF01"
    assert cw.cost_center_active("CC-F1-ED") is True
    assert cw.cost_center_active("CC-F1-RAD") is False
    assert cw.cost_center_active("CC-F9-ED") is None
    assert cw.item_unit_cost_cents("ITM-0001") == 425 and cw.item_unit_cost_cents("ITM-0002") is None
    assert cw.versions["cdm"] == 1
    for _ in range(1000):  # lookups are in memory
        cw.cost_center("F2", "ED")
    assert len(queries) == loaded


def test_store_imports_no_airflow() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import carefabric.store.db, carefabric.store.models, carefabric.store.bulk\n"
        "import carefabric.store.exceptions_repo, carefabric.store.crosswalks\n"
        "import carefabric.store.audit, carefabric.store.watermarks\n"
        "assert not [m for m in sys.modules if m.split('.')[0] == 'airflow'], 'airflow imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
