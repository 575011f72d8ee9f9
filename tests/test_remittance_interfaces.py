"""Payer remittance (``carefabric.interfaces.payer_remittance``) against a real store on SQLite and
PostgreSQL: the public 835 samples, malformed and oversized files, and unsafe names listed by
the real sandbox SFTP server.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import scenario
from sqlalchemy.engine import Engine

from carefabric.interfaces.common import UnsafeFileName
from carefabric.interfaces.payer_remittance import process_file, safe_remote_path
from carefabric.store.crosswalks import set_facility, set_payer
from carefabric.store.db import session_scope
from carefabric.store.models import (
    Ack999,
    ExceptionRecord,
    InboundFile,
    ProviderAdjustment,
    RemitClaim,
    Remittance,
)
from sandbox.runner import SandboxServers
from sandbox.synth_835 import write_835

DAY = scenario.BUSINESS_DATE
MB = 1_000_000
SAMPLES = ("lfh_medicare_part_a.835", "lfh_managed_care.835", "lfh_cob_contractual_adjustment.835",
           "lfh_demo_malformed.835", "pyx12_835_simple_4010.835")


@pytest.fixture
def engine(store: Engine) -> Engine:
    """An empty store (conftest ``store``): no crosswalks, no master data."""
    return store


def process(engine: Engine, path: Path, payer: str = "PAYER-X") -> dict[str, Any]:
    return process_file(path, engine, payer_folder=payer, business_date=DAY)


def assert_archived(engine: Engine, path: Path, data_dir: Path) -> InboundFile:
    (row,) = scenario.rows(engine, InboundFile, InboundFile.name == path.name)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    archived = Path(row.archive_path)
    assert archived == data_dir / "archive" / "payer" / DAY.isoformat() / f"{sha[:12]}_{path.name}"
    assert archived.read_bytes() == path.read_bytes()
    assert archived.with_suffix(".999").read_text().startswith("ISA")  # the 999 sent back, beside it
    (ack,) = scenario.rows(engine, Ack999, Ack999.file_id == row.id)
    assert ack.content == archived.with_suffix(".999").read_text() and "ST*999*" in ack.content
    return row


# --------------------------------------------------------------------------- public samples


def test_public_835_samples(engine: Engine, samples_dir: Path, data_dir: Path) -> None:
    with session_scope(engine) as s:
        for x12_id in ("999", "1935665544", "1566339911", "1382999999"):
            set_payer(s, x12_id, f"PAYER-{x12_id}", actor="test")
        set_facility(s, "F1", "CF01", npi="6543210903", location="INV-F1", actor="test")  # medicare A payee
        set_facility(s, "F2", "CF01", npi="5544667733", location="INV-F2", actor="test")  # managed care payee
        # COB and pyx12's 4010 file name their payee by tax id (N1*PE*..*FI), not by NPI.
        set_facility(s, "F3", "CF01", tax_id="3UR334563", location="INV-F3", actor="test")
        set_facility(s, "F4", "CF01", tax_id="382999999", location="INV-F4", actor="test")
    folder = samples_dir / "x12_835"
    results = {name: process(engine, folder / name) for name in SAMPLES}

    medicare = results["lfh_medicare_part_a.835"]
    assert medicare == {"file": "lfh_medicare_part_a.835", "status": "accepted", "transactions": 1, "claims": 2,
                        "findings": medicare["findings"], "unbalanced": 0, "held": [], "payment_conflicts": []}
    assert medicare["findings"] > 0  # TR3 deviations (no PER ...) that do not touch money
    managed = results["lfh_managed_care.835"]
    assert (managed["status"], managed["claims"], managed["unbalanced"], managed["held"]) == ("accepted", 2, 0, [])
    assert managed["findings"] > 0
    # COB: a secondary payment whose payee is found by its tax id.
    cob = results["lfh_cob_contractual_adjustment.835"]
    assert (cob["status"], cob["claims"], cob["unbalanced"], cob["held"]) == ("accepted", 1, 0, [])
    assert results["lfh_demo_malformed.835"] == {
        "file": "lfh_demo_malformed.835", "status": "rejected", "reason": "X12_UNREADABLE"}
    old = results["pyx12_835_simple_4010.835"]
    # pyx12's 4010 file: its payee maps by tax id, but it does not balance
    assert (old["status"], old["claims"], old["unbalanced"], old["held"]) == ("rejected", 3, 1, [])

    remits = {r.payer_id: r for r in scenario.rows(engine, Remittance)}
    assert {k: r.status for k, r in remits.items()} == {
        "999": "balanced", "1935665544": "balanced", "1566339911": "balanced", "1382999999": "unbalanced"}
    assert (remits["1566339911"].facility, remits["1566339911"].payment_cents) == ("F3", 3400)
    a, mc = remits["999"], remits["1935665544"]
    assert (a.erp_payer_id, a.facility, a.company, a.payment_cents, a.trace_number) == (
        "PAYER-999", "F1", "CF01", 15000000, "12345")
    assert (mc.erp_payer_id, mc.facility, mc.payment_cents, mc.payment_date) == ("PAYER-1935665544", "F2", 94500, None)
    assert [p.amount_cents for p in scenario.rows(engine, ProviderAdjustment, ProviderAdjustment.remittance_id == a.id)] == [-127]
    assert scenario.count(engine, RemitClaim, RemitClaim.remittance_id == mc.id) == 2
    assert remits["1382999999"].version == "004010X091A1" and remits["1382999999"].balance_errors

    found = scenario.exceptions(engine)
    assert sorted((e.reason_code, e.record_key.split("|")[0]) for e in found) == [
        ("REMIT_UNBALANCED", "pyx12_835_simple_4010.835"), ("X12_UNREADABLE", "lfh_demo_malformed.835")]
    exc = {e.reason_code: e for e in found}
    assert exc["X12_UNREADABLE"].summary == (
        "lfh_demo_malformed.835: transaction ST02=112233 unreadable: segment 27: segment id CAS is followed by "
        "'_' instead of the element separator '*' the ISA declares")
    assert exc["REMIT_UNBALANCED"].summary.startswith(
        "pyx12_835_simple_4010.835: does not balance (transaction 40731 (TRN02 0004926): BPR02 5950.21 != ")
    assert exc["REMIT_UNBALANCED"].summary.endswith("; nothing from it posts")

    files = {f.name: f for f in scenario.rows(engine, InboundFile)}
    assert {n: f.status for n, f in files.items()} == {
        "lfh_medicare_part_a.835": "processed", "lfh_managed_care.835": "processed",
        "lfh_cob_contractual_adjustment.835": "processed", "lfh_demo_malformed.835": "rejected",
        "pyx12_835_simple_4010.835": "rejected"}
    for name in SAMPLES:
        assert_archived(engine, folder / name, data_dir)
    acks = {a.file_id: a.accepted for a in scenario.rows(engine, Ack999)}
    assert len(acks) == 5
    assert acks[files["lfh_demo_malformed.835"].id] is False and acks[files["pyx12_835_simple_4010.835"].id] is False
    assert acks[files["lfh_medicare_part_a.835"].id] is True

    # the same file again is a no-op; its bytes under another name are a duplicate interchange
    assert process(engine, folder / "lfh_managed_care.835") == {"file": "lfh_managed_care.835", "status": "already_processed"}
    assert scenario.count(engine, Remittance) == 4


# --------------------------------------------------------------------------- malformed input


def _bad_files(folder: Path, samples_dir: Path) -> dict[str, Path]:
    src = (samples_dir / "x12_835" / "lfh_managed_care.835").read_bytes()
    files = {
        "empty": b"",
        "truncated": src[: len(src) * 2 // 3],
        "wrong_delims": src[:106] + src[106:].replace(b"*", b"|"),  # ISA declares '*', the rest uses '|'
        "not_x12": b"MSH|^~\\&|EPIC|F1\r",
    }
    out = {}
    for name, data in files.items():
        out[name] = folder / f"{name}.835"
        out[name].write_bytes(data)
    return out


def test_malformed_835s_are_rejected_with_a_reason_and_the_run_goes_on(
        engine: Engine, samples_dir: Path, tmp_path: Path, data_dir: Path) -> None:
    with session_scope(engine) as s:
        set_payer(s, "PAYERSYNTH", "PAYER-SYNTH", actor="test")
        set_facility(s, "F1", "CF01", npi="1234567893", location="INV-F1", actor="test")
    bad = _bad_files(tmp_path, samples_dir)
    good = tmp_path / "good.835"
    with good.open("wb") as out:
        write_835(out, transactions=2, claims_per_transaction=5)

    results = {name: process(engine, path) for name, path in bad.items()}
    results["good"] = process(engine, good)
    assert all(results[name] == {"file": f"{name}.835", "status": "rejected", "reason": "X12_UNREADABLE"} for name in bad)
    assert results["good"]["status"] == "accepted" and results["good"]["claims"] == 10

    summaries = {e.record_key: e.summary for e in scenario.exceptions(engine) if e.reason_code == "X12_UNREADABLE"}
    assert summaries == {
        "empty.835": "empty.835: empty file: no ISA segment",
        "truncated.835": summaries["truncated.835"],
        "wrong_delims.835": summaries["wrong_delims.835"],
        "not_x12.835": summaries["not_x12.835"],
    }
    assert summaries["not_x12.835"] == "not_x12.835: not an X12 interchange: file does not start with ISA (looks like HL7 v2)"
    assert summaries["truncated.835"].startswith(
        "truncated.835: transaction ST02=112233 unreadable: file ends after segment ")
    assert "with no SE (truncated)" in summaries["truncated.835"]
    # the cause, not only the symptom (no IEA) of a file in other delimiters than its ISA declares
    assert summaries["wrong_delims.835"].startswith(
        "wrong_delims.835: segment 2: segment id GS is followed by '|' instead of the element separator '*' the ISA "
        "declares, outside any transaction set; ")
    assert "truncated" not in summaries["wrong_delims.835"]
    assert scenario.count(engine, ExceptionRecord) == 4

    for path in [*bad.values(), good]:
        assert_archived(engine, path, data_dir)
    statuses = {r.name: r.status for r in scenario.rows(engine, InboundFile)}
    assert statuses == {**{p.name: "rejected" for p in bad.values()}, "good.835": "processed"}
    assert {r.status for r in scenario.rows(engine, Remittance)} == {"balanced"}
    assert scenario.count(engine, Remittance) == 2


STREAM_835 = """
import json, sys
from carefabric.x12 import iter_transactions
transactions = claims = paid = unbalanced = errors = 0
for remit in iter_transactions(sys.argv[1]):
    if isinstance(remit, Exception):
        errors += 1
        continue
    transactions += 1
    claims += len(remit.claims)
    paid += int(remit.payment_amount * 100)
    unbalanced += not remit.balanced
