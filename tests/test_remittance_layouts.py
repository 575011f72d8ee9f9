"""Real 835 layouts through ``payer_remittance``: a pretty-printed file with a BOM and several
interchanges posts every transaction it holds; a segment the reader cannot place inside one
transaction rejects the file loudly (an exception, nothing from it posts)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import scenario
from sqlalchemy.engine import Engine
from test_remittance_interfaces import process
from test_x12_real_files import pretty

from carefabric.store.crosswalks import set_facility, set_payer
from carefabric.store.db import session_scope
from carefabric.store.models import Remittance

EXTRA = Path(__file__).parent / "samples_extra" / "x12_835"
PARTS = ("qrp_52192_LQ29_PBVA010119.835", "qrp_52563_LH99_PNUA010119.835", "qrp_31048_L156_P8LA010119.835")


@pytest.fixture
def engine(store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    monkeypatch.setenv("CAREFABRIC_DATA_DIR", str(tmp_path / "data"))
    with scenario.migrated_store(store_url) as eng:
        with session_scope(eng) as s:
            for x12_id in ("52192", "52563", "31048"):
                set_payer(s, x12_id, f"PAYER-{x12_id}", actor="test")
            set_facility(s, "F7", "CF01", npi="1720688054", location="INV-F7", actor="test")
            set_facility(s, "F8", "CF01", tax_id="204924703", location="INV-F8", actor="test")
            set_facility(s, "F5", "CF01", npi="1669499414", location="INV-F5", actor="test")
            set_facility(s, "F6", "CF01", npi="1720220098", location="INV-F6", actor="test")
        yield eng


def _joined() -> bytes:
    return b"\xef\xbb\xbf" + b"\r\n\r\n".join(pretty((EXTRA / n).read_bytes()) for n in PARTS)


def test_pretty_multi_interchange_file_posts_every_transaction(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "pretty_multi.835"
    path.write_bytes(_joined())
    result = process(engine, path)
    assert {k: result[k] for k in ("status", "transactions", "claims", "unbalanced", "held")} == {
        "status": "accepted", "transactions": 7, "claims": 13, "unbalanced": 0, "held": []}
    stored = scenario.rows(engine, Remittance)
    assert sorted((r.interchange_control, r.transaction_control, r.status, r.payment_cents) for r in stored) == [
        ("100332268", "0017", "balanced", 0), ("100332268", "0018", "balanced", 350000),
        ("100332268", "0019", "balanced", 0), ("100332268", "0020", "balanced", 350000),
        ("262455724", "1082", "balanced", 11923), ("262477059", "1001", "balanced", 14113),
        ("262477059", "1002", "balanced", 178)]


def test_unplaceable_segment_rejects_the_file_loudly(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "stray.835"
    path.write_bytes(_joined().replace(b"AMT*I*1.16~", b"AMT*I*1.16~\r\n   CLM*X*1~", 1))
    assert process(engine, path) == {"file": "stray.835", "status": "rejected", "reason": "X12_UNREADABLE"}
    (exc,) = scenario.exceptions(engine)
    assert exc.reason_code == "X12_UNREADABLE"
    assert exc.summary.startswith("stray.835: transaction ST02=1082 unreadable: segment ")
    assert "CLM is not a segment of an 835 transaction set" in exc.summary
    assert scenario.count(engine, Remittance) == 0
