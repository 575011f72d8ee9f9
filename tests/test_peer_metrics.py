"""Peer API response times and status codes: real calls to the sandbox peers, faults included,
recorded into a real store (SQLite and PostgreSQL) and scraped from ``/metrics``.

What the scrape must say is taken from outside the recorder: the final status of each request
from a ``requests`` response hook on the client's own session (0 when no answer came), the
attempts the retry budget retried from the peers' own record of the faults they answered, and
each call's wall time measured around it by the test. A second process records into the same
store and exits without flushing: its calls are in the scrape too (the exit hook wrote them).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import scenario
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from test_metrics import by_labels, samples, scrape

from carefabric import peer_calls
from carefabric.clients.rest import RejectedError, RestClient, TransientError
from carefabric.fhir_bulk import BulkClient
from carefabric.peer_calls import PeerCallRecorder, recording, route_template
from carefabric.store.db import get_engine, session_scope
from carefabric.store.models import PEER_BUCKETS, PeerCallStat
from sandbox import EHR_CLIENT_ID, ERP_TOKEN
from sandbox.runner import SandboxServers

NO_WAIT: Callable[[float], None] = lambda _: None  # noqa: E731 - the retry budget's sleep, skipped


@pytest.fixture(scope="module")
def peers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServers]:
    with SandboxServers(tmp_path_factory.mktemp("peer_metrics")) as servers:
        yield servers


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    with scenario.migrated_store(store_url) as eng:
        yield eng


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Engine]:
    with scenario.migrated_store(f"sqlite:///{tmp_path / 'store.db'}") as eng:
        yield eng


class Observed:
    """What the test itself saw: final statuses (response hook), wall time per route."""

    def __init__(self) -> None:
        self.finals: Counter[tuple[str, str, str, str]] = Counter()
        self.wall: Counter[tuple[str, str, str]] = Counter()
        self._last: list[int] = []

    def watch(self, session: requests.Session) -> None:
        session.hooks["response"].append(lambda response, *a, **k: self._last.append(response.status_code))

    def call(self, peer: str, method: str, route: str, fn: Callable[[], Any]) -> Any:
        self._last.clear()
        started = time.perf_counter()
        try:
            return fn()
        except (TransientError, RejectedError):
            return None
        finally:
            self.wall[(peer, method, route)] += time.perf_counter() - started
            self.finals[(peer, method, route, str(self._last[-1] if self._last else 0))] += 1


def fired(url: str) -> list[dict[str, Any]]:
    """Every request the peer answered with an armed fault (its own record)."""
    response = requests.get(f"{url}/_sandbox/faults", timeout=10)
    response.raise_for_status()
    return list(response.json()["fired"])


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_sandbox_calls_with_faults_are_scraped_as_observed(peers: SandboxServers, engine: Engine) -> None:
    for url in (peers.billing_url, peers.erp_url):
        requests.delete(f"{url}/_sandbox/faults", timeout=10).raise_for_status()
    before = {url: len(fired(url)) for url in (peers.billing_url, peers.erp_url)}
    erp = scenario.erp_client(peers.erp_url, sleep=NO_WAIT)
    billing = scenario.billing_client(peers.billing_url, sleep=NO_WAIT)
    down = RestClient.with_token(f"http://127.0.0.1:{closed_port()}/api/v1", "t", sleep=NO_WAIT, timeout=5)
    down.peer = "billing"
    bulk = BulkClient(peers.ehr_fhir_url, EHR_CLIENT_ID, peers.ehr_client_key.read_text())
    seen = Observed()
    for session in (erp.rest.session, billing.rest.session, down.session, bulk.session):
        seen.watch(session)
    # A 503 the retry budget absorbs (GET), a 500 after 0.3 s on a single-shot POST, a 404,
    # billing throttling past the budget (4 x 429), a peer that is down, the EHR's token and export.
    scenario.admin(peers.erp_url, "faults", {"path_prefix": "/api/v1/companies", "method": "GET", "status": 503,
                                             "count": 1, "retry_after": 0})
    scenario.admin(peers.erp_url, "faults", {"path_prefix": "/api/v1/journal-batches", "method": "POST", "status": 500,
                                             "count": 1, "hang_seconds": 0.3})
    scenario.admin(peers.billing_url, "faults", {"path_prefix": "/api/v1/charges:batch", "status": 429, "count": 4,
                                                 "retry_after": 0})
    with recording(engine):
        for _ in range(2):
            seen.call("erp", "GET", "/companies", lambda: list(erp.master_data("companies")))
        seen.call("erp", "POST", "/journal-batches", lambda: erp.send("journal", {"external_id": "JE-T-1", "lines": []}))
        seen.call("erp", "GET", "/journal-batches/{external_id}", lambda: erp.find("journal", "JE-T-404"))
        seen.call("billing", "POST", "/charges:batch", lambda: billing.post_charges([{"idempotency_key": "k1"}]))
        seen.call("billing", "GET", "/claims", lambda: list(billing.changed("claims", None, None)))
        seen.call("billing", "GET", "/claims", lambda: list(down.paginate("/claims")))
        seen.call("ehr_fhir", "GET", "/.well-known/smart-configuration", bulk.discover_token_url)
        seen.call("ehr_fhir", "POST", "{token_endpoint}", bulk.access_token)
        seen.call("ehr_fhir", "GET", "/$export", bulk.kick_off)
    # The peers' own record: every fault they answered; those that were not a final answer were retried.
    answered = Counter(("erp" if url == peers.erp_url else "billing", f["method"], route_template(f["path"][7:]),
                        str(f["status"])) for url in before for f in fired(url)[before[url]:])
    retried = answered - Counter({k: v for k, v in seen.finals.items() if k in answered})
    assert retried == {("erp", "GET", "/companies", "503"): 1, ("billing", "POST", "/charges:batch", "429"): 3}
    assert {k: v for k, v in seen.finals.items() if k[3] not in ("200", "202")} == {
        ("erp", "POST", "/journal-batches", "500"): 1, ("erp", "GET", "/journal-batches/{external_id}", "404"): 1,
        ("billing", "POST", "/charges:batch", "429"): 1, ("billing", "GET", "/claims", "0"): 1}

    found = samples(scrape(engine).get("/metrics").text)
    assert by_labels(found, "carefabric_peer_requests_total", "peer", "method", "route", "code") == seen.finals
    assert by_labels(found, "carefabric_peer_retries_total", "peer", "method", "route", "code") == retried
    calls = Counter({k[:3]: 0 for k in seen.finals})
    for key, n in seen.finals.items():
        calls[key[:3]] += n
    assert by_labels(found, "carefabric_peer_request_duration_seconds_count", "peer", "method", "route") == calls
    for key, wall in seen.wall.items():
        recorded = sum(v for (n, ls), v in found.items()
                       if n == "carefabric_peer_request_duration_seconds_sum" and tuple(dict(ls)[k] for k in
                                                                                        ("peer", "method", "route")) == key)
        assert 0 < recorded <= wall, key
    slow = {"peer": "erp", "method": "POST", "route": "/journal-batches"}
    buckets = by_labels(found, "carefabric_peer_request_duration_seconds_bucket", "le", **slow)
    assert buckets[("+Inf",)] == 1 and all(buckets[(str(b),)] == 0 for b, _ in PEER_BUCKETS if b < 0.3)
    assert sum(v for (n, ls), v in found.items()
               if n == "carefabric_peer_request_duration_seconds_sum" and dict(ls)["route"] == "/journal-batches") >= 0.3


CHILD = textwrap.dedent("""
    import sys

    from carefabric import peer_calls
    from carefabric.clients.erp import ErpClient
    from carefabric.clients.rest import RestClient
    from carefabric.store.db import get_engine
    from sandbox import ERP_TOKEN

    engine = get_engine(sys.argv[1])
    peer_calls.RECORDER.bind(lambda: engine)  # no flush: the exit hook writes
    erp = ErpClient(RestClient.with_token(sys.argv[2] + "/api/v1", ERP_TOKEN))
    for _ in range(3):
        list(erp.master_data("companies"))
