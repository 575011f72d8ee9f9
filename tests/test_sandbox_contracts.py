"""The sandbox peers honour docs/CONTRACTS.md, checked through their real protocols.

One set of servers (free ports, a temporary state folder) serves the module; the restart and
CLI tests start their own. Everything talks to the peers the way the pipeline does: paramiko
SFTP, HTTP with requests, SMTP with smtplib; "the sandbox's own records" are read from its
SQLite files.
"""

from __future__ import annotations

import email
import json
import os
import socket
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from email import policy
from pathlib import Path
from typing import Any

import paramiko
import pytest
import requests

from sandbox import BILLING_TOKEN, ERP_TOKEN, SFTP_PASSWORD, SFTP_USER
from sandbox.runner import SandboxServers, port_answers

PROJECT_ROOT = Path(__file__).resolve().parents[1]

ERP_MASTER: dict[str, Any] = {
    "companies": [{"company_id": "CF01", "name": "Carefabric Health", "currency": "USD"}],
    "cost_centers": [
        {"cost_center": "CC-F1-ED", "company_id": "CF01", "facility": "F1", "department": "ED",
         "name": "F1 Emergency", "active": True},
        {"cost_center": "CC-F1-LAB", "company_id": "CF01", "facility": "F1", "department": "LAB",
         "name": "F1 Lab", "active": False},
    ],
    "gl_accounts": [
        {"account": "1010", "name": "Cash clearing", "type": "asset", "active": True},
        {"account": "1200", "name": "Patient AR - insurance", "type": "asset", "active": True},
        {"account": "1400", "name": "Inventory", "type": "asset", "active": True},
        {"account": "4000", "name": "Gross revenue - ED", "type": "revenue", "active": True},
        {"account": "4999", "name": "Retired revenue", "type": "revenue", "active": False},
        {"account": "6500", "name": "Supply expense", "type": "expense", "active": True},
    ],
    "items": [{"item": "ITM-0001", "description": "Gauze", "unit_cost": "4.25", "uom": "EA", "active": True}],
    "locations": [{"location": "INV-F1", "facility": "F1", "name": "F1 stores"}],
    "payers": [{"payer_id": "PAYER-ACME", "name": "Acme Health", "x12_id": "ACME01", "active": True}],
    "periods": [{"period": "2024-01", "status": "closed"}, {"period": "2024-02", "status": "open"}],
}


def billing_seed(n_claims: int = 25) -> dict[str, Any]:
    """Claims whose ``updated_at`` runs one per hour from 2024-02-01T00:00Z."""
    claims = [
        {"claim_id": f"CLM-{i:04d}", "encounter_id": f"ENC-{i:04d}", "facility": "F1", "payer_id": "PAYER-ACME",
         "total_charge": f"{100 + i}.50", "status": "submitted", "submitted_date": "2024-02-01",
         "updated_at": f"2024-02-01T{i:02d}:00:00Z"}
        for i in range(n_claims - 1)
    ] + [
        {"claim_id": "CLM-LATE", "encounter_id": "ENC-LATE", "facility": "F1", "payer_id": "PAYER-ACME",
         "total_charge": "10.00", "status": "paid", "submitted_date": "2024-02-02",
         "updated_at": "2024-02-03T08:00:00+02:00"}
    ]
    return {
        "claims": claims,
        "payments": [{"payment_id": "PAY-1", "claim_id": "CLM-0001", "payer_id": "PAYER-ACME", "amount": "80.00",
                      "paid_date": "2024-02-05", "trace_number": "EFT123", "updated_at": "2024-02-05T10:00:00Z"}],
        "patient_balances": [{"account_token": "tok_abc", "encounter_id": "ENC-0001", "balance": "20.50",
                              "updated_at": "2024-02-05T10:00:00Z"}],
    }


def journal(external_id: str, *, journal_date: str = "2024-02-10", lines: list[dict[str, str]] | None = None,
            company: str = "CF01") -> dict[str, Any]:
    return {
        "external_id": external_id,
        "company": company,
        "journal_date": journal_date,
        "source": "CHARGES",
        "description": "charges for the day",
        "lines": lines or [
            {"account": "1200", "cost_center": None, "location": None, "facility": "F1",
             "debit": "125.50", "credit": "0.00", "memo": "AR"},
            {"account": "4000", "cost_center": "CC-F1-ED", "location": None, "facility": "F1",
             "debit": "0.00", "credit": "125.50", "memo": "ED revenue"},
        ],
    }