# VmHWM (peak resident set of this process image): unlike ru_maxrss it is not carried over the exec
# from a big parent, so it measures the reader alone
hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM:")]
print(json.dumps({"transactions": transactions, "claims": claims, "paid": paid, "unbalanced": unbalanced,
                  "errors": errors, "max_rss_kb": int(hwm[0].split()[1])}))
"""


@pytest.mark.slow
def test_50mb_835_is_read_in_bounded_memory(tmp_path: Path) -> None:
    """The streaming reader the interface uses, in a fresh interpreter: its peak resident memory
    (interpreter and imports included) stays under the file's own size plus 50 MB."""
    path = tmp_path / "big.835"
    with path.open("wb") as out:
        shape = write_835(out, transactions=150, claims_per_transaction=1000)
    assert path.stat().st_size >= 50 * MB

    done = subprocess.run([sys.executable, "-c", STREAM_835, str(path)], capture_output=True, text=True,
                          timeout=300, check=True)
    seen = json.loads(done.stdout)
    assert {k: seen[k] for k in ("transactions", "claims", "unbalanced", "errors")} == {
        "transactions": shape["transactions"], "claims": shape["claims"], "unbalanced": 0, "errors": 0}
    assert seen["paid"] == 150 * (1000 * 16000 + 250)  # BPR02 = 1000 claims x 160.00 + 2.50 interest, each
    assert seen["max_rss_kb"] * 1024 < 100 * MB, f"peak RSS {seen['max_rss_kb'] // 1024} MiB"


