"""Peer API response times and status codes, aggregated in the process and written to the store.

Why the store: tasks run in short-lived worker processes (forked per task, on several Celery
workers), and ``/metrics`` is served by the api-server; the store is what they share, as for
every other metric (``carefabric.metrics``). Why aggregated: a call costs a dict update under a
lock, not an INSERT; the sums go to ``peer_call_stats`` (one row per hour, peer, method, route
template, status code) in one upsert per flush, which adds to what other processes wrote.

When it writes: every ``FLUSH_CALLS`` calls or ``FLUSH_SECONDS`` after the last write (checked
when a call is recorded), at ``flush()``, and when the process exits (``atexit``: Airflow's task
runner runs the handlers registered in the task process before it exits). A failed write keeps
the sums for the next one and never fails the caller: metrics must not break an interface.

Recording is off until ``RECORDER.bind(engine_factory)``: the Airflow glue binds it to the
task's store when it builds a client (``carefabric_airflow.http``); tests bind their own store
(``recording(engine)``). Unbound, ``observe`` returns at once: the CLI, tools and tests that do
not ask for it write nothing anywhere.

What is recorded: the peer's name (``billing``, ``erp``, ``ehr_fhir``), the method, the route
as a template the client names (never a URL: ids can be PHI), the final status (0 = no answer)
and the wall time of the call as the caller saw it, the retry budget's waits included; and each
attempt the budget retried, with its status, as a ``retried`` row without time.
"""

from __future__ import annotations

import atexit
import datetime as dt
import logging
import os
import re
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from carefabric.store.bulk import table_of
from carefabric.store.db import SQLITE_BUSY_TIMEOUT_MS
from carefabric.store.models.peer import PEER_BUCKETS, PeerCallStat
from carefabric.store.types import utcnow

log = logging.getLogger(__name__)

FLUSH_CALLS = 500
FLUSH_SECONDS = 30.0
#: A mid-task write waits at most this long for another writer's lock, then tries later.
SQLITE_FLUSH_TIMEOUT_MS = 2000

Key = tuple[Any, str, str, str, int, bool]  # (hour, peer, method, route, code, retried)
BUCKET_COLUMNS = tuple(column for _, column in PEER_BUCKETS)
SUM_COLUMNS = ("calls", "total_us", *BUCKET_COLUMNS)
BOUNDS = tuple(bound for bound, _ in PEER_BUCKETS)
#: The cumulative bucket counts of one call, by the index of the first bound it fits under
#: (``bisect_left``: a call of exactly a bound counts in that bucket, as Prometheus' ``le``).
_CUMULATIVE = tuple(tuple(1 if i >= first else 0 for i in range(len(BOUNDS))) for first in range(len(BOUNDS) + 1))


@lru_cache(maxsize=4)
def _hour(hours_since_epoch: int) -> dt.datetime:
    """The start of the UTC hour (one datetime per hour, not one per call)."""
    return dt.datetime.fromtimestamp(hours_since_epoch * 3600, tz=dt.UTC)