def charge(encounter: str = "ENC-0001", amount: str = "12.50") -> dict[str, Any]:
    return {
        "encounter_id": encounter, "facility": "F1", "line_key": f"{encounter}-1", "transaction_id": "T1",
        "service_date": "2024-02-10", "cdm_code": "CDM1001", "quantity": "1", "amount": amount,
        "department": "ED", "cost_center": "CC-F1-ED", "revenue_account": "4000", "procedure_code": "99283",
        "patient_token": "tok_abc",
    }


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServers]:
    servers = SandboxServers(tmp_path_factory.mktemp("sandbox"))
    with servers:
        assert requests.post(f"{servers.erp_url}/_sandbox/load", json=ERP_MASTER, timeout=10).status_code == 200
        assert requests.post(f"{servers.billing_url}/_sandbox/load", json=billing_seed(), timeout=10).status_code == 200
        yield servers


@pytest.fixture(scope="module")
def billing(sandbox: SandboxServers) -> Iterator[requests.Session]:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {BILLING_TOKEN}"
    yield session
    session.close()


@pytest.fixture(scope="module")
def erp(sandbox: SandboxServers) -> Iterator[requests.Session]:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {ERP_TOKEN}"
    yield session
    session.close()


def sftp_connect(servers: SandboxServers, *, password: str | None = SFTP_PASSWORD,
                 pkey: paramiko.PKey | None = None) -> tuple[paramiko.Transport, paramiko.SFTPClient]:
    transport = paramiko.Transport(("127.0.0.1", servers.sftp_port))
    pinned = paramiko.RSAKey.from_private_key_file(str(servers.base_dir / "sftp_host_key"))
    transport.connect(hostkey=pinned, username=SFTP_USER, password=None if pkey else password, pkey=pkey)
    return transport, paramiko.SFTPClient.from_transport(transport)  # type: ignore[return-value]


def drop_file(servers: SandboxServers, payer: str, name: str, content: bytes) -> Path:
    inbound = servers.sftp_root / "inbound" / payer
    inbound.mkdir(parents=True, exist_ok=True)
    path = inbound / name
    path.write_bytes(content)
    return path


# --------------------------------------------------------------------------- SFTP


def test_sftp_lists_fetches_and_archives_with_password(sandbox: SandboxServers) -> None:
    content = b"ISA*00*          *00*          *ZZ*ACME01~"
    drop_file(sandbox, "PAYER-ACME", "remit_001.835", content)
    transport, sftp = sftp_connect(sandbox)
    try:
        assert {"inbound", "archive"} <= set(sftp.listdir("/"))
        assert "remit_001.835" in sftp.listdir("inbound/PAYER-ACME")
        assert sftp.stat("/inbound/PAYER-ACME/remit_001.835").st_size == len(content)
        with sftp.open("/inbound/PAYER-ACME/remit_001.835", "rb") as handle:
            assert handle.read() == content
        sftp.rename("/inbound/PAYER-ACME/remit_001.835", "/archive/PAYER-ACME/remit_001.835")
        assert "remit_001.835" not in sftp.listdir("/inbound/PAYER-ACME")
        assert "remit_001.835" in sftp.listdir("/archive/PAYER-ACME")
    finally:
        transport.close()
    assert (sandbox.sftp_root / "archive" / "PAYER-ACME" / "remit_001.835").read_bytes() == content


def test_sftp_rename_never_overwrites(sandbox: SandboxServers) -> None:
    drop_file(sandbox, "PAYER-BLUE", "dup.835", b"new")
    archived = sandbox.sftp_root / "archive" / "PAYER-BLUE" / "dup.835"
    archived.parent.mkdir(parents=True, exist_ok=True)
    archived.write_bytes(b"old")
    transport, sftp = sftp_connect(sandbox)
    try:
        with pytest.raises(OSError):
            sftp.rename("/inbound/PAYER-BLUE/dup.835", "/archive/PAYER-BLUE/dup.835")
    finally:
        transport.close()
    assert archived.read_bytes() == b"old"