# --------------------------------------------------------------------------- unsafe names


@pytest.mark.parametrize("remote", [
    "../x.835", "/inbound/../../etc/passwd", "/inbound/PAYER-X/../../etc/passwd", "/inbound/PAYER-X/..evil.835",
    "/inbound/PAYER-X/a\\..\\b.835", "/inbound/PAYER-X/.hidden.835", "/inbound/PAYER-X/x\x00.835",
    "/inbound/..\\PAYER-X/x.835", "/inbound/PAYER-X/sub/x.835", "/outbound/PAYER-X/x.835", "/inbound/x.835",
    "/inbound/PAYER-X/my file.835", "/inbound/PAYER-X/r\u00e9mit.835", "/inbound/PAYER-X/x.835\n",
])
def test_safe_remote_path_refuses(remote: str) -> None:
    with pytest.raises(UnsafeFileName):
        safe_remote_path(remote)


def test_safe_remote_path_accepts_a_plain_name() -> None:
    assert safe_remote_path("/inbound/PAYER-ACME/era_1363421001_F1_20240305_01.835") == (
        "PAYER-ACME", "era_1363421001_F1_20240305_01.835")
    assert safe_remote_path("/drop/in/PAYER-ACME/x.835", "/drop/in") == ("PAYER-ACME", "x.835")


