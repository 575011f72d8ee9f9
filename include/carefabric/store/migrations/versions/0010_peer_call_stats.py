"""Peer API calls per hour: counts, time and latency buckets per peer, route and status.

``peer_call_stats`` holds sums that recorders in task processes add to (``carefabric.peer_calls``)
and ``/metrics`` reads (``carefabric_peer_requests_total``,
``carefabric_peer_request_duration_seconds``). Bucket columns are listed here as they are today
(a migration does not follow later model changes).

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BUCKETS = ("le_5ms", "le_10ms", "le_25ms", "le_50ms", "le_100ms", "le_250ms", "le_500ms", "le_1s", "le_2500ms",
           "le_5s", "le_10s", "le_30s", "le_60s")


def upgrade() -> None:
    op.create_table(
        "peer_call_stats",
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("peer", sa.String(length=40), nullable=False),
        sa.Column("method", sa.String(length=10), nullable=False),
        sa.Column("route", sa.String(length=160), nullable=False),
        sa.Column("code", sa.Integer(), nullable=False),
        sa.Column("retried", sa.Boolean(), nullable=False),
        sa.Column("calls", sa.BigInteger(), nullable=False),
        sa.Column("total_us", sa.BigInteger(), nullable=False),
        *(sa.Column(name, sa.BigInteger(), nullable=False) for name in BUCKETS),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("hour", "peer", "method", "route", "code", "retried", name=op.f("pk_peer_call_stats")),
    )


def downgrade() -> None:
    op.drop_table("peer_call_stats")