def test_sftp_key_auth_write_mkdir_remove(sandbox: SandboxServers) -> None:
    key = paramiko.RSAKey.from_private_key_file(str(sandbox.base_dir / "client_key"))
    assert (sandbox.base_dir / "client_key.pub").read_text().startswith("ssh-rsa ")
    transport, sftp = sftp_connect(sandbox, pkey=key)
    try:
        sftp.mkdir("/inbound/PAYER-TEST")
        with sftp.open("/inbound/PAYER-TEST/upload.835", "wb") as handle:
            handle.write(b"hello")
        assert (sandbox.sftp_root / "inbound" / "PAYER-TEST" / "upload.835").read_bytes() == b"hello"
        sftp.remove("/inbound/PAYER-TEST/upload.835")
        assert sftp.listdir("/inbound/PAYER-TEST") == []
        sftp.rmdir("/inbound/PAYER-TEST")
    finally:
        transport.close()


def test_sftp_wrong_password_and_unknown_key_refused(sandbox: SandboxServers) -> None:
    with pytest.raises(paramiko.AuthenticationException):
        sftp_connect(sandbox, password="wrong")
    stranger = paramiko.RSAKey.generate(1024)
    with pytest.raises(paramiko.AuthenticationException):
        sftp_connect(sandbox, pkey=stranger)


def test_sftp_path_traversal_refused(sandbox: SandboxServers) -> None:
    (sandbox.sftp_root / "inbound" / "escape").unlink(missing_ok=True)
    (sandbox.sftp_root / "inbound" / "escape").symlink_to(sandbox.base_dir)
    transport, sftp = sftp_connect(sandbox)
    try:
        for attempt in (
            lambda: sftp.listdir("../"),
            lambda: sftp.listdir("/inbound/../.."),
            lambda: sftp.stat("../billing.db"),
            lambda: sftp.open("/inbound/../../billing.db", "rb"),
            lambda: sftp.open("inbound/escape/billing.db", "rb"),
            lambda: sftp.listdir("inbound/escape"),
            lambda: sftp.open("../planted.txt", "wb"),
            lambda: sftp.mkdir("../outside"),
            lambda: sftp.rename("/archive/PAYER-ACME/remit_001.835", "../stolen.835"),
        ):
            with pytest.raises(PermissionError):
                attempt()
        # An absolute path is the jail's own root, never the host's.
        with pytest.raises(FileNotFoundError):
            sftp.stat("/etc/passwd")
        assert sftp.normalize("..") == "/"
    finally:
        transport.close()
    assert not (sandbox.base_dir / "planted.txt").exists()
    assert not (sandbox.base_dir / "outside").exists()


# --------------------------------------------------------------------------- HTTP common


@pytest.mark.parametrize("peer,path", [("billing", "/api/v1/claims"), ("erp", "/api/v1/companies")])
def test_http_requires_bearer_token(sandbox: SandboxServers, peer: str, path: str) -> None:
    url = (sandbox.billing_url if peer == "billing" else sandbox.erp_url) + path
    missing = requests.get(url, timeout=10)
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert missing.json()["error"]["code"] == "UNAUTHORIZED"
    wrong = requests.get(url, headers={"Authorization": "Bearer nope"}, timeout=10)
    assert wrong.status_code == 401


def test_pagination_walks_every_page(sandbox: SandboxServers, billing: requests.Session) -> None:
    seen: list[str] = []
    pages = 0
    params: dict[str, Any] = {"limit": 10}
    while True:
        body = billing.get(f"{sandbox.billing_url}/api/v1/claims", params=params, timeout=10).json()
        pages += 1
        seen += [c["claim_id"] for c in body["data"]]
        if body["next_cursor"] is None:
            break
        params = {"limit": 10, "cursor": body["next_cursor"]}
    assert pages == 3
    assert len(seen) == len(set(seen)) == 25
    claim = billing.get(f"{sandbox.billing_url}/api/v1/claims/CLM-0003", timeout=10).json()
    assert claim["total_charge"] == "103.50" and claim["updated_at"] == "2024-02-01T03:00:00Z"
    bad = billing.get(f"{sandbox.billing_url}/api/v1/claims", params={"cursor": "garbage!"}, timeout=10)
    assert bad.status_code == 400