def test_sftp_listing_with_unsafe_names_is_refused(engine: Engine, sandbox: SandboxServers, sftp_hook: Any,
                                                   samples_dir: Path, data_dir: Path) -> None:
    """``payer_transport.fetch_remittance`` (the DAG's ``fetch``) on what the server lists."""
    from carefabric_airflow.handoff import staged
    from carefabric_airflow.payer_transport import fetch_remittance, list_remittances

    folder = sandbox.sftp_root / "inbound" / f"PAYER-{engine.dialect.name}"
    folder.mkdir(parents=True)
    sample = (samples_dir / "x12_835" / "lfh_managed_care.835").read_bytes()
    unsafe = ["..evil.835", "my remit.835", "r\u00e9mit.835", ".hidden.835", "a\\b.835"]
    for name in [*unsafe, "good.835"]:
        (folder / name).write_bytes(sample)

    listed = [p for p in list_remittances(sftp_hook) if p.startswith(f"/inbound/{folder.name}/")]
    assert sorted(p.rsplit("/", 1)[1] for p in listed) == sorted([*unsafe, "good.835"])  # the server lists them all
    fetched = {p.rsplit("/", 1)[1]: fetch_remittance(sftp_hook, p, engine) for p in listed}
    remaining = sorted(p.name for p in folder.iterdir())

    good = fetched.pop("good.835")
    assert good is not None and good["payer"] == folder.name and good["path"].endswith("/good.835")
    assert staged(good["path"]).read_bytes() == sample
    assert fetched == dict.fromkeys(unsafe)
    assert remaining == sorted(unsafe)  # refused files stay on the server, untouched
    assert (sandbox.sftp_root / "archive" / folder.name / "good.835").read_bytes() == sample
    handoff = [p for p in (data_dir / "handoff").rglob("*") if p.is_file()]
    assert [p.name for p in handoff] == ["good.835"]  # nothing of a refused name was staged

    exc = scenario.exceptions(engine)
    assert {e.record_key for e in exc} == {f"/inbound/{folder.name}/{n}" for n in unsafe}
    assert all((e.reason_code, e.kind, e.record_type, e.status) == ("UNSAFE_FILE_NAME", "business", "remote_file", "open")
               for e in exc)
    by_key = {e.record_key: e.summary for e in exc}
    assert by_key[f"/inbound/{folder.name}/..evil.835"] == "unsafe file name '..evil.835'"
