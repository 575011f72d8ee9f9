"""The fault suite: money under faults, judged from the peers' own records.

Each test runs the day's ingest, injects one fault against the real sandbox peers, recovers the
way an operator would (rerun, fix the cause, replay), and then judges what the ERP itself holds
against the generator's ground truth: every line to the cent, no document missing, none twice.
The sandbox ERP's external-id de-duplication is switched OFF throughout, as in the many ERP
import APIs that have none: only carefabric's outbox keeps a document from posting twice.
Runs on SQLite and PostgreSQL. ``make chaos`` runs this module (and the Airflow-level faults in
``test_fault_suite_airflow.py``) alone.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests
import scenario
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from carefabric.clients.rest import RejectedError, TransientError
from carefabric.interfaces import ehr_ingest, erp_posting, payer_remittance
from carefabric.store.models import ErpPosting, ExceptionRecord, Remittance
from sandbox import ERP_TOKEN
from sandbox.judge import judge
from sandbox.runner import SandboxServers

pytestmark = pytest.mark.chaos

DAY = scenario.BUSINESS_DATE
LEASE = 2.0
DRIVER = Path(__file__).resolve().parent / "chaos_driver.py"


@pytest.fixture
def peers(sandbox: SandboxServers, day_dir: Path) -> SandboxServers:
    """Emptied peers, the ERP loaded with the day's master data and its de-duplication off."""
    return scenario.reset_peers(sandbox, day_dir, deduplicate=False)


def ingest_day(engine: Engine, day_dir: Path, peers: SandboxServers) -> None:
    scenario.ingest_day(engine, day_dir, peers.billing_url)


def differences(day_dir: Path, peers: SandboxServers) -> list[str]:
    """The ERP's own records against the ground truth (missing, extra, twice)."""
    return judge(day_dir / "ground_truth.json", peers.erp_url, ERP_TOKEN)["differences"]


def arm(peers: SandboxServers, **spec: Any) -> None:
    scenario.admin(peers.erp_url, "faults", {"retry_after": 0, **spec})


def fired(peers: SandboxServers) -> list[dict[str, Any]]:
    return scenario.peer_state(peers.erp_url)["faults_fired"]


def clear_faults(peers: SandboxServers) -> None:
    requests.delete(f"{peers.erp_url}/_sandbox/faults", timeout=10).raise_for_status()


def statuses(engine: Engine) -> dict[str, str]:
    return {p.external_id: p.status for p in scenario.rows(engine, ErpPosting)}


def erp_document_count(peers: SandboxServers) -> int:
    counts = scenario.peer_state(peers.erp_url)["counts"]
    return int(counts["journal_batches"] + counts["inventory_movements"] + counts["cash_receipts"])