def test_updated_since_and_before_filters(sandbox: SandboxServers, billing: requests.Session) -> None:
    url = f"{sandbox.billing_url}/api/v1/claims"
    since = billing.get(url, params={"updated_since": "2024-02-01T20:00:00Z"}, timeout=10).json()["data"]
    assert [c["claim_id"] for c in since] == ["CLM-0020", "CLM-0021", "CLM-0022", "CLM-0023", "CLM-LATE"]
    window = billing.get(
        url, params={"updated_since": "2024-02-01T05:00:00Z", "updated_before": "2024-02-01T07:00:00Z"}, timeout=10
    ).json()["data"]
    assert [c["claim_id"] for c in window] == ["CLM-0005", "CLM-0006"]  # since inclusive, before exclusive
    # Offsets are compared as instants: 08:00+02:00 is 06:00Z.
    late = billing.get(url, params={"updated_since": "2024-02-03T06:00:00+00:00"}, timeout=10).json()["data"]
    assert [c["claim_id"] for c in late] == ["CLM-LATE"]
    payments = billing.get(f"{sandbox.billing_url}/api/v1/payments", params={"claim_id": "CLM-0001"}, timeout=10)
    assert payments.json()["data"][0]["trace_number"] == "EFT123"
    balances = billing.get(f"{sandbox.billing_url}/api/v1/patient-balances", timeout=10).json()["data"]
    assert balances == [{"account_token": "tok_abc", "encounter_id": "ENC-0001", "balance": "20.50",
                         "updated_at": "2024-02-05T10:00:00Z"}]


def test_claim_status_and_missing_claim(sandbox: SandboxServers, billing: requests.Session) -> None:
    status = billing.get(f"{sandbox.billing_url}/api/v1/claims/CLM-0002/status", timeout=10).json()
    assert status == {"claim_id": "CLM-0002", "status": "submitted", "status_date": "2024-02-01"}
    missing = billing.get(f"{sandbox.billing_url}/api/v1/claims/NOPE", timeout=10)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "NOT_FOUND"


def test_armed_503_then_success_posts_once(sandbox: SandboxServers, erp: requests.Session) -> None:
    armed = requests.post(f"{sandbox.erp_url}/_sandbox/faults", json={
        "path_prefix": "/api/v1/journal-batches", "method": "POST", "status": 503, "count": 1, "retry_after": 1,
    }, timeout=10)
    assert armed.status_code == 201
    body = journal(uid("JE-FAULT"))
    # A GET on the same prefix is not the armed method and passes.
    assert erp.get(f"{sandbox.erp_url}/api/v1/journal-batches", params={"limit": 1}, timeout=10).status_code == 200
    first = erp.post(f"{sandbox.erp_url}/api/v1/journal-batches", json=body, timeout=10)
    assert first.status_code == 503 and first.headers["Retry-After"] == "1"
    second = erp.post(f"{sandbox.erp_url}/api/v1/journal-batches", json=body, timeout=10)
    assert second.status_code == 201
    with sqlite3.connect(sandbox.base_dir / "erp.db") as db:
        count = db.execute("SELECT COUNT(*) FROM journal_batches WHERE external_id = ?", (body["external_id"],))
        assert count.fetchone()[0] == 1
    assert requests.get(f"{sandbox.erp_url}/_sandbox/state", timeout=10).json()["faults_pending"] == []


def test_armed_429_twice_then_success(sandbox: SandboxServers, billing: requests.Session) -> None:
    requests.post(f"{sandbox.billing_url}/_sandbox/faults", json={
        "path_prefix": "/api/v1/claims", "status": 429, "count": 2, "retry_after": 0,
    }, timeout=10).raise_for_status()
    for _ in range(2):
        limited = billing.get(f"{sandbox.billing_url}/api/v1/claims", timeout=10)
        assert limited.status_code == 429 and limited.headers["Retry-After"] == "0"
        assert limited.json()["error"]["code"] == "RATE_LIMITED"
    assert billing.get(f"{sandbox.billing_url}/api/v1/claims", timeout=10).status_code == 200


