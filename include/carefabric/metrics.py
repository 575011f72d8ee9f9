"""carefabric's interface metrics in Prometheus format, computed from the store at each scrape.

Why from the store and not from counters in the task processes: tasks run in short-lived
worker processes (several Celery workers in production), so in-process counters would be lost
or split; the store is the one place every interface writes, and it already holds what the
architecture's dashboard needs. Each scrape runs a handful of grouped queries; latency is
bounded to the documents posted in the last ``LATENCY_WINDOW_DAYS`` days.

Counters (``*_total``) are counts of rows that only grow (retention purges payloads, never
rows), so ``rate()`` and ``increase()`` work on them. Gauges are the state now (open
exceptions, the latest reconciliation). No label carries PHI: interfaces, sources, statuses,
reason codes and check names only.

Peer API response times and status codes come from ``peer_call_stats``, the per-hour sums the
REST and FHIR clients record in the task processes (``carefabric.peer_calls``): requests by
peer, method, route template and status code, their duration histogram, and the attempts the
retry budget retried. ERP documents' own outcome (send attempts, error codes) is exported
beside them. ``METRIC_NAMES`` lists every family, and the Grafana dashboard uses exactly these.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from carefabric.nightly_close import CLOSE_INTERFACE, DEADLINE_MISSED
from carefabric.store.models import (
    PEER_BUCKETS,
    Charge,
    ErpPosting,
    ExceptionRecord,
    InboundFile,
    PeerCallStat,
    PostingRecord,
    RawMessage,
    ReconciliationItem,
    ReconciliationRun,
)
from carefabric.store.types import utcnow

LATENCY_WINDOW_DAYS = 7
LATENCY_BUCKETS = (60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 12 * 3600.0, 24 * 3600.0, 48 * 3600.0, 7 * 86400.0)
AGE_BUCKETS = (("lt_1h", 3600), ("1h_24h", 86400), ("1d_7d", 7 * 86400), ("ge_7d", None))

#: Every metric family this module exports (sample names add _total, _bucket, _sum, _count).
METRIC_NAMES = (
    "carefabric_inbound_files",
    "carefabric_inbound_bytes",
    "carefabric_messages",
    "carefabric_outbound_records",
    "carefabric_e2e_latency_seconds",
    "carefabric_exceptions",
    "carefabric_exception_occurrences",
    "carefabric_open_exceptions",
    "carefabric_open_exceptions_by_age",
    "carefabric_oldest_open_exception_age_seconds",
    "carefabric_peer_requests",
    "carefabric_peer_request_duration_seconds",
    "carefabric_peer_retries",
    "carefabric_erp_send_attempts",
    "carefabric_erp_errors",
    "carefabric_reconciliation_runs",
    "carefabric_reconciliation_items",
    "carefabric_reconciliation_variance_cents",
    "carefabric_reconciliation_business_date_seconds",
    "carefabric_deadline_misses",
)


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _date_seconds(day: dt.date) -> float:
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC).timestamp()


def inbound(s: Session) -> Iterator[Metric]:
    files = CounterMetricFamily("carefabric_inbound_files", "Files received, by interface, source and status",
                                labels=["interface", "source", "status"])
    size = CounterMetricFamily("carefabric_inbound_bytes", "Bytes of the files received", labels=["interface", "source"])
    sizes: dict[tuple[str, str], int] = {}
    rows = s.execute(select(InboundFile.interface, InboundFile.source, InboundFile.status, func.count(),
                            func.coalesce(func.sum(InboundFile.size_bytes), 0))
                     .group_by(InboundFile.interface, InboundFile.source, InboundFile.status))
    for interface, source, status, n, nbytes in rows:
        files.add_metric([interface or "", source, status], n)
        key = (interface or "", source)
        sizes[key] = sizes.get(key, 0) + int(nbytes)
    for (interface, source), nbytes in sorted(sizes.items()):
        size.add_metric([interface, source], nbytes)
    messages = CounterMetricFamily("carefabric_messages", "Messages, resources and transaction sets received, by status",
                                   labels=["interface", "status"])
    for interface, status, n in s.execute(select(RawMessage.interface, RawMessage.status, func.count())
                                          .group_by(RawMessage.interface, RawMessage.status)):
        messages.add_metric([interface or "", status], n)
    return iter((files, size, messages))


def outbound(s: Session) -> Iterator[Metric]:
    out = CounterMetricFamily("carefabric_outbound_records", "Records sent to a peer, by interface, target, kind and status",
                              labels=["interface", "target", "kind", "status"])
    for source, status, n in s.execute(select(ErpPosting.source, ErpPosting.status, func.count())
                                       .group_by(ErpPosting.source, ErpPosting.status)):
        out.add_metric(["erp_posting", "erp", source, status], n)
    routed = s.scalar(select(func.count()).select_from(Charge).where(Charge.billing_charge_id.is_not(None)))
    out.add_metric(["ehr_ingest", "billing", "charge", "accepted"], routed or 0)
    attempts = CounterMetricFamily("carefabric_erp_send_attempts", "Send attempts of ERP documents (retries included)",
                                   labels=["source"])
    for source, n in s.execute(select(ErpPosting.source, func.coalesce(func.sum(ErpPosting.attempts), 0))
                               .group_by(ErpPosting.source)):
        attempts.add_metric([source], n)
    errors = CounterMetricFamily("carefabric_erp_errors", "ERP documents whose last answer was an error, by code",
                                 labels=["error_code"])
    for code, n in s.execute(select(ErpPosting.error_code, func.count()).where(ErpPosting.error_code.is_not(None))
                             .group_by(ErpPosting.error_code)):
        errors.add_metric([str(code)], n)
    return iter((out, attempts, errors))


def peers(s: Session) -> Iterator[Metric]:
    """Peer API calls from ``peer_call_stats``, summed over hours (and codes, for the histogram)."""
    requests = CounterMetricFamily("carefabric_peer_requests", "Peer API requests, by final status code (0: no answer)",
                                   labels=["peer", "method", "route", "code"])
    retries = CounterMetricFamily("carefabric_peer_retries", "Attempts the retry budget retried, by their status (0: no answer)",
                                  labels=["peer", "method", "route", "code"])
    duration = HistogramMetricFamily("carefabric_peer_request_duration_seconds",
                                     "Peer API request time as the caller saw it (retries and their waits included)",
                                     labels=["peer", "method", "route"])
    columns = [getattr(PeerCallStat, column) for _, column in PEER_BUCKETS]
    sums = [func.sum(PeerCallStat.calls), func.sum(PeerCallStat.total_us), *(func.sum(c) for c in columns)]
    keys = (PeerCallStat.peer, PeerCallStat.method, PeerCallStat.route)
    histograms: dict[tuple[str, str, str], list[int]] = {}
    for peer, method, route, code, retried, *values in s.execute(
        select(*keys, PeerCallStat.code, PeerCallStat.retried, *sums)
        .group_by(*keys, PeerCallStat.code, PeerCallStat.retried).order_by(*keys, PeerCallStat.code)
    ):
        (retries if retried else requests).add_metric([peer, method, route, str(code)], int(values[0]))
        if not retried:
            into = histograms.setdefault((peer, method, route), [0] * len(values))
            histograms[(peer, method, route)] = [a + int(b) for a, b in zip(into, values, strict=True)]
    for labels, (calls, total_us, *cumulative) in histograms.items():
        buckets = [(str(bound), n) for (bound, _), n in zip(PEER_BUCKETS, cumulative, strict=True)]
        duration.add_metric(list(labels), [*buckets, ("+Inf", calls)], total_us / 1e6)
    return iter((requests, duration, retries))


def posting_latencies(s: Session, now: dt.datetime) -> list[tuple[str, float]]:
    """(source, seconds) per ERP document posted in the window: from its earliest source message
    (the HL7/FHIR event as received) to the ERP's confirmation."""
    since = now - dt.timedelta(days=LATENCY_WINDOW_DAYS)
    rows = s.execute(
        select(ErpPosting.source, ErpPosting.posted_at, func.min(RawMessage.received_at))
        .join(PostingRecord, PostingRecord.posting_id == ErpPosting.id)
        .join(Charge, (PostingRecord.record_type == "charge") & (Charge.line_key == PostingRecord.record_key))
        # Bulk ingest leaves charges.message_id empty: the message is found by its natural key.
        .join(RawMessage, (RawMessage.sender == Charge.source) & (RawMessage.control_id == Charge.message_control_id))
        .where(ErpPosting.posted_at.is_not(None), ErpPosting.posted_at >= since)
        .group_by(ErpPosting.id, ErpPosting.source, ErpPosting.posted_at)
    )
    return [(source, max(0.0, (_aware(posted) - _aware(received)).total_seconds()))
            for source, posted, received in rows if posted is not None and received is not None]


