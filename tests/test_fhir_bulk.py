"""The FHIR Bulk Data pull against the sandbox EHR's real FHIR server (HTTP on loopback).

The client's steps (token, kick-off, one poll, download) and the Airflow trigger's asynchronous
wait run against ``sandbox.fhir_server`` started with the other peers; the server checks the JWT
client assertion for real, so a wrong key, audience or a replayed ``jti`` are refused by it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
import scenario
from cryptography.hazmat.primitives.asymmetric import rsa

from carefabric.fhir_bulk import BulkAuthError, BulkClient, BulkExportError, Manifest, Pending
from carefabric.fhir_bulk.auth import ASSERTION_TYPE, client_assertion, load_private_key
from carefabric.fhir_bulk.pull import ingest_downloads
from carefabric.store.models import Charge as ChargeRow
from sandbox import EHR_CLIENT_ID, EHR_GROUP_ID
from sandbox.runner import SandboxServers

DAY = scenario.BUSINESS_DATE
SINCE = dt.datetime.combine(DAY, dt.time(), tzinfo=dt.UTC)
UNTIL = SINCE + dt.timedelta(days=1)


@pytest.fixture(scope="module")
def ehr(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The sandbox peers with one generated day's FHIR resources loaded into the EHR server."""
    base = tmp_path_factory.mktemp("bulk")
    truth = scenario.generate_day(base / "day", encounters=40)
    with SandboxServers(base / "sandbox") as servers:
        ndjson = next((base / "day" / "ehr").glob("fhir_*.ndjson")).read_text()
        admin = servers.ehr_fhir_url.rsplit("/fhir", 1)[0]
        loaded = requests.post(f"{admin}/_sandbox/load", timeout=10,
                               json={"files": [{"ndjson": ndjson, "last_updated": f"{DAY}T18:00:00Z"}]}).json()
        yield {"servers": servers, "admin": admin, "url": servers.ehr_fhir_url, "truth": truth, "day": base / "day",
               "lines": ndjson.splitlines(), "loaded": loaded["loaded"], "key": servers.ehr_client_key.read_text()}


@pytest.fixture(autouse=True)
def _fresh_settings(ehr: dict[str, Any]) -> None:
    settings(ehr, reset=True, polls_before_ready=1, retry_after=1)


def settings(ehr: dict[str, Any], **values: Any) -> None:
    requests.post(f"{ehr['admin']}/_sandbox/settings", json=values, timeout=10).raise_for_status()


def state(ehr: dict[str, Any]) -> dict[str, Any]:
    return requests.get(f"{ehr['admin']}/_sandbox/state", timeout=10).json()


def client(ehr: dict[str, Any], key: str | None = None) -> BulkClient:
    return BulkClient(ehr["url"], EHR_CLIENT_ID, key or ehr["key"])


def trigger_events(status_url: str, token: str) -> list[dict[str, Any]]:
    """Run the Airflow trigger's asynchronous poll loop to its first event."""
    from carefabric_airflow.fhir_bulk import BulkExportStatusTrigger

    async def first() -> dict[str, Any]:
        async for event in BulkExportStatusTrigger(status_url, token).run():
            return dict(event.payload)
        raise AssertionError("trigger ended without an event")

    return [asyncio.run(first())]


def test_group_export_polls_with_retry_after_then_downloads_the_day_byte_for_byte(ehr: dict[str, Any],
                                                                                   tmp_path: Path) -> None:
    settings(ehr, polls_before_ready=2, retry_after=1)
    bulk = client(ehr)
    status_url = bulk.kick_off(since=SINCE, until=UNTIL, group=EHR_GROUP_ID)
    first = bulk.poll(status_url)
    assert isinstance(first, Pending) and first.retry_after == 1 and "step 1 of 3" in (first.progress or "")
    [event] = trigger_events(status_url, bulk.access_token())
    assert event["status"] == "complete"
    polls = state(ehr)["jobs"][status_url.rsplit("/", 1)[1]]["polls"]
    assert len(polls) == 3 and all(b - a >= 0.95 for a, b in zip(polls[1:], polls[2:], strict=False))
    manifest = Manifest.from_dict(event["manifest"])
    assert manifest.requires_access_token and "_since=2024-03-05T00" in manifest.request
    paths = bulk.download(manifest, tmp_path / "landing")
    assert [p.name.rsplit("_", 1)[1] for p in paths] == ["Encounter.ndjson", "Coverage.ndjson", "ChargeItem.ndjson"]
    got = sorted(line for p in paths for line in p.read_text().splitlines())
    assert got == sorted(ehr["lines"]) and len(got) == ehr["loaded"] > 0
    # the same manifest again fetches nothing (files are complete once renamed into place)
    downloads = sum(e["kind"] == "download" for e in state(ehr)["events"])
    assert bulk.download(manifest, tmp_path / "landing") == paths
    assert sum(e["kind"] == "download" for e in state(ehr)["events"]) == downloads