def test_fault_subcommand_arms_a_fault(sandbox: SandboxServers, erp: requests.Session) -> None:
    from sandbox.__main__ import main

    assert main(["fault", "erp", "--url", sandbox.erp_url, "--path-prefix", "/api/v1/periods",
                 "--status", "503", "--retry-after", "2"]) == 0
    faulted = erp.get(f"{sandbox.erp_url}/api/v1/periods", timeout=10)
    assert faulted.status_code == 503 and faulted.headers["Retry-After"] == "2"
    periods = erp.get(f"{sandbox.erp_url}/api/v1/periods", timeout=10).json()["data"]
    assert {"period": "2024-01", "status": "closed"} in periods


# --------------------------------------------------------------------------- billing charges


def test_charge_idempotency_replay_and_conflict(sandbox: SandboxServers, billing: requests.Session) -> None:
    url = f"{sandbox.billing_url}/api/v1/charges"
    key = uid("chg")
    first = billing.post(url, json=charge(), headers={"Idempotency-Key": key}, timeout=10)
    assert first.status_code == 201
    assert first.json()["status"] == "accepted" and first.json()["idempotency_key"] == key
    replay = billing.post(url, json=charge(), headers={"Idempotency-Key": key}, timeout=10)
    assert replay.status_code == 200 and replay.json() == first.json()
    assert replay.headers["Idempotent-Replay"] == "true"
    conflict = billing.post(url, json=charge(amount="99.99"), headers={"Idempotency-Key": key}, timeout=10)
    assert conflict.status_code == 409
    assert billing.post(url, json=charge(), timeout=10).status_code == 400  # no key
    invalid = billing.post(url, json={**charge(), "amount": "12.505"}, headers={"Idempotency-Key": uid("c")},
                           timeout=10)
    assert invalid.status_code == 422
    listed = billing.get(url, params={"service_date": "2024-02-10", "encounter_id": "ENC-0001"}, timeout=10).json()
    mine = [c for c in listed["data"] if c["idempotency_key"] == key]
    assert len(mine) == 1 and mine[0]["amount"] == "12.50" and mine[0]["charge_id"] == first.json()["charge_id"]


def test_charge_batch(sandbox: SandboxServers, billing: requests.Session) -> None:
    url = f"{sandbox.billing_url}/api/v1/charges"
    existing = uid("b")
    billing.post(url, json=charge("ENC-0009"), headers={"Idempotency-Key": existing}, timeout=10).raise_for_status()
    fresh, clash = uid("b"), uid("b")
    billing.post(url, json=charge("ENC-0010"), headers={"Idempotency-Key": clash}, timeout=10).raise_for_status()
    result = billing.post(f"{url}:batch", json={"charges": [
        {"idempotency_key": fresh, **charge("ENC-0011")},
        {"idempotency_key": existing, **charge("ENC-0009")},
        {"idempotency_key": clash, **charge("ENC-0010", amount="1.00")},
    ]}, timeout=10)
    assert result.status_code == 200
    statuses = {r["idempotency_key"]: r["status"] for r in result.json()["results"]}
    assert statuses == {fresh: "accepted", existing: "replayed", clash: "conflict"}
    assert all(r["charge_id"] for r in result.json()["results"] if r["status"] != "conflict")


# --------------------------------------------------------------------------- ERP


def test_journal_posted_once_and_replayed(sandbox: SandboxServers, erp: requests.Session) -> None:
    url = f"{sandbox.erp_url}/api/v1/journal-batches"
    body = journal(uid("CF-CHARGES"))
    first = erp.post(url, json=body, timeout=10)
    assert first.status_code == 201
    assert first.json()["status"] == "posted" and first.json()["document_id"].startswith("JE-")
    again = erp.post(url, json=body, timeout=10)
    assert again.status_code == 200 and again.headers["Idempotent-Replay"] == "true"
    assert again.json()["document_id"] == first.json()["document_id"]
    with sqlite3.connect(sandbox.base_dir / "erp.db") as db:
        (batches,) = db.execute("SELECT COUNT(*) FROM journal_batches WHERE external_id = ?",
                                (body["external_id"],)).fetchone()
        debit_cents = db.execute("SELECT SUM(debit_cents) FROM journal_lines WHERE document_id = ?",
                                 (first.json()["document_id"],)).fetchone()[0]
    assert batches == 1 and debit_cents == 12550
    stored = erp.get(f"{url}/{body['external_id']}", timeout=10).json()
    assert [(ln["account"], ln["debit"], ln["credit"]) for ln in stored["lines"]] == [
        ("1200", "125.50", "0.00"), ("4000", "0.00", "125.50")]
    listed = erp.get(url, params={"journal_date": "2024-02-10", "source": "CHARGES"}, timeout=10).json()["data"]
    assert body["external_id"] in {b["external_id"] for b in listed}