def latency(s: Session, now: dt.datetime) -> Iterator[Metric]:
    family = HistogramMetricFamily("carefabric_e2e_latency_seconds",
                                   f"Source event received to ERP posting, documents posted in the last {LATENCY_WINDOW_DAYS} days",
                                   labels=["source"])
    by_source: dict[str, list[float]] = {}
    for source, seconds in posting_latencies(s, now):
        by_source.setdefault(source, []).append(seconds)
    for source, values in sorted(by_source.items()):
        buckets = [(str(bound), sum(1 for v in values if v <= bound)) for bound in LATENCY_BUCKETS]
        buckets.append(("+Inf", len(values)))
        family.add_metric([source], buckets, sum(values))
    return iter((family,))


def exceptions(s: Session, now: dt.datetime) -> Iterator[Metric]:
    opened = CounterMetricFamily("carefabric_exceptions", "Exceptions ever opened", labels=["interface", "kind", "reason_code"])
    occurrences = CounterMetricFamily("carefabric_exception_occurrences", "Occurrences (re-occurrences included)",
                                      labels=["interface", "kind", "reason_code"])
    misses = CounterMetricFamily("carefabric_deadline_misses", "Missed deadlines (Deadline Alerts), re-occurrences included",
                                 labels=["dag_id"])
    # The close (the DAG with a Deadline Alert) is always there, 0 until a miss: a series born at
    # 1 would show no increase() for its first miss.
    missed: dict[str, int] = {CLOSE_INTERFACE: 0}
    for interface, kind, reason, n, attempts in s.execute(
        select(ExceptionRecord.interface, ExceptionRecord.kind, ExceptionRecord.reason_code, func.count(),
               func.coalesce(func.sum(ExceptionRecord.attempts), 0))
        .group_by(ExceptionRecord.interface, ExceptionRecord.kind, ExceptionRecord.reason_code)
    ):
        opened.add_metric([interface, kind, reason], n)
        occurrences.add_metric([interface, kind, reason], attempts)
        if reason == DEADLINE_MISSED:  # the exception's interface is the DAG that missed
            missed[interface] = missed.get(interface, 0) + int(attempts)
    for dag_id, n in sorted(missed.items()):
        misses.add_metric([dag_id], n)
    open_now = GaugeMetricFamily("carefabric_open_exceptions", "Open exceptions (queue depth)",
                                 labels=["interface", "kind", "reason_code"])
    by_age = GaugeMetricFamily("carefabric_open_exceptions_by_age", "Open exceptions by age", labels=["kind", "age"])
    oldest = GaugeMetricFamily("carefabric_oldest_open_exception_age_seconds", "Age of the oldest open exception",
                               labels=["kind"])
    ages: dict[str, list[float]] = {}
    depth: dict[tuple[str, str, str], int] = {}
    for interface, kind, reason, created in s.execute(
        select(ExceptionRecord.interface, ExceptionRecord.kind, ExceptionRecord.reason_code, ExceptionRecord.created_at)
        .where(ExceptionRecord.status == "open")
    ):
        ages.setdefault(kind, []).append((now - _aware(created)).total_seconds())
        depth[(interface, kind, reason)] = depth.get((interface, kind, reason), 0) + 1
    for labels, n in sorted(depth.items()):
        open_now.add_metric(list(labels), n)
    for kind, values in sorted(ages.items()):
        low = 0.0
        for label, high in AGE_BUCKETS:
            by_age.add_metric([kind, label], sum(1 for a in values if a >= low and (high is None or a < high)))
            low = float(high or 0)
        oldest.add_metric([kind], max(values))
    return iter((opened, occurrences, misses, open_now, by_age, oldest))


