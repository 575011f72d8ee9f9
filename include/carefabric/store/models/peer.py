"""Peer API calls aggregated per hour: counts, time and a latency histogram per route and status.

One row per (hour, peer, method, route template, status code, retried). Rows hold sums that
recorders in any process add to (``INSERT ... ON CONFLICT DO UPDATE SET calls = calls + ...``),
so the api-server serving ``/metrics`` sees what task processes recorded. ``route`` is a
template (``/journal-batches/{external_id}``), never a URL with ids or query values: no PHI.

``retried`` rows are attempts the retry budget answered with another try (a 503 followed by a
200): their status is counted, they carry no time. ``code`` 0 means no answer (the connection
failed or timed out). The ``le_*`` columns are cumulative histogram buckets (calls that took at
most that long), in ``PEER_BUCKETS`` order; ``calls`` is the ``+Inf`` bucket.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Boolean, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from carefabric.store.models.base import Base, updated_at

#: (upper bound in seconds, column): the histogram of ``carefabric_peer_request_duration_seconds``.
PEER_BUCKETS = (
    (0.005, "le_5ms"), (0.01, "le_10ms"), (0.025, "le_25ms"), (0.05, "le_50ms"), (0.1, "le_100ms"),
    (0.25, "le_250ms"), (0.5, "le_500ms"), (1.0, "le_1s"), (2.5, "le_2500ms"), (5.0, "le_5s"),
    (10.0, "le_10s"), (30.0, "le_30s"), (60.0, "le_60s"),
)


def _bucket() -> Mapped[int]:
    return mapped_column(BigInteger, default=0, nullable=False)


class PeerCallStat(Base):
    """Sums of one hour's calls to one peer route with one outcome (see the module docstring)."""

    __tablename__ = "peer_call_stats"

    hour: Mapped[dt.datetime] = mapped_column(primary_key=True)
    peer: Mapped[str] = mapped_column(String(40), primary_key=True)
    method: Mapped[str] = mapped_column(String(10), primary_key=True)
    route: Mapped[str] = mapped_column(String(160), primary_key=True)
    code: Mapped[int] = mapped_column(Integer, primary_key=True)
    retried: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    calls: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)
    total_us: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)
    le_5ms: Mapped[int] = _bucket()
    le_10ms: Mapped[int] = _bucket()
    le_25ms: Mapped[int] = _bucket()
    le_50ms: Mapped[int] = _bucket()
    le_100ms: Mapped[int] = _bucket()
    le_250ms: Mapped[int] = _bucket()
    le_500ms: Mapped[int] = _bucket()
    le_1s: Mapped[int] = _bucket()
    le_2500ms: Mapped[int] = _bucket()
    le_5s: Mapped[int] = _bucket()
    le_10s: Mapped[int] = _bucket()
    le_30s: Mapped[int] = _bucket()
    le_60s: Mapped[int] = _bucket()
    updated_at: Mapped[dt.datetime] = updated_at()