def test_unbalanced_rejected_then_corrected_repost_accepted(sandbox: SandboxServers, erp: requests.Session) -> None:
    url = f"{sandbox.erp_url}/api/v1/journal-batches"
    external_id = uid("CF-UNBAL")
    unbalanced = journal(external_id, lines=[
        {"account": "1200", "facility": "F1", "debit": "10.00", "credit": "0.00"},
        {"account": "4000", "cost_center": "CC-F1-ED", "facility": "F1", "debit": "0.00", "credit": "9.99"},
    ])
    rejected = erp.post(url, json=unbalanced, timeout=10)
    assert rejected.status_code == 422
    assert rejected.json()["error"]["code"] == "UNBALANCED" and rejected.json()["error"]["line"] is None
    assert erp.get(f"{url}/{external_id}", timeout=10).status_code == 404
    corrected = erp.post(url, json=journal(external_id), timeout=10)
    assert corrected.status_code == 201


@pytest.mark.parametrize("lines,code,line", [
    ([{"account": "1200", "debit": "5.00"}, {"account": "4000", "cost_center": "CC-F1-LAB", "credit": "5.00"}],
     "INACTIVE_COST_CENTER", 1),
    ([{"account": "1200", "debit": "5.00"}, {"account": "4000", "cost_center": "CC-NOPE", "credit": "5.00"}],
     "UNKNOWN_COST_CENTER", 1),
    ([{"account": "9999", "debit": "5.00"}, {"account": "4000", "credit": "5.00"}], "UNKNOWN_ACCOUNT", 0),
    ([{"account": "1200", "debit": "5.00"}, {"account": "4999", "credit": "5.00"}], "INACTIVE_ACCOUNT", 1),
    ([{"account": "1200", "debit": "5.001"}, {"account": "4000", "credit": "5.001"}], "INVALID", 0),
    ([{"account": "1200", "debit": 5.5}, {"account": "4000", "credit": "5.50"}], None, None),
])
def test_journal_line_validation(sandbox: SandboxServers, erp: requests.Session, lines: list[dict[str, Any]],
                                 code: str | None, line: int | None) -> None:
    response = erp.post(f"{sandbox.erp_url}/api/v1/journal-batches", json=journal(uid("CF-V"), lines=lines),
                        timeout=10)
    if code is None:  # a JSON number is read as Decimal, never float, and balances exactly
        assert response.status_code == 201, response.text
        return
    assert response.status_code == 422
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["line"] == line


def test_closed_period_and_unknown_company(sandbox: SandboxServers, erp: requests.Session) -> None:
    url = f"{sandbox.erp_url}/api/v1/journal-batches"
    closed = erp.post(url, json=journal(uid("CF-CLOSED"), journal_date="2024-01-31"), timeout=10)
    assert closed.status_code == 422 and closed.json()["error"]["code"] == "PERIOD_CLOSED"
    nobody = erp.post(url, json=journal(uid("CF-CO"), company="ZZ99"), timeout=10)
    assert nobody.status_code == 422 and nobody.json()["error"]["code"] == "UNKNOWN_COMPANY"


