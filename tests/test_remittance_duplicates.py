"""Issue 7, duplicates that are never silent (835 part), through ``payer_remittance`` with files
delivered by the real sandbox SFTP server: the same payment under new envelope numbers is
``DUPLICATE_PAYMENT`` (stored, shown, not posted), another payment under a known trace is
``TRACE_REUSED``, the first file processed is the original, and each exception names both files
as structured fields of its detail.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import scenario
from sqlalchemy.engine import Engine
from test_remittance_interfaces import DAY

from carefabric.store.crosswalks import set_facility, set_payer
from carefabric.store.db import session_scope
from carefabric.store.models import ExceptionRecord, InboundFile, Remittance
from sandbox.runner import SandboxServers

if TYPE_CHECKING:
    from airflow.providers.sftp.hooks.sftp import SFTPHook

PAYER = "PAYER-DUP"
EXTRA = Path(__file__).parent / "samples_extra" / "x12_835"


@pytest.fixture
def engine(store: Engine) -> Engine:
    """An empty store (conftest ``store``) knowing the payers and facilities of the samples."""
    with session_scope(store) as s:
        set_payer(s, "1935665544", "PAYER-RUSHMORE", actor="test")  # lfh_managed_care: REF*2U-less, TRN03
        set_facility(s, "F2", "CF01", npi="5544667733", location="INV-F2", actor="test")
        set_payer(s, "31048", "PAYER-WSFG", actor="test")
        set_facility(s, "F5", "CF01", npi="1669499414", location="INV-F5", actor="test")
        set_facility(s, "F6", "CF01", npi="1720220098", location="INV-F6", actor="test")
    return store


def new_envelope(data: bytes, isa13: bytes, gs06: bytes, st02: bytes, old: tuple[bytes, bytes, bytes]) -> bytes:
    """The same payment re-sent: only the control numbers (ISA13/IEA02, GS06/GE02, ST02/SE02) change."""
    o13, o06, o02 = old
    return (data.replace(b"*" + o13 + b"*", b"*" + isa13 + b"*").replace(b"*" + o13 + b"~", b"*" + isa13 + b"~")
            .replace(b"*" + o06 + b"*X*", b"*" + gs06 + b"*X*").replace(b"GE*1*" + o06 + b"~", b"GE*1*" + gs06 + b"~")
            .replace(b"ST*835*" + o02, b"ST*835*" + st02).replace(b"*" + o02 + b"~\nGE", b"*" + st02 + b"~\nGE"))


def deliver(sandbox: SandboxServers, sftp_hook: SFTPHook, engine: Engine, files: dict[str, bytes]) -> dict[str, dict]:
    """Drop into the server's /inbound/<payer>/; fetch each file and process it in order with the
    DAG's own calls (``payer_transport.fetch_remittance``, then ``process_staged``)."""
    from carefabric_airflow.payer_transport import fetch_remittance, process_staged

    folder = f"{PAYER}-{engine.dialect.name}"
    results = {}
    for name, data in files.items():
        (sandbox.sftp_root / "inbound" / folder / name).write_bytes(data)
        fetched = fetch_remittance(sftp_hook, f"/inbound/{folder}/{name}", engine)
        assert fetched is not None and fetched["payer"] == folder
        results[name] = process_staged(fetched, engine, business_date=DAY)
    return results