def url_of(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def post(engine: Engine, peers: SandboxServers) -> dict[str, Any]:
    return erp_posting.post_day(engine, scenario.erp_client(peers.erp_url), DAY, lease_seconds=LEASE,
                                sleep=lambda _: None)


def wait_for(condition: Any, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the fault to fire"
        time.sleep(0.05)


# --------------------------------------------------------------------------- crashes


def test_kill_9_after_the_erp_commits_each_document_in_turn(engine: Engine, day_dir: Path,
                                                           peers: SandboxServers) -> None:
    """Run k is killed (SIGKILL) while the ERP's answer to its first POST is in flight, after
    the ERP committed it: every document of the day dies that way once, then a rerun recovers."""
    ingest_day(engine, day_dir, peers)
    documents = erp_posting.build_day(engine, DAY)
    assert len(documents) >= 5  # CHARGES, SUPPLY, INVENTORY, REMIT and cash receipts
    for k in range(1, len(documents) + 1):
        clear_faults(peers)
        arm(peers, path_prefix="/api/v1/", method="POST", status=503, when="after_commit", hang_seconds=120)
        worker = subprocess.Popen([sys.executable, str(DRIVER), url_of(engine), peers.erp_url, DAY.isoformat(),
                                   str(LEASE)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_for(lambda w=worker: len(fired(peers)) == 1 or w.poll() is not None)
            assert worker.poll() is None, worker.stderr.read().decode()[-2000:] if worker.stderr else ""
        finally:
            worker.kill()
            worker.wait()
        assert erp_document_count(peers) == k  # document k committed, its answer died with the worker
    clear_faults(peers)
    assert "pending" not in statuses(engine).values()

    outcome = post(engine, peers)
    assert set(outcome["sent"].values()) == {"found"}  # nothing re-sent: every one was looked up
    assert set(statuses(engine).values()) == {"posted"}
    assert erp_document_count(peers) == len(documents)
    assert differences(day_dir, peers) == []
    assert post(engine, peers)["sent"] == {}


def test_kill_9_before_the_erp_handles_the_request(engine: Engine, day_dir: Path, peers: SandboxServers) -> None:
    """Killed while the request is still in a gateway: nothing committed, the rerun sends it."""
    ingest_day(engine, day_dir, peers)
    arm(peers, path_prefix="/api/v1/", method="POST", status=503, when="before", hang_seconds=120, skip=2)
    worker = subprocess.Popen([sys.executable, str(DRIVER), url_of(engine), peers.erp_url, DAY.isoformat(),
                               str(LEASE)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: len(fired(peers)) == 1)
    finally:
        worker.kill()
        worker.wait()
    clear_faults(peers)
    outcome = post(engine, peers)
    assert list(outcome["sent"].values()).count("posted") >= 1
    assert differences(day_dir, peers) == []


# --------------------------------------------------------------------------- outages


def test_503_storm_longer_than_the_retry_budget(engine: Engine, day_dir: Path, peers: SandboxServers) -> None:
    """Three POSTs commit and lose their answer, then every endpoint answers 503: the run fails
    (not green), nothing is lost; after the storm a rerun posts each document exactly once."""
    ingest_day(engine, day_dir, peers)
    arm(peers, path_prefix="/api/v1/", method="POST", status=503, when="after_commit", count=3)
    arm(peers, path_prefix="/api/v1/", status=503, count=10_000)
    with pytest.raises(TransientError, match="not confirmed by the ERP"):
        post(engine, peers)
    left = statuses(engine)
    assert set(left.values()) <= {"unknown", "pending"}
    # each unconfirmed document is an open exception of its own until it posts
    unconfirmed = scenario.exceptions(engine, ExceptionRecord.reason_code == "ERP_UNCONFIRMED")
    assert {(e.record_key, e.status) for e in unconfirmed} == {(ext, "open") for ext in left}
    clear_faults(peers)

    post(engine, peers)
    assert set(statuses(engine).values()) == {"posted"}
    assert {e.status for e in scenario.exceptions(engine, ExceptionRecord.reason_code == "ERP_UNCONFIRMED")} == {"resolved"}
    assert differences(day_dir, peers) == []


def test_billing_429_with_retry_after_routes_each_line_once(engine: Engine, day_dir: Path,
                                                            peers: SandboxServers) -> None:
    for path in sorted((day_dir / "ehr").glob("*.hl7")):
        ehr_ingest.ingest_file(path, engine, business_date=DAY, validate=False)
    scenario.admin(peers.billing_url, "faults", {"path_prefix": "/api/v1/", "status": 429, "count": 2,
                                                 "retry_after": 1})
    billing = scenario.billing_client(peers.billing_url, sleep=lambda _: None)
    routed = ehr_ingest.route_charges(engine, billing)["routed"]
    assert [s for _m, _p, s in billing.rest.attempts_log][:2] == [429, 429]
    charges = scenario.billing_charges(peers.billing_url)
    assert len(charges) == routed == len({c["line_key"] for c in charges})


# --------------------------------------------------------------------------- rejections


def _without(master: dict[str, Any], section: str, keep: Any) -> dict[str, Any]:
    return {section: [row for row in master[section] if keep(row)]}


def _inactive(master: dict[str, Any], accounts: Any) -> dict[str, Any]:
    return {"gl_accounts": [{**row, "active": not accounts(row["account"])} for row in master["gl_accounts"]]}


REJECTIONS = {
    # source rejected: (master data that provokes the ERP's own 422, the reason it gives)
    "CHARGES": (lambda m: _inactive(m, lambda a: a.startswith("40")), "INACTIVE_ACCOUNT"),
    "SUPPLY": (lambda m: _inactive(m, lambda a: a == "6500"), "INACTIVE_ACCOUNT"),
    "INVENTORY": (lambda m: _without(m, "items", lambda _row: False), "UNKNOWN_ITEM"),
    "REMIT": (lambda m: _inactive(m, lambda a: a == "4900"), "INACTIVE_ACCOUNT"),
    "CASH": (lambda m: _without(m, "payers", lambda _row: False), "UNKNOWN_PAYER"),
}


@pytest.mark.parametrize("source", sorted(REJECTIONS))
def test_rejection_of_each_document_kind_then_the_cause_fixed(source: str, engine: Engine, day_dir: Path,
                                                              peers: SandboxServers) -> None:
    ingest_day(engine, day_dir, peers)
    master = scenario.erp_master(day_dir)
    provoke, reason = REJECTIONS[source]
    scenario.admin(peers.erp_url, "load", provoke(master))

    with pytest.raises(RejectedError, match="rejected by the ERP"):
        post(engine, peers)
    docs = scenario.rows(engine, ErpPosting)
    refused = [d for d in docs if d.status == "rejected"]
    assert refused and {d.source for d in refused} == {source}
    assert {d.status for d in docs if d.source != source} == {"posted"}  # the rest of the day went on
    assert {d.error_code for d in refused} == {reason}
    open_exc = scenario.exceptions(engine, ExceptionRecord.reason_code == "ERP_REJECTED")
    assert {(e.record_key, e.status) for e in open_exc} == {(d.external_id, "open") for d in refused}
    if source in ("REMIT", "CASH"):
        assert scenario.count(engine, Remittance, Remittance.status == "posted") == 0

    scenario.admin(peers.erp_url, "load", {k: master[k] for k in provoke(master)})  # the cause fixed
    post(engine, peers)
    assert {d.status for d in scenario.rows(engine, ErpPosting)} == {"posted"}
    closed = scenario.exceptions(engine, ExceptionRecord.reason_code == "ERP_REJECTED")
    assert {e.status for e in closed} == {"resolved"}
    assert differences(day_dir, peers) == []


# --------------------------------------------------------------------------- concurrency


def test_two_posting_runs_at_once_post_each_document_once(engine: Engine, day_dir: Path,
                                                          peers: SandboxServers) -> None:
    """Two processes build and post the same date at the same instant against an ERP without
    de-duplication: the build lock gives each record one document, the claim one sender."""
    ingest_day(engine, day_dir, peers)
    start_at = str(time.time() + 6)
    workers = [
        subprocess.Popen([sys.executable, str(DRIVER), url_of(engine), peers.erp_url, DAY.isoformat(), "30", start_at],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    errors = [w.communicate(timeout=300)[1].decode()[-1500:] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], errors
    assert set(statuses(engine).values()) == {"posted"}
    assert differences(day_dir, peers) == []


# --------------------------------------------------------------------------- the database


@pytest.mark.postgres
def test_postgres_connections_terminated_during_posting(pg_scratch_url: str, tmp_path: Path, day_dir: Path,
                                                        peers: SandboxServers, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every connection to the store is killed every 100 ms while the day posts (the ERP slowed
    so the kills land between claim, send and record): the runs that fail are rerun."""
    monkeypatch.setenv("CAREFABRIC_DATA_DIR", str(tmp_path / "data"))
    with scenario.migrated_store(pg_scratch_url) as engine:
        scenario.seed_store(engine, day_dir)
        ingest_day(engine, day_dir, peers)
        arm(peers, path_prefix="/api/v1/", method="POST", status=503, when="after_commit", hang_seconds=0.3, count=3)
        failures = _under_connection_kills(pg_scratch_url, lambda: post(engine, peers), tries=3)
        clear_faults(peers)
        time.sleep(LEASE)
        post(engine, peers)  # the operator's rerun, on a healthy database
        assert set(statuses(engine).values()) == {"posted"}, failures
        assert differences(day_dir, peers) == []


def _under_connection_kills(url: str, work: Any, tries: int) -> list[str]:
    """Run ``work`` ``tries`` times while another thread terminates the store's connections."""
    stop = threading.Event()

    def killer() -> None:
        while not stop.is_set():
            _terminate_backends(url)
            time.sleep(0.1)

    thread = threading.Thread(target=killer)
    thread.start()
    failures: list[str] = []
    try:
        for _ in range(tries):
            try:
                work()
            except (sa.exc.DBAPIError, TransientError) as exc:
                failures.append(type(exc).__name__)
    finally:
        stop.set()
        thread.join()
    return failures


@pytest.mark.postgres
def test_postgres_connections_terminated_during_ingest(pg_scratch_url: str, tmp_path: Path, day_dir: Path,
                                                       peers: SandboxServers, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAREFABRIC_DATA_DIR", str(tmp_path / "data"))
    with scenario.migrated_store(pg_scratch_url) as engine:
        scenario.seed_store(engine, day_dir)
        _under_connection_kills(pg_scratch_url, lambda: ingest_day(engine, day_dir, peers), tries=3)
        # the operator's rerun, on a healthy database, once the killed attempts are stale: a file an
        # attempt died in is read again, not skipped as "already processed"
        monkeypatch.setenv("CAREFABRIC_STALE_FILE_SECONDS", "0")
        ingest_day(engine, day_dir, peers)
        post(engine, peers)
        assert differences(day_dir, peers) == []
        assert len(scenario.billing_charges(peers.billing_url)) == len(
            {c["line_key"] for c in scenario.billing_charges(peers.billing_url)})


def _terminate_backends(url: str) -> None:
    admin = sa.create_engine(url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    name = url.rsplit("/", 1)[1].split("?")[0]
    with admin.connect() as conn:
        conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n "
                             "AND pid <> pg_backend_pid()"), {"n": name})
    admin.dispose()


# --------------------------------------------------------------------------- duplicates and corrections


def _new_envelope(x12: bytes, suffix: str) -> bytes:
    """The same payment under new ISA13/GS06/ST02 (and their trailers): what a payer's re-send
    through another clearinghouse looks like."""
    text = x12.decode("latin-1")
    element, segment = text[3], text[105]
    out = []
    for seg in text.split(segment):
        fields = seg.strip().split(element)
        name = fields[0]
        if name == "ISA":
            fields[13] = fields[13][:-len(suffix)] + suffix
        elif name == "IEA" or name == "GE":
            fields[2] = fields[2][:-len(suffix)] + suffix
        elif name == "GS":
            fields[6] = fields[6][:-len(suffix)] + suffix
        elif name in ("ST", "SE"):
            fields[2] = fields[2][:-len(suffix)] + suffix
        out.append(element.join(fields) if seg.strip() else "")
    return segment.join(out).encode("latin-1")


def test_835_resent_with_new_envelope_numbers_posts_once(engine: Engine, day_dir: Path, peers: SandboxServers,
                                                         tmp_path: Path) -> None:
    ingest_day(engine, day_dir, peers)
    original = next(p for p in sorted((day_dir / "sftp").glob("*/*.835")) if "_resend" not in p.name
                    and scenario.count(engine, Remittance, Remittance.status == "balanced") > 0)
    resend = tmp_path / original.parent.name / f"again_{original.name}"
    resend.parent.mkdir(parents=True)
    resend.write_bytes(_new_envelope(original.read_bytes(), "77"))
    payer_remittance.process_file(resend, engine, payer_folder=resend.parent.name, business_date=DAY)

    post(engine, peers)
    assert differences(day_dir, peers) == []  # REMIT and the cash receipt once, to the cent
    found = scenario.exceptions(engine, ExceptionRecord.reason_code == "DUPLICATE_PAYMENT")
    assert found, "the re-sent payment is not shown as a duplicate"
    detail = found[0].detail or {}
    assert (detail["file"], detail["original_file"]) == (resend.name, original.name)


def test_hl7_corrected_under_the_same_msh10_is_held_then_applied_once(engine: Engine, day_dir: Path,
                                                                    peers: SandboxServers, tmp_path: Path) -> None:
    from carefabric.interfaces import exception_replay

    ingest_day(engine, day_dir, peers)
    post(engine, peers)
    assert differences(day_dir, peers) == []
    before = _net_charges(peers)

    segments, ft1 = _dft_with_single_unit_line(sorted((day_dir / "ehr").glob("*.hl7"))[0].read_bytes())
    fields = segments[ft1].split(b"|")
    fields[11] = fields[12] = f"{float(fields[11]) + 100:.2f}".encode()  # the corrected price, +$100.00
    segments[ft1] = b"|".join(fields)
    resend = tmp_path / "resend.hl7"
    resend.write_bytes(b"\r".join(segments))
    ehr_ingest.ingest_file(resend, engine, business_date=DAY, validate=False)
    (held,) = scenario.exceptions(engine, ExceptionRecord.reason_code == "CONFLICTING_RESEND")
    post(engine, peers)
    assert _net_charges(peers) == before  # held: nothing of the new version posts until a person decides

    exception_replay.replay(engine, scenario.billing_client(peers.billing_url), scenario.erp_client(peers.erp_url),
                            exception_ids=[held.id], actor="analyst")
    post(engine, peers)
    after = _net_charges(peers)
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in set(after) | set(before) if after.get(k, 0) != before.get(k, 0)}
    # the original line reversed and the corrected one posted: net, exactly the correction's difference,
    # AR up $100 and revenue up (a credit) $100 in the line's facility
    assert sorted(delta.values()) == [-10_000, 10_000], delta
    assert {k[0] for k, v in delta.items() if v > 0} == {"1200"}
    assert all(n == 1 for n in _external_id_counts(peers).values())


def _dft_with_single_unit_line(batch: bytes) -> tuple[list[bytes], int]:
    """A DFT message of the batch split in segments, and the index of an FT1 of quantity 1."""
    for message in scenario.hl7_messages(batch):
        segments = message.split(b"\r")
        for i, seg in enumerate(segments):
            fields = seg.split(b"|")
            if seg.startswith(b"FT1|") and len(fields) > 12 and fields[10] == b"1" and fields[6] == b"CG":
                return segments, i
    raise AssertionError("no single-unit charge line in the batch")


def _net_charges(peers: SandboxServers) -> dict[tuple[str, str, str], int]:
    net: dict[tuple[str, str, str], int] = {}
    for journal in scenario.erp_journals(peers.erp_url, source="CHARGES"):
        for line in journal["lines"]:
            key = (line["account"], line.get("cost_center") or "", line.get("facility") or "")
            net[key] = net.get(key, 0) + round((float(line["debit"]) - float(line["credit"])) * 100)
    return {k: v for k, v in net.items() if v}


def _external_id_counts(peers: SandboxServers) -> dict[str, int]:
    counts: dict[str, int] = {}
    for journal in scenario.erp_journals(peers.erp_url):
        counts[journal["external_id"]] = counts.get(journal["external_id"], 0) + 1
    return counts