def test_inventory_movement_idempotent_and_validated(sandbox: SandboxServers, erp: requests.Session) -> None:
    url = f"{sandbox.erp_url}/api/v1/inventory-movements"
    line = {"location": "INV-F1", "item": "ITM-0001", "quantity": "-2", "unit_cost": "4.25",
            "cost_center": "CC-F1-ED", "movement_type": "consumption"}
    body = {"external_id": uid("CF-INV"), "company": "CF01", "movement_date": "2024-02-10", "lines": [line]}
    first = erp.post(url, json=body, timeout=10)
    assert first.status_code == 201 and first.json()["document_id"].startswith("IM-")
    again = erp.post(url, json=body, timeout=10)
    assert again.status_code == 200 and again.json() == first.json()
    for field, value, code in (("item", "ITM-NOPE", "UNKNOWN_ITEM"), ("location", "INV-X", "UNKNOWN_LOCATION")):
        bad = erp.post(url, json={**body, "external_id": uid("CF-INV"), "lines": [{**line, field: value}]},
                       timeout=10)
        assert bad.status_code == 422 and bad.json()["error"]["code"] == code
    listed = erp.get(url, params={"movement_date": "2024-02-10"}, timeout=10).json()["data"]
    assert [m["lines"] for m in listed if m["external_id"] == body["external_id"]] == [[line]]


def test_cash_receipt_idempotent(sandbox: SandboxServers, erp: requests.Session) -> None:
    url = f"{sandbox.erp_url}/api/v1/cash-receipts"
    body = {"external_id": uid("CF-CASH"), "company": "CF01", "receipt_date": "2024-02-10",
            "trace_number": "EFT123", "payer_id": "PAYER-ACME", "amount": "80.00", "facility": "F1"}
    first = erp.post(url, json=body, timeout=10)
    assert first.status_code == 201 and first.json()["document_id"].startswith("CR-")
    again = erp.post(url, json=body, timeout=10)
    assert again.status_code == 200 and again.json()["document_id"] == first.json()["document_id"]
    listed = erp.get(url, params={"receipt_date": "2024-02-10", "trace_number": "EFT123"}, timeout=10).json()
    assert [r["amount"] for r in listed["data"] if r["external_id"] == body["external_id"]] == ["80.00"]
    unknown = erp.post(url, json={**body, "external_id": uid("CF-CASH"), "payer_id": "PAYER-NOPE"}, timeout=10)
    assert unknown.status_code == 422


def test_master_data_lists(sandbox: SandboxServers, erp: requests.Session) -> None:
    centers = erp.get(f"{sandbox.erp_url}/api/v1/cost-centers", timeout=10).json()
    assert centers["next_cursor"] is None
    assert {c["cost_center"]: c["active"] for c in centers["data"]} == {"CC-F1-ED": True, "CC-F1-LAB": False}
    items = erp.get(f"{sandbox.erp_url}/api/v1/items", timeout=10).json()["data"]
    assert items == [{"item": "ITM-0001", "description": "Gauze", "unit_cost": "4.25", "uom": "EA", "active": True}]
    state = requests.get(f"{sandbox.erp_url}/_sandbox/state", timeout=10).json()
    assert state["counts"]["gl_accounts"] == 6 and state["closed_periods"] == ["2024-01"]


# --------------------------------------------------------------------------- SMTP


def test_smtp_message_saved_as_eml(sandbox: SandboxServers) -> None:
    import smtplib
    from email.message import EmailMessage

    message = EmailMessage()
    message["From"] = "carefabric@example.org"
    message["To"] = "ops@example.org"
    message["Subject"] = "carefabric: 3 open exceptions"
    message.set_content("see the exception queue")
    with smtplib.SMTP("127.0.0.1", sandbox.smtp_port, timeout=10) as client:
        client.send_message(message)
    saved = sorted(sandbox.mail_dir.glob("*.eml"))
    assert saved, "no .eml written"
    parsed = email.message_from_bytes(saved[-1].read_bytes(), policy=policy.default)
    assert parsed["Subject"] == "carefabric: 3 open exceptions"
    assert parsed["X-Original-To"] == "ops@example.org"


# --------------------------------------------------------------------------- restart


