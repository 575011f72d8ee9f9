"""HL7 re-sends under the same MSH-10 and chargemaster prices.

- ``raw_message_versions``: a later version of a stored message (same sender and MSH-10,
  different content), held for a person's decision (issue 7: ``CONFLICTING_RESEND``).
- ``charges.message_version`` / ``charges.reversal_of``: which version a line came from, and
  the line a reversal credit undoes, so an accepted correction is traceable line by line.
- ``charges.priced_from`` and ``cw_cdm.price_cents``: a DFT line without FT1-11/12 is priced
  from the chargemaster (issue 9), or held until a price is known.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from carefabric.store.types import BigIntPK, UTCDateTime

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "raw_message_versions",
        sa.Column("id", BigIntPK, autoincrement=True, nullable=False),
        sa.Column("message_id", sa.BigInteger(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("content_sha256", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("file_id", sa.BigInteger(), nullable=True),
        sa.Column("position", sa.Integer(), nullable=True),
        sa.Column("business_date", sa.Date(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("decided_at", UTCDateTime(), nullable=True),
        sa.Column("decided_by", sa.String(length=64), nullable=True),
        sa.CheckConstraint(
            "status IN ('held', 'accepted', 'discarded')", name=op.f("ck_raw_message_versions_status")
        ),
        sa.ForeignKeyConstraint(
            ["file_id"], ["inbound_files.id"], name=op.f("fk_raw_message_versions_file_id_inbound_files"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"], ["raw_messages.id"], name=op.f("fk_raw_message_versions_message_id_raw_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_raw_message_versions")),
        sa.UniqueConstraint("message_id", "version", name=op.f("uq_raw_message_versions_message_id")),
    )
    op.create_index(op.f("ix_raw_message_versions_file_id"), "raw_message_versions", ["file_id"], unique=False)
    op.create_index(op.f("ix_raw_message_versions_message_id"), "raw_message_versions", ["message_id"], unique=False)
    op.create_index(op.f("ix_raw_message_versions_status"), "raw_message_versions", ["status"], unique=False)
    with op.batch_alter_table("charges") as batch:
        batch.add_column(sa.Column("priced_from", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("message_version", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("reversal_of", sa.String(length=255), nullable=True))
    with op.batch_alter_table("cw_cdm") as batch:
        batch.add_column(sa.Column("price_cents", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("cw_cdm") as batch:
        batch.drop_column("price_cents")
    with op.batch_alter_table("charges") as batch:
        batch.drop_column("reversal_of")
        batch.drop_column("message_version")
        batch.drop_column("priced_from")
    op.drop_index(op.f("ix_raw_message_versions_status"), table_name="raw_message_versions")
    op.drop_index(op.f("ix_raw_message_versions_message_id"), table_name="raw_message_versions")
    op.drop_index(op.f("ix_raw_message_versions_file_id"), table_name="raw_message_versions")
    op.drop_table("raw_message_versions")