class PeerCallRecorder:
    """Sums of peer calls in this process, written to the store in batches (module docstring)."""

    def __init__(self, engine_factory: Callable[[], Engine | None] | None = None, *, flush_calls: int = FLUSH_CALLS,
                 flush_seconds: float = FLUSH_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.engine_factory = engine_factory
        self.flush_calls, self.flush_seconds, self.clock = flush_calls, flush_seconds, clock
        self._lock = threading.Lock()
        self._pending: dict[Key, list[int]] = {}
        self._unflushed = 0
        self._last_flush = clock()
        self._exit_hook_pid: int | None = None

    def bind(self, engine_factory: Callable[[], Engine | None] | None) -> None:
        """Record into the store ``engine_factory()`` returns (``None``: stop recording).

        A factory may return None (no store open yet): the sums wait for a later flush.
        """
        self.engine_factory = engine_factory

    @property
    def pending_calls(self) -> int:
        """Calls (retried attempts included) recorded but not written yet."""
        with self._lock:
            return sum(sums[0] for sums in self._pending.values())

    def observe(self, peer: str, method: str, route: str, code: int, seconds: float,
                retried: Iterable[int] = ()) -> None:
        """One call as the caller saw it (its final status, or 0) and the statuses it retried on."""
        if self.engine_factory is None:
            return
        hour = _hour(int(time.time() // 3600))
        method = method.upper()
        with self._lock:
            self._exit_hook()
            self._add((hour, peer, method, route, int(code), False),
                      [1, round(seconds * 1e6), *_CUMULATIVE[bisect_left(BOUNDS, seconds)]])
            for status in retried:
                self._add((hour, peer, method, route, int(status or 0), True), [1, 0, *_CUMULATIVE[-1]])
            due = self._unflushed >= self.flush_calls or self.clock() - self._last_flush >= self.flush_seconds
        if due:
            self.flush(wait_ms=SQLITE_FLUSH_TIMEOUT_MS)

    def _add(self, key: Key, sums: list[int]) -> None:
        current = self._pending.setdefault(key, [0] * len(SUM_COLUMNS))
        for i, value in enumerate(sums):
            current[i] += value
        self._unflushed += sums[0]

    def _exit_hook(self) -> None:
        """Register the exit flush in this process (once; again in a forked child)."""
        if self._exit_hook_pid != os.getpid():
            self._exit_hook_pid = os.getpid()
            atexit.register(self.flush)

    def _forked(self) -> None:
        """In a forked child: the parent's unwritten sums are the parent's to write."""
        self._lock = threading.Lock()
        self._pending, self._unflushed, self._exit_hook_pid = {}, 0, None

    def reset(self) -> None:
        """Unbound, nothing pending: as a new process starts. A task process binds the recorder
        for its whole life; a process that serves many (a test worker) resets it between them,
        or one's calls are written into the next one's store."""
        with self._lock:
            self.engine_factory = None
            self._pending, self._unflushed = {}, 0

    def flush(self, wait_ms: int | None = None) -> int:
        """Write the pending sums (one upsert); the number of rows written. Never raises."""
        with self._lock:
            batch, self._pending, self._unflushed = self._pending, {}, 0
            self._last_flush = self.clock()
        if not batch or self.engine_factory is None:
            return 0
        try:
            engine = self.engine_factory()
            if engine is not None:
                with engine.begin() as conn, _short_wait(conn, wait_ms):
                    return write(conn, batch)
        except Exception as exc:  # noqa: BLE001 - metrics never fail an interface; the sums wait
            log.warning("peer call metrics not written (%s); %d row(s) kept for the next flush",
                        type(exc).__name__, len(batch))
        self._keep(batch)
        return 0

    def _keep(self, batch: dict[Key, list[int]]) -> None:
        with self._lock:
            for key, sums in batch.items():
                self._add(key, sums)
            self._unflushed = 0  # the next try waits for FLUSH_CALLS new calls or FLUSH_SECONDS


@contextmanager
def _short_wait(conn: Connection, wait_ms: int | None) -> Iterator[None]:
    """Wait at most ``wait_ms`` for another writer's lock (on SQLite the task may hold one itself)."""
    if wait_ms is not None and conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SET LOCAL lock_timeout = {int(wait_ms)}")  # ends with the transaction
    if wait_ms is None or conn.dialect.name != "sqlite":
        yield
        return
    conn.exec_driver_sql(f"PRAGMA busy_timeout = {int(wait_ms)}")
    try:
        yield
    finally:
        conn.exec_driver_sql(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")


def write(conn: Connection, batch: dict[Key, list[int]]) -> int:
    """Add ``batch`` to ``peer_call_stats`` (insert, or add to the row another process wrote)."""
    table = table_of(PeerCallStat)
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    keys = ("hour", "peer", "method", "route", "code", "retried")
    now = utcnow()
    rows = [dict(zip(keys, key, strict=True)) | dict(zip(SUM_COLUMNS, sums, strict=True)) | {"updated_at": now}
            for key, sums in sorted(batch.items(), key=lambda item: item[0][1:] + (item[0][0],))]
    stmt = insert(table)
    stmt = stmt.on_conflict_do_update(
        index_elements=list(keys),
        set_={**{c: table.c[c] + stmt.excluded[c] for c in SUM_COLUMNS}, "updated_at": stmt.excluded.updated_at},
    )
    conn.execute(stmt, rows)
    return len(rows)


#: A path segment kept as it is in a route: a word (letters, ``-_.:$``), no digits, not too long.
_WORD = re.compile(r"^[A-Za-z$._:-]{1,40}$")


def route_template(path: str) -> str:
    """``path`` without its query and with every segment that is not a plain word as ``{id}``.

    A guard, not the rule: clients name a route that carries an id themselves
    (``/journal-batches/{external_id}``); an id made of letters only would pass as a word.
    """
    segments = path.split("?", 1)[0].split("/")
    return "/".join(s if not s or _WORD.match(s) else "{id}" for s in segments)[:160]


#: The process's recorder; clients record into it.
RECORDER = PeerCallRecorder()
os.register_at_fork(after_in_child=RECORDER._forked)


@contextmanager
def recording(engine: Engine, recorder: PeerCallRecorder = RECORDER) -> Iterator[PeerCallRecorder]:
    """Record into ``engine``'s store inside the block; written and unbound at its end."""
    previous = recorder.engine_factory
    recorder.bind(lambda: engine)
    try:
        yield recorder
    finally:
        recorder.flush()
        recorder.bind(previous)


def observe(peer: str, method: str, route: str, code: int, seconds: float, retried: Iterable[int] = ()) -> None:
    """Record one call in the process's recorder (a no-op while it is unbound)."""
    RECORDER.observe(peer, method, route, code, seconds, retried)