def test_state_and_host_key_survive_restart(tmp_path: Path) -> None:
    body = journal("CF-RESTART-1")
    with SandboxServers(tmp_path) as servers:
        requests.post(f"{servers.erp_url}/_sandbox/load", json=ERP_MASTER, timeout=10).raise_for_status()
        headers = {"Authorization": f"Bearer {ERP_TOKEN}"}
        first = requests.post(f"{servers.erp_url}/api/v1/journal-batches", json=body, headers=headers, timeout=10)
        assert first.status_code == 201
        billing_headers = {"Authorization": f"Bearer {BILLING_TOKEN}", "Idempotency-Key": "restart-key"}
        charged = requests.post(f"{servers.billing_url}/api/v1/charges", json=charge(), headers=billing_headers,
                                timeout=10)
        assert charged.status_code == 201
        transport, _sftp = sftp_connect(servers)
        host_key = transport.get_remote_server_key().asbytes()
        transport.close()
    client_key = (tmp_path / "client_key.pub").read_text()
    assert not (tmp_path / "ready.json").exists()

    with SandboxServers(tmp_path) as servers:
        assert json.loads((tmp_path / "ready.json").read_text())["erp_port"] == int(servers.erp_url.rsplit(":", 1)[1])
        again = requests.post(f"{servers.erp_url}/api/v1/journal-batches", json=body, headers=headers, timeout=10)
        assert again.status_code == 200 and again.json()["document_id"] == first.json()["document_id"]
        replay = requests.post(f"{servers.billing_url}/api/v1/charges", json=charge(), headers=billing_headers,
                               timeout=10)
        assert replay.status_code == 200 and replay.json() == charged.json()
        transport, sftp = sftp_connect(servers, pkey=paramiko.RSAKey.from_private_key_file(str(tmp_path / "client_key")))
        assert transport.get_remote_server_key().asbytes() == host_key
        assert "inbound" in sftp.listdir("/")
        transport.close()
        # reset empties the peer (and restarts document numbers)
        requests.post(f"{servers.erp_url}/_sandbox/reset", timeout=10).raise_for_status()
        counts = requests.get(f"{servers.erp_url}/_sandbox/state", timeout=10).json()["counts"]
        assert counts["journal_batches"] == 0 and counts["companies"] == 0
    assert (tmp_path / "client_key.pub").read_text() == client_key


# --------------------------------------------------------------------------- CLI


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_cli_start_install_status_stop(tmp_path: Path) -> None:
    state = tmp_path / "sandbox"
    ports = {peer: _free_port() for peer in ("sftp", "billing", "erp", "smtp", "ehr_fhir")}
    env = {
        **os.environ,
        "SANDBOX_DIR": str(state),
        "CAREFABRIC_DATA_DIR": str(tmp_path / "data"),
        "CAREFABRIC_LANDING_DIR": str(tmp_path / "landing"),
        **{f"SANDBOX_{peer.upper()}_PORT": str(port) for peer, port in ports.items()},
    }

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "sandbox", *args], env=env, cwd=PROJECT_ROOT,
                              capture_output=True, text=True, timeout=60)

    scenario = tmp_path / "scenario"
    (scenario / "sftp" / "PAYER-ACME").mkdir(parents=True)
    (scenario / "sftp" / "PAYER-ACME" / "acme_20240210.835").write_text("ISA*00~")
    (scenario / "ehr").mkdir()
    (scenario / "ehr" / "F1_2024-02-10.hl7").write_text("FHS|^~\\&|\r")
    (scenario / "erp_master.json").write_text(json.dumps(ERP_MASTER))
    (scenario / "billing_seed.json").write_text(json.dumps(billing_seed(3)))

    started = cli("start")
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        assert all(port_answers(port) for port in ports.values())
        assert json.loads((state / "ready.json").read_text())["billing_port"] == ports["billing"]
        again = cli("start")
        assert again.returncode == 0 and "already running" in again.stdout
        status = cli("status")
        assert status.returncode == 0 and "running" in status.stdout

        installed = cli("install", str(scenario))
        assert installed.returncode == 0, installed.stdout + installed.stderr
        assert (state / "sftp_root" / "inbound" / "PAYER-ACME" / "acme_20240210.835").read_text() == "ISA*00~"
        assert (state / "sftp_root" / "archive" / "PAYER-ACME").is_dir()
        assert (tmp_path / "landing" / "F1_2024-02-10.hl7").exists()
        claims = requests.get(f"http://127.0.0.1:{ports['billing']}/api/v1/claims",
                              headers={"Authorization": f"Bearer {BILLING_TOKEN}"}, timeout=10).json()
        assert len(claims["data"]) == 3
    finally:
        stopped = cli("stop")
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert not (state / "sandbox.pid").exists()
    assert not any(port_answers(port) for port in ports.values())
    assert cli("status").returncode == 1