def reconciliation(s: Session) -> Iterator[Metric]:
    runs = CounterMetricFamily("carefabric_reconciliation_runs", "Reconciliation runs, by status", labels=["status"])
    for status, n in s.execute(select(ReconciliationRun.status, func.count()).group_by(ReconciliationRun.status)):
        runs.add_metric([status], n)
    items = GaugeMetricFamily("carefabric_reconciliation_items", "Items of the latest finished reconciliation",
                              labels=["check", "status"])
    variance = GaugeMetricFamily("carefabric_reconciliation_variance_cents",
                                 "Sum of absolute variances of the latest finished reconciliation", labels=["check"])
    day = GaugeMetricFamily("carefabric_reconciliation_business_date_seconds",
                            "Business date of the latest finished reconciliation (midnight UTC, Unix time)")
    latest = s.scalars(select(ReconciliationRun).where(ReconciliationRun.finished_at.is_not(None))
                       .order_by(ReconciliationRun.finished_at.desc(), ReconciliationRun.id.desc()).limit(1)).first()
    if latest is not None:
        day.add_metric([], _date_seconds(latest.business_date))
        for check, status, n, cents in s.execute(
            select(ReconciliationItem.check_name, ReconciliationItem.status, func.count(),
                   func.coalesce(func.sum(func.abs(ReconciliationItem.variance_cents)), 0))
            .where(ReconciliationItem.run_id == latest.id)
            .group_by(ReconciliationItem.check_name, ReconciliationItem.status)
        ):
            items.add_metric([check, status], n)
            variance.add_metric([check], float(cents))  # PostgreSQL's sum() is a Decimal
    return iter((runs, items, _merge(variance), day))


def _merge(family: Metric) -> Metric:
    """Sum samples with the same labels (variance is added per status above)."""
    totals: dict[tuple[tuple[str, str], ...], float] = {}
    for sample in family.samples:
        key = tuple(sorted(sample.labels.items()))
        totals[key] = totals.get(key, 0.0) + sample.value
    merged = GaugeMetricFamily(family.name, family.documentation, labels=["check"])
    for key, value in totals.items():
        merged.add_metric([dict(key)["check"]], value)
    return merged


class StoreCollector:
    """A Prometheus collector that reads the store at each ``collect()``."""

    def __init__(self, engine_factory: Callable[[], Engine], clock: Callable[[], dt.datetime] = utcnow) -> None:
        self.engine_factory = engine_factory
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        now = _aware(self.clock())
        with Session(self.engine_factory()) as s:
            yield from inbound(s)
            yield from outbound(s)
            yield from peers(s)
            yield from latency(s, now)
            yield from exceptions(s, now)
            yield from reconciliation(s)


def render(engine_factory: Callable[[], Engine], **kwargs: Any) -> bytes:
    """The exposition text of one scrape (a fresh registry: nothing is cached between scrapes)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(engine_factory, **kwargs))
    return generate_latest(registry)