def test_since_and_until_select_by_last_updated_and_system_level_works(ehr: dict[str, Any]) -> None:
    settings(ehr, polls_before_ready=0)
    bulk = client(ehr)
    for since, until, expected in ((UNTIL, None, 0), (SINCE, UNTIL, ehr["loaded"]), (None, SINCE, 0)):
        status_url = bulk.kick_off(since=since, until=until)
        [event] = trigger_events(status_url, bulk.access_token())
        assert sum(o["count"] for o in event["manifest"]["output"]) == expected, (since, until)


def test_a_pulled_day_is_ingested_once_and_a_rerun_adds_nothing(ehr: dict[str, Any], tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAREFABRIC_DATA_DIR", str(tmp_path / "data"))
    fhir_lines = [json.loads(line) for line in ehr["lines"]]
    cents = sum(round(float(r["priceOverride"]["value"]) * 100) for r in fhir_lines if r["resourceType"] == "ChargeItem")
    with scenario.migrated_store(f"sqlite:///{tmp_path / 'store.db'}") as engine:
        scenario.seed_store(engine, ehr["day"])
        totals = []
        for _ in range(2):  # the night's pull, then a rerun (a new export of the same resources)
            bulk = client(ehr)
            [event] = trigger_events(bulk.kick_off(since=SINCE, until=UNTIL), bulk.access_token())
            paths = bulk.download(Manifest.from_dict(event["manifest"]), tmp_path / "landing")
            totals.append(ingest_downloads(paths, engine, business_date=DAY, validate=False))
        charges = scenario.rows(engine, ChargeRow, ChargeRow.source == "FHIR")
    assert totals[0]["charges"] == len(charges) > 0 and totals[0]["message_errors"] == 0
    assert sum(c.amount_cents for c in charges) == cents
    assert totals[1]["duplicates"] == totals[1]["files"] == 3 and totals[1]["charges"] == 0


def test_a_refused_client_is_a_clear_error(ehr: dict[str, Any]) -> None:
    settings(ehr, refuse_token=True)
    with pytest.raises(BulkAuthError, match="invalid_client|client registration suspended") as err:
        client(ehr).kick_off(since=SINCE)
    assert "client registration suspended" in str(err.value)


def test_the_server_checks_the_jwt_key_audience_algorithm_and_replay(ehr: dict[str, Any]) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(BulkAuthError, match="kid .* is not registered"):
        _client_with_key(ehr, other).access_token()
    key = load_private_key(ehr["key"])
    token_url = ehr["admin"] + "/auth/token"

    def ask(assertion: str) -> dict[str, Any]:
        form = {"grant_type": "client_credentials", "scope": "system/*.read", "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": assertion}
        return requests.post(token_url, data=form, timeout=10).json()

    good = client_assertion(EHR_CLIENT_ID, token_url, key)
    assert "access_token" in ask(good)
    assert "already used" in ask(good)["error_description"]  # the same jti twice
    assert "audience" in ask(client_assertion(EHR_CLIENT_ID, token_url + "x", key))["error_description"].lower()
    assert "iss and sub" in ask(client_assertion("someone-else", token_url, key))["error_description"]
    header = {"kid": jwt.get_unverified_header(good)["kid"]}
    now = int(time.time())
    claims = {"iss": EHR_CLIENT_ID, "sub": EHR_CLIENT_ID, "aud": token_url, "jti": uuid.uuid4().hex}
    assert "expired" in ask(jwt.encode({**claims, "exp": now - 120}, key, "RS384", headers=header))["error_description"]
    too_far = jwt.encode({**claims, "exp": now + 3600}, key, "RS384", headers=header)
    assert "five minutes" in ask(too_far)["error_description"]
    assert "RS384" in ask(jwt.encode({**claims, "exp": now + 60}, key, "RS256", headers=header))["error_description"]


def _client_with_key(ehr: dict[str, Any], key: rsa.RSAPrivateKey) -> BulkClient:
    from cryptography.hazmat.primitives import serialization

    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return client(ehr, pem.decode())


def test_status_500_once_is_retried_by_the_trigger(ehr: dict[str, Any]) -> None:
    bulk = client(ehr)
    status_url = bulk.kick_off(since=SINCE)
    settings(ehr, status_500_once=True)
    [event] = trigger_events(status_url, bulk.access_token())
    assert event["status"] == "complete"
    assert len(state(ehr)["jobs"][status_url.rsplit("/", 1)[1]]["polls"]) == 3  # 500, 202, manifest


def test_a_failed_export_is_an_operation_outcome_error(ehr: dict[str, Any]) -> None:
    from carefabric_airflow.fhir_bulk import WaitForBulkExport

    settings(ehr, job_error=True)
    bulk = client(ehr)
    status_url = bulk.kick_off(since=SINCE)
    with pytest.raises(BulkExportError, match="reporting database is unavailable"):
        bulk.poll(status_url)
    [event] = trigger_events(status_url, bulk.access_token())
    assert event["status"] == "error" and "exception" in event["message"]
    with pytest.raises(BulkExportError, match="reporting database is unavailable"):
        WaitForBulkExport(task_id="w", status_url=status_url).resume({}, event)


def test_a_manifest_with_errors_is_refused_whole(ehr: dict[str, Any], tmp_path: Path) -> None:
    settings(ehr, manifest_error=True, polls_before_ready=0)
    bulk = client(ehr)
    manifest = bulk.poll(bulk.kick_off(since=SINCE))
    assert isinstance(manifest, Manifest) and manifest.error
    with pytest.raises(BulkExportError, match="chargemaster lookup failed"):
        bulk.download(manifest, tmp_path / "landing")
    assert not (tmp_path / "landing").exists()


def test_an_expired_token_is_renewed_and_the_trigger_hands_back(ehr: dict[str, Any]) -> None:
    settings(ehr, polls_before_ready=0)
    bulk = client(ehr)
    status_url = bulk.kick_off(since=SINCE)
    old = bulk.access_token()
    issued = state(ehr)["tokens_issued"]
    settings(ehr, expire_tokens=True)
    [event] = trigger_events(status_url, old)
    assert event == {"status": "token_expired"}
    assert isinstance(bulk.poll(status_url), Manifest)  # one 401, a new token, the manifest
    assert state(ehr)["tokens_issued"] == issued + 1


def test_kick_off_errors_and_cancel_answer_operation_outcomes(ehr: dict[str, Any]) -> None:
    bulk = client(ehr)
    with pytest.raises(BulkExportError, match="_type Patientz is not exported"):
        bulk.kick_off(types=["Encounter", "Patientz"])
    with pytest.raises(BulkExportError, match="Group/nobody is not known"):
        bulk.kick_off(group="nobody")
    answer = requests.get(f"{ehr['url']}/$export", headers={"Prefer": "respond-async"}, timeout=10)
    assert answer.status_code == 401 and answer.json()["resourceType"] == "OperationOutcome"
    status_url = bulk.kick_off(since=SINCE)
    bulk.cancel(status_url)
    with pytest.raises(BulkExportError, match="gone"):
        bulk.poll(status_url)


def test_a_refused_client_or_failed_export_fails_the_task_at_once_and_a_passing_fault_retries() -> None:
    from airflow.sdk.definitions.retry_policy import RetryAction

    from carefabric.clients.rest import TransientError
    from carefabric_airflow.fhir_bulk import BULK_RETRY_POLICY

    def action(error: BaseException) -> RetryAction:
        return BULK_RETRY_POLICY.evaluate(error, try_number=1, max_tries=4).action

    assert action(BulkAuthError("invalid_client")) == RetryAction.FAIL
    assert action(BulkExportError("export failed")) == RetryAction.FAIL
    assert action(TransientError("503")) == RetryAction.RETRY


def test_the_airflow_connection_builds_the_client_through_httphook_and_release_deletes_the_job(
        ehr: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """``bulk_client`` (what the DAG uses): base URL, TLS and proxies from ``HttpHook``; the private
    key never leaves as HTTP Basic and the pull's own extras are not sent as headers; the job the
    DAG's ``release_export`` teardown DELETEs is gone at the EHR (files removed, status 404)."""
    from carefabric_airflow.fhir_bulk import BULK_EXTRAS, bulk_client

    host, port = ehr["url"].split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)
    monkeypatch.setenv("AIRFLOW_CONN_EHR_FHIR", json.dumps({
        "conn_type": "http", "host": host, "port": int(port), "schema": "http", "login": EHR_CLIENT_ID,
        "password": ehr["key"], "extra": {"base_path": "/fhir", "scope": "system/*.read", "group_id": EHR_GROUP_ID,
                                          "verify": True, "X-Site": "north"}}))
    bulk = bulk_client()
    assert bulk.base_url == ehr["url"]
    assert bulk.session.auth is None
    assert not set(BULK_EXTRAS) & set(bulk.session.headers) and bulk.session.headers["X-Site"] == "north"

    status_url = bulk.kick_off(since=SINCE, until=UNTIL, group=EHR_GROUP_ID)
    job_id = status_url.rsplit("/", 1)[1]
    answer = bulk.poll(status_url)
    while isinstance(answer, Pending):
        time.sleep(answer.retry_after)
        answer = bulk.poll(status_url)
    assert answer.output
    bulk.cancel(status_url)
    assert state(ehr)["jobs"][job_id]["cancelled"] is True
    assert not (ehr["servers"].base_dir / "ehr_fhir" / "jobs" / job_id).exists()
    with pytest.raises(BulkExportError, match="gone"):
        bulk.poll(status_url)
    bulk.cancel(status_url)  # a second release (a retried teardown) is fine: 404 counts as done
