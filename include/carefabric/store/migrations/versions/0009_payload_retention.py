"""Payload retention: a raw payload purged after its retention period keeps its digest and size.

``raw_messages`` and ``raw_message_versions`` gain ``payload_sha256``, ``payload_bytes`` and
``purged_at``; ``inbound_files`` gains ``purged_at`` (its sha256 and size are there already).
The row, its control ids and status stay: audit and de-duplication still work, PHI is gone.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from carefabric.store.types import UTCDateTime

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PAYLOAD_TABLES = ("raw_messages", "raw_message_versions")


def upgrade() -> None:
    for table in PAYLOAD_TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("payload_sha256", sa.String(length=64), nullable=True))
            batch.add_column(sa.Column("payload_bytes", sa.Integer(), nullable=True))
            batch.add_column(sa.Column("purged_at", UTCDateTime(), nullable=True))
    with op.batch_alter_table("inbound_files") as batch:
        batch.add_column(sa.Column("purged_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("inbound_files") as batch:
        batch.drop_column("purged_at")
    for table in PAYLOAD_TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("purged_at")
            batch.drop_column("payload_bytes")
            batch.drop_column("payload_sha256")