""")


def test_another_process_adds_its_calls_when_it_exits(peers: SandboxServers, sqlite_store: Engine, tmp_path: Path) -> None:
    """A fresh interpreter (SQLite only: adding across processes on both databases is the forked test's)."""
    engine = sqlite_store
    erp = scenario.erp_client(peers.erp_url)
    with recording(engine):
        list(erp.master_data("companies"))
        list(erp.master_data("companies"))
    url = engine.url.render_as_string(hide_password=False)
    subprocess.run([sys.executable, "-c", CHILD, url, peers.erp_url], check=True, timeout=300, cwd=tmp_path)
    found = samples(scrape(engine).get("/metrics").text)
    assert by_labels(found, "carefabric_peer_requests_total", "code", peer="erp", route="/companies") == {("200",): 5}


def test_clients_from_airflow_connections_record_into_the_tasks_store(peers: SandboxServers, sqlite_store: Engine,
                                                                     monkeypatch: pytest.MonkeyPatch,
                                                                     tmp_path: Path) -> None:
    """``carefabric_airflow.http`` binds the recorder to the task's store; without one it writes nowhere.
    (The binding does not depend on the database: SQLite only.)"""
    from carefabric_airflow import engine as task_engine
    from carefabric_airflow.http import erp_client

    engine = sqlite_store

    port = int(peers.erp_url.rsplit(":", 1)[1])
    monkeypatch.setenv("AIRFLOW_CONN_ERP_METRICS", json.dumps(
        {"conn_type": "http", "host": "127.0.0.1", "port": port, "login": "carefabric", "password": ERP_TOKEN}))
    missing = tmp_path / "no_store_here.db"
    monkeypatch.setenv("CAREFABRIC_DB_URL", f"sqlite:///{missing}")
    task_engine.cache_clear()
    try:
        list(erp_client("erp_metrics").master_data("companies"))
        assert peer_calls.RECORDER.flush() == 0 and not missing.exists()  # no store: none created for metrics
        monkeypatch.setenv("CAREFABRIC_DB_URL", engine.url.render_as_string(hide_password=False))
        list(erp_client("erp_metrics").master_data("companies"))
        assert peer_calls.RECORDER.flush() == 1  # both calls: the first was kept
    finally:
        peer_calls.RECORDER.bind(None)
        if task_engine.cache_info().currsize:
            task_engine().dispose()
        task_engine.cache_clear()
    found = samples(scrape(engine).get("/metrics").text)
    assert by_labels(found, "carefabric_peer_requests_total", "method", "route", "code", peer="erp") == {
        ("GET", "/companies", "200"): 2}


def test_a_forked_task_process_writes_its_own_calls_at_exit_as_airflow_ends_it(engine: Engine) -> None:
    """Airflow's task runner forks, clears the inherited exit handlers, runs the task, then runs the
    handlers registered since and leaves with ``os._exit`` (``supervisor._fork_main``). The child
    writes its calls; the parent's unwritten ones are not written twice."""
    import atexit
    import os

    def stored() -> int:
        with session_scope(engine) as s:
            return int(s.scalar(select(func.coalesce(func.sum(PeerCallStat.calls), 0))))

    recorder = peer_calls.RECORDER
    with recording(engine):
        recorder.observe("erp", "GET", "/companies", 200, 0.01)  # pending in the parent at the fork
        engine.dispose()  # no pooled connection crosses the fork
        pid = os.fork()
        if pid == 0:  # the task process
            code = 1
            try:
                atexit._clear()  # type: ignore[attr-defined]  # what Airflow does after its fork
                recorder.observe("erp", "GET", "/companies", 200, 0.01)
                recorder.observe("erp", "GET", "/companies", 503, 0.01)
                atexit._run_exitfuncs()
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert stored() == 2 and recorder.pending_calls == 1  # the child's two; the parent's one still pending
    assert stored() == 3


def test_recorder_writes_every_n_calls_and_keeps_what_it_could_not_write(engine: Engine, tmp_path: Path) -> None:
    def stored() -> int:
        with session_scope(engine) as s:
            return int(s.scalar(select(func.coalesce(func.sum(PeerCallStat.calls), 0))))

    unbound = PeerCallRecorder()
    unbound.observe("erp", "get", "/companies", 200, 0.01)
    assert unbound.pending_calls == 0  # off until bound: nothing kept, nothing written

    recorder = PeerCallRecorder(lambda: engine, flush_calls=4, flush_seconds=3600)
    recorder.observe("erp", "get", "/companies", 200, 0.01)
    recorder.observe("erp", "get", "/companies", 200, 0.02, retried=[503])  # a call and its retried attempt
    assert stored() == 0 and recorder.pending_calls == 3
    recorder.observe("erp", "get", "/companies", 200, 0.03)  # the 4th pending count reaches flush_calls
    assert stored() == 4 and recorder.pending_calls == 0

    no_table = get_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    recorder.bind(lambda: no_table)
    recorder.observe("billing", "post", "/charges:batch", 429, 0.5)
    assert recorder.flush() == 0 and recorder.pending_calls == 1  # kept for the next flush
    recorder.bind(lambda: None)  # no store opened yet: kept too
    assert recorder.flush() == 0 and recorder.pending_calls == 1
    recorder.bind(lambda: engine)
    assert recorder.flush() == 1 and stored() == 5
    no_table.dispose()
    columns = (PeerCallStat.calls, PeerCallStat.total_us, PeerCallStat.le_5ms, PeerCallStat.le_10ms,
               PeerCallStat.le_25ms, PeerCallStat.le_50ms)
    with session_scope(engine) as s:  # summed: the calls may straddle an hour
        sums = s.execute(select(PeerCallStat.method, *(func.sum(c) for c in columns))
                         .where(PeerCallStat.peer == "erp", PeerCallStat.retried.is_(False))
                         .group_by(PeerCallStat.method)).one()
    assert tuple(sums) == ("GET", 3, 60_000, 0, 1, 2, 3)


def test_routes_never_carry_ids_or_query_values() -> None:
    assert route_template("/journal-batches/JE-2024-03-05-0001") == "/journal-batches/{id}"
    assert route_template("/claims?updated_since=2024-03-05") == "/claims"
    assert route_template("/charges:batch") == "/charges:batch"
    assert route_template("/patients/12345/visits/V9") == "/patients/{id}/visits/{id}"
