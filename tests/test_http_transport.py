"""REST transport through the http provider's HttpHook, against a real loopback HTTP server.

The server answers from a script (429/503 with Retry-After, then 200) and records every request
it received with its arrival time, so the tests judge what went over the wire: how many
attempts, how long the client waited between them, which auth header it sent, and that an ERP
document POST is never sent twice by the transport.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from carefabric.clients.rest import RETRY_AFTER_MAX, RETRY_TOTAL, RestClient, TransientError


@dataclass
class Peer:
    """A loopback HTTP server answering ``script`` in order, then 200 ``{"data": []}``."""

    server: ThreadingHTTPServer
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    seen: list[tuple[str, str, float, dict[str, str]]] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def answer(self, *steps: tuple[int, dict[str, str]]) -> None:
        self.script[:] = list(steps)


@pytest.fixture
def peer() -> Iterator[Peer]:
    state: dict[str, Peer] = {}

    class Handler(BaseHTTPRequestHandler):
        def _reply(self) -> None:
            p = state["peer"]
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            p.seen.append((self.command, self.path, time.monotonic(), dict(self.headers)))
            status, headers = p.script.pop(0) if p.script else (200, {})
            body = json.dumps({"data": [], "document_id": "D1"} if status < 400 else {"error": {"code": str(status)}})
            self.send_response(status)
            for key, value in {"Content-Type": "application/json", **headers}.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())

        do_GET = do_POST = _reply  # noqa: N815 - http.server's handler names

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state["peer"] = Peer(server)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state["peer"]
    finally:
        server.shutdown()
        server.server_close()


def connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, **fields: Any) -> None:
    """An Airflow connection from the environment, as a deployment's secrets backend would give it."""
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "http", **fields}))


def hook_client(monkeypatch: pytest.MonkeyPatch, peer: Peer, conn_id: str = "peer_api") -> RestClient:
    from carefabric_airflow.http import rest_client

    connection(monkeypatch, conn_id, host="127.0.0.1", port=peer.port, schema="http", login="carefabric",
               password="sandbox-token-1234")
    return rest_client(conn_id)


def test_429_retry_after_is_honoured_through_the_hook(monkeypatch: pytest.MonkeyPatch, peer: Peer) -> None:
    peer.answer((429, {"Retry-After": "1"}))
    client = hook_client(monkeypatch, peer)
    status, _ = client.json("GET", "/claims")
    assert status == 200
    (first, second) = peer.seen
    assert second[2] - first[2] >= 0.95  # the server asked for a second's pause and got it
    assert [s for _m, _p, s in client.attempts_log] == [429, 200]
    assert first[1] == second[1] == "/api/v1/claims"
    assert first[3]["Authorization"] == "Bearer sandbox-token-1234"


def test_503_storm_spends_one_budget_then_is_transient(monkeypatch: pytest.MonkeyPatch, peer: Peer) -> None:
    peer.answer(*[(503, {"Retry-After": "0"})] * 10)
    client = hook_client(monkeypatch, peer)
    with pytest.raises(TransientError, match=f"HTTP 503 after {RETRY_TOTAL + 1} attempt"):
        client.json("GET", "/claims")
    assert len(peer.seen) == RETRY_TOTAL + 1
    assert [s for _m, _p, s in client.attempts_log] == [503] * (RETRY_TOTAL + 1)


def test_a_long_retry_after_is_capped_and_a_date_is_understood(peer: Peer) -> None:
    waits: list[float] = []
    client = RestClient.with_token(f"http://127.0.0.1:{peer.port}/api/v1", "t0ken-value", sleep=waits.append)
    peer.answer((503, {"Retry-After": "86400"}), (429, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}))
    assert client.json("GET", "/payments")[0] == 200
    assert waits == [RETRY_AFTER_MAX, 0]  # a day is capped; a date in the past means now
    assert len(peer.seen) == 3


def test_erp_document_post_is_single_shot(monkeypatch: pytest.MonkeyPatch, peer: Peer) -> None:
    from carefabric_airflow.http import erp_client

    connection(monkeypatch, "erp_peer", host="127.0.0.1", port=peer.port, login="carefabric", password="erp-token-1234")
    erp = erp_client("erp_peer")
    peer.answer((503, {"Retry-After": "0"}))
    with pytest.raises(TransientError):
        erp.send("journal", {"external_id": "CF-1", "lines": []})
    assert [(m, s) for m, _p, s in erp.rest.attempts_log] == [("POST", 503)]
    assert len(peer.seen) == 1  # the outbox, not the transport, decides about a re-send
    # a look-up (GET) in the same client still has its budget
    peer.answer((503, {"Retry-After": "0"}))
    assert erp.find("journal", "CF-1") is not None
    assert [(m, s) for m, _p, s in erp.rest.attempts_log][1:] == [("GET", 503), ("GET", 200)]


def test_billing_batch_post_is_retried(monkeypatch: pytest.MonkeyPatch, peer: Peer) -> None:
    """Billing's charge batches carry an idempotency key per line: a throttled POST is sent again."""
    from carefabric_airflow.http import billing_client

    connection(monkeypatch, "billing_peer", host="127.0.0.1", port=peer.port, login="carefabric",
               password="billing-token-1234")
    peer.answer((429, {"Retry-After": "0"}))
    billing = billing_client("billing_peer")
    billing.post_charges([{"idempotency_key": "L1"}])
    assert [(m, s) for m, _p, s in billing.rest.attempts_log] == [("POST", 429), ("POST", 200)]


def test_a_connection_without_port_never_gives_none(monkeypatch: pytest.MonkeyPatch, peer: Peer) -> None:
    from carefabric_airflow.http import rest_client

    connection(monkeypatch, "no_port", host="erp.hospital.example", schema="https", login="c", password="token-1234")
    assert rest_client("no_port").base_url == "https://erp.hospital.example/api/v1"
    # a gateway URL as the host, no port field: requests go exactly there
    connection(monkeypatch, "gateway", host=f"http://127.0.0.1:{peer.port}/erp", login="c", password="token-1234")
    client = rest_client("gateway")
    assert "None" not in client.base_url
    assert client.json("GET", "/periods")[0] == 200
    assert peer.seen[-1][1] == "/erp/api/v1/periods"


def test_a_connection_without_token_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from carefabric_airflow.http import rest_client

    connection(monkeypatch, "tokenless", host="127.0.0.1", port=9)
    with pytest.raises(ValueError, match="login .* and password"):
        rest_client("tokenless")


def test_a_session_with_its_own_retries_is_refused() -> None:
    """Only the retry budget knows single-shot writes: a foreign Retry would send them twice."""
    import requests
    from requests.adapters import HTTPAdapter

    session = requests.Session()
    session.mount("http://", HTTPAdapter(max_retries=5))
    with pytest.raises(ValueError, match="mount retry_budget"):
        RestClient("http://127.0.0.1:9/api/v1", session)


def test_failure_notifier_classifies_by_type() -> None:
    """Subclasses count as their parents; a business rejection or a bug is never transient."""
    import smtplib

    import paramiko

    from carefabric.clients.rest import RejectedError
    from carefabric_airflow import is_transient

    class ThrottledAgain(TransientError):
        pass

    for error in (ThrottledAgain("429"), paramiko.SSHException("banner"), smtplib.SMTPServerDisconnected("x"),
                  ConnectionResetError(), TimeoutError()):
        assert is_transient(error), error
    for error in (RejectedError(422, "ERP_REJECTED", "no"), paramiko.AuthenticationException("bad password"),
                  ValueError("TransientError"), None):
        assert not is_transient(error), error