def test_same_payment_under_new_envelope_numbers_and_a_reused_trace(
        engine: Engine, sandbox: SandboxServers, sftp_hook: SFTPHook, samples_dir: Path) -> None:
    (sandbox.sftp_root / "inbound" / f"{PAYER}-{engine.dialect.name}").mkdir(parents=True, exist_ok=True)
    original = (samples_dir / "x12_835" / "lfh_managed_care.835").read_bytes()
    old = (b"000000907", b"1", b"112233")
    resend = new_envelope(original, b"000000908", b"2", b"112234", old)
    # another payment under the same payer and trace: 10.00 less on the first claim, still balanced
    other = (new_envelope(original, b"000000909", b"3", b"112235", old)
             .replace(b"BPR*I*945.00*", b"BPR*I*935.00*").replace(b"*800.00*450.00*", b"*800.00*440.00*")
             .replace(b"CAS*CO*A2*50.00", b"CAS*CO*A2*60.00"))
    assert resend != original and b"112234" in resend and b"GE*1*2~" in resend

    results = deliver(sandbox, sftp_hook, engine, {"era_0001.835": original, "era_0002.835": resend,
                                                   "era_0003.835": other})
    assert results["era_0001.835"]["status"] == "accepted" and results["era_0001.835"]["payment_conflicts"] == []
    assert {k: results["era_0002.835"][k] for k in ("status", "transactions", "payment_conflicts")} == {
        "status": "duplicate", "transactions": 1, "payment_conflicts": ["DUPLICATE_PAYMENT"]}
    assert {k: results["era_0003.835"][k] for k in ("status", "payment_conflicts", "unbalanced")} == {
        "status": "rejected", "payment_conflicts": ["TRACE_REUSED"], "unbalanced": 0}

    # stored and shown, but only the original can post (status balanced)
    remits = {r.transaction_control: r for r in scenario.rows(engine, Remittance)}
    assert {k: (r.status, r.payment_cents, r.trace_number) for k, r in remits.items()} == {
        "112233": ("balanced", 94500, "7170066655"), "112234": ("rejected", 94500, "7170066655"),
        "112235": ("rejected", 93500, "7170066655")}
    files = {f.name: f.status for f in scenario.rows(engine, InboundFile)}
    assert files == {"era_0001.835": "processed", "era_0002.835": "duplicate", "era_0003.835": "rejected"}

    found = {e.reason_code: e for e in scenario.rows(engine, ExceptionRecord)}
    assert sorted(found) == ["DUPLICATE_PAYMENT", "TRACE_REUSED"]
    dup, reused = found["DUPLICATE_PAYMENT"], found["TRACE_REUSED"]
    assert (dup.kind, dup.status, dup.record_type, dup.record_key) == (
        "business", "open", "remittance", "era_0002.835|000000908/2/112234")
    assert {k: dup.detail[k] for k in ("file", "original_file", "control_numbers", "original_control_numbers",
                                       "trace_number", "payer_id", "payment_cents", "original_payment_cents")} == {
        "file": "era_0002.835", "original_file": "era_0001.835", "control_numbers": "000000908/2/112234",
        "original_control_numbers": "000000907/1/112233", "trace_number": "7170066655", "payer_id": "1935665544",
        "payment_cents": 94500, "original_payment_cents": 94500}
    assert dup.detail["original_remittance_id"] == remits["112233"].id
    assert dup.summary == ("era_0002.835 (000000908/2/112234): payment TRN02 7170066655 of payer 1935665544 "
                           "(945.00) was already received in era_0001.835 (000000907/1/112233); stored, not posted")
    assert (reused.detail["file"], reused.detail["original_file"]) == ("era_0003.835", "era_0001.835")
    assert (reused.detail["payment_cents"], reused.detail["original_payment_cents"]) == (93500, 94500)
    assert "held, not posted" in reused.summary and "SETTLE" not in reused.summary + dup.summary  # no PHI

    # the re-send delivered again under its own name is silent (sha256), and stays one exception
    again = deliver(sandbox, sftp_hook, engine, {"era_0002.835": resend})["era_0002.835"]
    assert again["status"] == "already_processed"
    assert scenario.count(engine, ExceptionRecord) == 2 and scenario.count(engine, Remittance) == 3


def test_a_new_payment_beside_a_duplicate_in_one_file_still_posts(
        engine: Engine, sandbox: SandboxServers, sftp_hook: SFTPHook) -> None:
    """Two transactions in one group; the re-send carries the first again plus a new payment."""
    (sandbox.sftp_root / "inbound" / f"{PAYER}-{engine.dialect.name}").mkdir(parents=True, exist_ok=True)
    both = (EXTRA / "qrp_31048_L156_P8LA010119.835").read_bytes()
    st1, st2 = both.index(b"ST*835*1002"), both.index(b"ST*835*1001")
    trailer = both.index(b"GE*2*1")
    first_only = both[:st2] + b"GE*1*1~\r\nIEA*1*262477059~\r\n"
    later = (both[:st1] + both[st1:trailer].replace(b"ST*835*1002", b"ST*835*2002").replace(b"*1002~", b"*2002~")
             + both[trailer:]).replace(b"*262477059*", b"*262477060*").replace(b"*262477059~", b"*262477060~")
    results = deliver(sandbox, sftp_hook, engine, {"wsfg_a.835": first_only, "wsfg_b.835": later})
    assert results["wsfg_a.835"]["status"] == "accepted"
    assert {k: results["wsfg_b.835"][k] for k in ("status", "transactions", "payment_conflicts")} == {
        "status": "accepted", "transactions": 2, "payment_conflicts": ["DUPLICATE_PAYMENT"]}
    remits = {(r.interchange_control, r.transaction_control): r.status for r in scenario.rows(engine, Remittance)}
    assert remits == {("262477059", "1002"): "balanced", ("262477060", "2002"): "rejected",
                      ("262477060", "1001"): "balanced"}
    (exc,) = scenario.rows(engine, ExceptionRecord)
    assert (exc.reason_code, exc.detail["file"], exc.detail["original_file"]) == (
        "DUPLICATE_PAYMENT", "wsfg_b.835", "wsfg_a.835")
