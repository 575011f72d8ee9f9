"""Initial store schema: files, messages, canonical records, remittances, exceptions,
ERP postings, reconciliation, governed crosswalks, replicated master data, watermarks, audit.

Revision ID: 0001
Revises:
Create Date: 2026-11-24 06:45:14.059314
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Surrogate keys: BIGINT on PostgreSQL, INTEGER (the autoincrementing rowid alias) on SQLite.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=255), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index(op.f("ix_audit_log_action"), "audit_log", ["action"], unique=False)
    op.create_index(op.f("ix_audit_log_actor"), "audit_log", ["actor"], unique=False)

    op.create_table(
        "billing_charges",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("charge_id", sa.String(length=64), nullable=False),
        sa.Column("line_key", sa.String(length=255), nullable=True),
        sa.Column("encounter_id", sa.String(length=64), nullable=True),
        sa.Column("facility", sa.String(length=64), nullable=True),
        sa.Column("service_date", sa.Date(), nullable=True),
        sa.Column("cdm_code", sa.String(length=32), nullable=True),
        sa.Column("cost_center", sa.String(length=64), nullable=True),
        sa.Column("revenue_account", sa.String(length=32), nullable=True),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=True),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_charges")),
        sa.UniqueConstraint("charge_id", name=op.f("uq_billing_charges_charge_id")),
    )
    op.create_index(op.f("ix_billing_charges_line_key"), "billing_charges", ["line_key"], unique=False)
    op.create_index(
        op.f("ix_billing_charges_service_date"), "billing_charges", ["service_date"], unique=False
    )

    op.create_table(
        "billing_claims",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("claim_id", sa.String(length=64), nullable=False),
        sa.Column("encounter_id", sa.String(length=64), nullable=True),
        sa.Column("facility", sa.String(length=64), nullable=True),
        sa.Column("payer_id", sa.String(length=64), nullable=True),
        sa.Column("total_charge_cents", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=True),
        sa.Column("status_date", sa.Date(), nullable=True),
        sa.Column("submitted_date", sa.Date(), nullable=True),
        sa.Column("source_updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_claims")),
        sa.UniqueConstraint("claim_id", name=op.f("uq_billing_claims_claim_id")),
    )
    op.create_index(op.f("ix_billing_claims_encounter_id"), "billing_claims", ["encounter_id"], unique=False)

    op.create_table(
        "billing_payments",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("payment_id", sa.String(length=64), nullable=False),
        sa.Column("claim_id", sa.String(length=64), nullable=False),
        sa.Column("payer_id", sa.String(length=64), nullable=True),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("paid_date", sa.Date(), nullable=True),
        sa.Column("trace_number", sa.String(length=64), nullable=True),
        sa.Column("source_updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_payments")),
        sa.UniqueConstraint("payment_id", name=op.f("uq_billing_payments_payment_id")),
    )
    op.create_index(op.f("ix_billing_payments_claim_id"), "billing_payments", ["claim_id"], unique=False)
    op.create_index(op.f("ix_billing_payments_paid_date"), "billing_payments", ["paid_date"], unique=False)
    op.create_index(
        op.f("ix_billing_payments_trace_number"), "billing_payments", ["trace_number"], unique=False
    )

    op.create_table(
        "crosswalk_history",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("crosswalk", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_by", sa.String(length=64), nullable=False),
        sa.CheckConstraint(
            "crosswalk IN ('departments', 'cdm', 'payers', 'facilities')",
            name=op.f("ck_crosswalk_history_crosswalk"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crosswalk_history")),
        sa.UniqueConstraint("crosswalk", "key", "version", name=op.f("uq_crosswalk_history_crosswalk")),
    )
    op.create_table(
        "cw_cdm",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("cdm_code", sa.String(length=32), nullable=False),
        sa.Column("revenue_account", sa.String(length=32), nullable=False),
        sa.Column("erp_item", sa.String(length=64), nullable=True),
        sa.Column("procedure_code", sa.String(length=32), nullable=True),
        sa.Column("description", sa.String(length=255), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_by", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cw_cdm")),
        sa.UniqueConstraint("cdm_code", name=op.f("uq_cw_cdm_cdm_code")),
    )
    op.create_table(
        "cw_departments",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("facility", sa.String(length=64), nullable=False),
        sa.Column("department", sa.String(length=32), nullable=False),
        sa.Column("cost_center", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_by", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cw_departments")),
        sa.UniqueConstraint("facility", "department", name=op.f("uq_cw_departments_facility")),
    )
    op.create_table(
        "cw_facilities",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("facility", sa.String(length=64), nullable=False),
        sa.Column("npi", sa.String(length=16), nullable=True),
        sa.Column("location", sa.String(length=64), nullable=True),
        sa.Column("company", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_by", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cw_facilities")),
        sa.UniqueConstraint("facility", name=op.f("uq_cw_facilities_facility")),
    )
    op.create_index(op.f("ix_cw_facilities_npi"), "cw_facilities", ["npi"], unique=False)

    op.create_table(
        "cw_payers",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("x12_payer_id", sa.String(length=64), nullable=False),
        sa.Column("erp_payer_id", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_by", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cw_payers")),
        sa.UniqueConstraint("x12_payer_id", name=op.f("uq_cw_payers_x12_payer_id")),
    )
    op.create_table(
        "erp_companies",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("company_id", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_erp_companies")),
        sa.UniqueConstraint("company_id", name=op.f("uq_erp_companies_company_id")),
    )
    op.create_table(
        "erp_cost_centers",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("cost_center", sa.String(length=64), nullable=False),
        sa.Column("company_id", sa.String(length=16), nullable=True),
        sa.Column("facility", sa.String(length=64), nullable=True),
        sa.Column("department", sa.String(length=32), nullable=True),
        sa.Column("name", sa.String(length=128), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_erp_cost_centers")),
        sa.UniqueConstraint("cost_center", name=op.f("uq_erp_cost_centers_cost_center")),
    )
    op.create_table(
        "erp_gl_accounts",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("account", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=True),
        sa.Column("type", sa.String(length=32), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_erp_gl_accounts")),
        sa.UniqueConstraint("account", name=op.f("uq_erp_gl_accounts_account")),
    )
    op.create_table(
        "erp_items",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("item", sa.String(length=64), nullable=False),
        sa.Column("description", sa.String(length=255), nullable=True),
        sa.Column("unit_cost_cents", sa.BigInteger(), nullable=True),
        sa.Column("uom", sa.String(length=16), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_erp_items")),
        sa.UniqueConstraint("item", name=op.f("uq_erp_items_item")),
    )
    op.create_table(
        "erp_locations",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("location", sa.String(length=64), nullable=False),
        sa.Column("facility", sa.String(length=64), nullable=True),
        sa.Column("name", sa.String(length=128), nullable=True),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_erp_locations")),
        sa.UniqueConstraint("location", name=op.f("uq_erp_locations_location")),
    )
    op.create_table(
        "erp_payers",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("payer_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=True),
        sa.Column("x12_id", sa.String(length=64), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_erp_payers")),
        sa.UniqueConstraint("payer_id", name=op.f("uq_erp_payers_payer_id")),
    )
    op.create_table(
        "erp_periods",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_erp_periods")),
        sa.UniqueConstraint("period", name=op.f("uq_erp_periods_period")),
    )
    op.create_table(
        "erp_postings",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("external_id", sa.String(length=128), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("company", sa.String(length=16), nullable=False),
        sa.Column("business_date", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("erp_document_id", sa.String(length=64), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("response", sa.JSON(), nullable=True),
        sa.Column("error_code", sa.String(length=40), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("debit_cents", sa.BigInteger(), nullable=False),
        sa.Column("credit_cents", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("posted_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("kind IN ('journal', 'inventory', 'cash')", name=op.f("ck_erp_postings_kind")),
        sa.CheckConstraint(
            "status IN ('pending', 'posted', 'rejected', 'failed')", name=op.f("ck_erp_postings_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_erp_postings")),
        sa.UniqueConstraint("external_id", name=op.f("uq_erp_postings_external_id")),
    )
    op.create_index(op.f("ix_erp_postings_business_date"), "erp_postings", ["business_date"], unique=False)
    op.create_index(op.f("ix_erp_postings_status"), "erp_postings", ["status"], unique=False)

    op.create_table(
        "inbound_files",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("interface", sa.String(length=40), nullable=True),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("archive_path", sa.String(length=1024), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.CheckConstraint("source IN ('ehr', 'payer', 'billing')", name=op.f("ck_inbound_files_source")),
        sa.CheckConstraint(
            "status IN ('received', 'processing', 'processed', 'rejected', 'duplicate')",
            name=op.f("ck_inbound_files_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_files")),
        sa.UniqueConstraint("source", "sha256", name=op.f("uq_inbound_files_source")),
    )
    op.create_index(op.f("ix_inbound_files_status"), "inbound_files", ["status"], unique=False)

    op.create_table(
        "patient_balances",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("account_token", sa.String(length=64), nullable=False),
        sa.Column("encounter_id", sa.String(length=64), nullable=True),
        sa.Column("balance_cents", sa.BigInteger(), nullable=False),
        sa.Column("source_updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patient_balances")),
        sa.UniqueConstraint("account_token", name=op.f("uq_patient_balances_account_token")),
    )
    op.create_index(
        op.f("ix_patient_balances_encounter_id"), "patient_balances", ["encounter_id"], unique=False
    )

    op.create_table(
        "reconciliation_runs",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("business_date", sa.Date(), nullable=False),
        sa.Column("check_set", sa.String(length=64), nullable=False),
        sa.Column("run_number", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("control_totals", sa.JSON(), nullable=True),
        sa.CheckConstraint(
            "status IN ('running', 'completed', 'failed')", name=op.f("ck_reconciliation_runs_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_runs")),
        sa.UniqueConstraint(
            "business_date", "check_set", "run_number", name=op.f("uq_reconciliation_runs_business_date")
        ),
    )
    op.create_index(
        op.f("ix_reconciliation_runs_business_date"), "reconciliation_runs", ["business_date"], unique=False
    )

    op.create_table(
        "watermarks",
        sa.Column("interface", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("interface", "name", name=op.f("pk_watermarks")),
    )
    op.create_table(
        "erp_posting_lines",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("posting_id", sa.BigInteger(), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("account", sa.String(length=32), nullable=True),
        sa.Column("cost_center", sa.String(length=64), nullable=True),
        sa.Column("location", sa.String(length=64), nullable=True),
        sa.Column("facility", sa.String(length=64), nullable=True),
        sa.Column("item", sa.String(length=64), nullable=True),
        sa.Column("quantity", sa.Numeric(precision=18, scale=4), nullable=True),
        sa.Column("unit_cost_cents", sa.BigInteger(), nullable=True),
        sa.Column("debit_cents", sa.BigInteger(), nullable=False),
        sa.Column("credit_cents", sa.BigInteger(), nullable=False),
        sa.Column("memo", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["posting_id"],
            ["erp_postings.id"],
            name=op.f("fk_erp_posting_lines_posting_id_erp_postings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_erp_posting_lines")),
        sa.UniqueConstraint("posting_id", "line_no", name=op.f("uq_erp_posting_lines_posting_id")),
    )
    op.create_index(
        op.f("ix_erp_posting_lines_posting_id"), "erp_posting_lines", ["posting_id"], unique=False
    )

    op.create_table(
        "posting_contributions",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("posting_id", sa.BigInteger(), nullable=False),
        sa.Column("record_type", sa.String(length=32), nullable=False),
        sa.Column("record_key", sa.String(length=255), nullable=False),
        sa.Column("account", sa.String(length=32), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["posting_id"],
            ["erp_postings.id"],
            name=op.f("fk_posting_contributions_posting_id_erp_postings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_posting_contributions")),
        sa.UniqueConstraint(
            "posting_id",
            "record_type",
            "record_key",
            "account",
            name=op.f("uq_posting_contributions_posting_id"),
        ),
    )
    op.create_index(
        op.f("ix_posting_contributions_posting_id"), "posting_contributions", ["posting_id"], unique=False
    )
    op.create_index(
        op.f("ix_posting_contributions_record_key"), "posting_contributions", ["record_key"], unique=False
    )

    op.create_table(
        "raw_messages",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("sender", sa.String(length=128), nullable=False),
        sa.Column("control_id", sa.String(length=128), nullable=False),
        sa.Column("message_type", sa.String(length=32), nullable=False),
        sa.Column("interface", sa.String(length=40), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("file_id", sa.BigInteger(), nullable=True),
        sa.Column("position", sa.Integer(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "status IN ('received', 'parsed', 'routed', 'skipped', 'error')",
            name=op.f("ck_raw_messages_status"),
        ),
        sa.ForeignKeyConstraint(
            ["file_id"],
            ["inbound_files.id"],
            name=op.f("fk_raw_messages_file_id_inbound_files"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_raw_messages")),
        sa.UniqueConstraint("sender", "control_id", "message_type", name=op.f("uq_raw_messages_sender")),
    )
    op.create_index(op.f("ix_raw_messages_file_id"), "raw_messages", ["file_id"], unique=False)
    op.create_index(op.f("ix_raw_messages_status"), "raw_messages", ["status"], unique=False)

    op.create_table(
        "reconciliation_items",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("run_id", sa.BigInteger(), nullable=False),
        sa.Column("check_name", sa.String(length=16), nullable=False),
        sa.Column("item_key", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("ehr_cents", sa.BigInteger(), nullable=True),
        sa.Column("billing_cents", sa.BigInteger(), nullable=True),
        sa.Column("remit_cents", sa.BigInteger(), nullable=True),
        sa.Column("gl_cents", sa.BigInteger(), nullable=True),
        sa.Column("variance_cents", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(length=255), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.CheckConstraint(
            "check_name IN ('charges', 'claims', 'cash')", name=op.f("ck_reconciliation_items_check_name")
        ),
        sa.CheckConstraint(
            "status IN ('matched', 'missing_in_ehr', 'missing_in_billing', 'missing_in_remit', 'missing_in_gl', 'amount_mismatch', 'duplicate', 'timing')",
            name=op.f("ck_reconciliation_items_status"),
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["reconciliation_runs.id"],
            name=op.f("fk_reconciliation_items_run_id_reconciliation_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_items")),
        sa.UniqueConstraint("run_id", "check_name", "item_key", name=op.f("uq_reconciliation_items_run_id")),
    )
    op.create_index(op.f("ix_reconciliation_items_run_id"), "reconciliation_items", ["run_id"], unique=False)
    op.create_index(op.f("ix_reconciliation_items_status"), "reconciliation_items", ["status"], unique=False)

    op.create_table(
        "charges",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("schema_version", sa.Integer(), nullable=False),
        sa.Column("line_key", sa.String(length=255), nullable=False),
        sa.Column("source", sa.String(length=128), nullable=False),
        sa.Column("facility", sa.String(length=64), nullable=False),
        sa.Column("encounter_id", sa.String(length=64), nullable=False),
        sa.Column("message_control_id", sa.String(length=128), nullable=False),
        sa.Column("message_id", sa.BigInteger(), nullable=True),
        sa.Column("line_number", sa.Integer(), nullable=False),
        sa.Column("transaction_id", sa.String(length=64), nullable=True),
        sa.Column("transaction_date", sa.Date(), nullable=False),
        sa.Column("transaction_type", sa.String(length=4), nullable=False),
        sa.Column("cdm_code", sa.String(length=32), nullable=False),
        sa.Column("quantity", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("unit_amount_cents", sa.BigInteger(), nullable=True),
        sa.Column("department", sa.String(length=32), nullable=True),
        sa.Column("procedure_code", sa.String(length=32), nullable=True),
        sa.Column("modifiers", sa.String(length=64), nullable=True),
        sa.Column("patient_token", sa.String(length=64), nullable=True),
        sa.Column("business_date", sa.Date(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("company", sa.String(length=16), nullable=True),
        sa.Column("cost_center", sa.String(length=64), nullable=True),
        sa.Column("revenue_account", sa.String(length=32), nullable=True),
        sa.Column("erp_item", sa.String(length=64), nullable=True),
        sa.Column("billing_charge_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('received', 'mapped', 'routed', 'held')", name=op.f("ck_charges_status")
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["raw_messages.id"],
            name=op.f("fk_charges_message_id_raw_messages"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_charges")),
        sa.UniqueConstraint("line_key", name=op.f("uq_charges_line_key")),
    )
    op.create_index(op.f("ix_charges_business_date"), "charges", ["business_date"], unique=False)
    op.create_index(op.f("ix_charges_encounter_id"), "charges", ["encounter_id"], unique=False)
    op.create_index(op.f("ix_charges_message_id"), "charges", ["message_id"], unique=False)
    op.create_index(op.f("ix_charges_status"), "charges", ["status"], unique=False)
    op.create_index(op.f("ix_charges_transaction_date"), "charges", ["transaction_date"], unique=False)

    op.create_table(
        "encounters",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("schema_version", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=128), nullable=False),
        sa.Column("facility", sa.String(length=64), nullable=False),
        sa.Column("encounter_id", sa.String(length=64), nullable=False),
        sa.Column("event_type", sa.String(length=16), nullable=False),
        sa.Column("message_control_id", sa.String(length=128), nullable=False),
        sa.Column("message_id", sa.BigInteger(), nullable=True),
        sa.Column("patient_token", sa.String(length=64), nullable=True),
        sa.Column("patient_class", sa.String(length=8), nullable=True),
        sa.Column("hospital_service", sa.String(length=32), nullable=True),
        sa.Column("location", sa.String(length=128), nullable=True),
        sa.Column("financial_class", sa.String(length=32), nullable=True),
        sa.Column("admit_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("discharge_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("insurance_plan", sa.String(length=64), nullable=True),
        sa.Column("insurance_company", sa.String(length=64), nullable=True),
        sa.Column("message_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["raw_messages.id"],
            name=op.f("fk_encounters_message_id_raw_messages"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_encounters")),
        sa.UniqueConstraint(
            "source", "encounter_id", "event_type", "message_control_id", name=op.f("uq_encounters_source")
        ),
    )
    op.create_index(op.f("ix_encounters_encounter_id"), "encounters", ["encounter_id"], unique=False)
    op.create_index(op.f("ix_encounters_facility"), "encounters", ["facility"], unique=False)
    op.create_index(op.f("ix_encounters_message_id"), "encounters", ["message_id"], unique=False)

    op.create_table(
        "exceptions",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("reason_code", sa.String(length=40), nullable=False),
        sa.Column("interface", sa.String(length=40), nullable=False),
        sa.Column("record_type", sa.String(length=32), nullable=False),
        sa.Column("record_key", sa.String(length=255), nullable=False),
        sa.Column("message_id", sa.BigInteger(), nullable=True),
        sa.Column("summary", sa.String(length=500), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("kind IN ('business', 'transient')", name=op.f("ck_exceptions_kind")),
        sa.CheckConstraint(
            "status IN ('open', 'resolved', 'replayed', 'discarded')", name=op.f("ck_exceptions_status")
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["raw_messages.id"],
            name=op.f("fk_exceptions_message_id_raw_messages"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exceptions")),
        sa.UniqueConstraint(
            "reason_code", "record_type", "record_key", name=op.f("uq_exceptions_reason_code")
        ),
    )
    op.create_index(op.f("ix_exceptions_interface"), "exceptions", ["interface"], unique=False)
    op.create_index(op.f("ix_exceptions_message_id"), "exceptions", ["message_id"], unique=False)
    op.create_index(op.f("ix_exceptions_reason_code"), "exceptions", ["reason_code"], unique=False)
    op.create_index(op.f("ix_exceptions_status"), "exceptions", ["status"], unique=False)

    op.create_table(
        "remittances",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("schema_version", sa.Integer(), nullable=False),
        sa.Column("interchange_control", sa.String(length=16), nullable=False),
        sa.Column("group_control", sa.String(length=16), nullable=False),
        sa.Column("transaction_control", sa.String(length=16), nullable=False),
        sa.Column("sender_id", sa.String(length=32), nullable=False),
        sa.Column("version", sa.String(length=16), nullable=True),
        sa.Column("file_id", sa.BigInteger(), nullable=True),
        sa.Column("message_id", sa.BigInteger(), nullable=True),
        sa.Column("payer_id", sa.String(length=64), nullable=True),
        sa.Column("payer_name", sa.String(length=128), nullable=True),
        sa.Column("erp_payer_id", sa.String(length=64), nullable=True),
        sa.Column("payee_npi", sa.String(length=16), nullable=True),
        sa.Column("payee_name", sa.String(length=128), nullable=True),
        sa.Column("trace_number", sa.String(length=64), nullable=False),
        sa.Column("trace_originator", sa.String(length=32), nullable=True),
        sa.Column("credit_debit", sa.String(length=2), nullable=True),
        sa.Column("payment_method", sa.String(length=8), nullable=True),
        sa.Column("payment_cents", sa.BigInteger(), nullable=False),
        sa.Column("payment_date", sa.Date(), nullable=True),
        sa.Column("business_date", sa.Date(), nullable=True),
        sa.Column("facility", sa.String(length=64), nullable=True),
        sa.Column("company", sa.String(length=16), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("balance_errors", sa.JSON(), nullable=True),
        sa.Column("findings", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('received', 'balanced', 'unbalanced', 'posted', 'rejected')",
            name=op.f("ck_remittances_status"),
        ),
        sa.ForeignKeyConstraint(
            ["file_id"],
            ["inbound_files.id"],
            name=op.f("fk_remittances_file_id_inbound_files"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["raw_messages.id"],
            name=op.f("fk_remittances_message_id_raw_messages"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_remittances")),
        sa.UniqueConstraint(
            "interchange_control",
            "group_control",
            "transaction_control",
            "sender_id",
            name=op.f("uq_remittances_interchange_control"),
        ),
    )
    op.create_index(op.f("ix_remittances_business_date"), "remittances", ["business_date"], unique=False)
    op.create_index(op.f("ix_remittances_file_id"), "remittances", ["file_id"], unique=False)
    op.create_index(op.f("ix_remittances_message_id"), "remittances", ["message_id"], unique=False)
    op.create_index(op.f("ix_remittances_status"), "remittances", ["status"], unique=False)
    op.create_index(op.f("ix_remittances_trace_number"), "remittances", ["trace_number"], unique=False)

    op.create_table(
        "ack_999",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("file_id", sa.BigInteger(), nullable=False),
        sa.Column("remittance_id", sa.BigInteger(), nullable=True),
        sa.Column("group_control", sa.String(length=16), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("accepted", sa.Boolean(), nullable=False),
        sa.Column("findings", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["file_id"],
            ["inbound_files.id"],
            name=op.f("fk_ack_999_file_id_inbound_files"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["remittance_id"],
            ["remittances.id"],
            name=op.f("fk_ack_999_remittance_id_remittances"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ack_999")),
        sa.UniqueConstraint("file_id", "group_control", name=op.f("uq_ack_999_file_id")),
    )
    op.create_index(op.f("ix_ack_999_file_id"), "ack_999", ["file_id"], unique=False)
    op.create_index(op.f("ix_ack_999_remittance_id"), "ack_999", ["remittance_id"], unique=False)

    op.create_table(
        "exception_events",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("exception_id", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["exception_id"],
            ["exceptions.id"],
            name=op.f("fk_exception_events_exception_id_exceptions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exception_events")),
    )
    op.create_index(
        op.f("ix_exception_events_exception_id"), "exception_events", ["exception_id"], unique=False
    )

    op.create_table(
        "provider_adjustments",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("remittance_id", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("provider_id", sa.String(length=32), nullable=True),
        sa.Column("fiscal_date", sa.Date(), nullable=True),
        sa.Column("reason", sa.String(length=8), nullable=False),
        sa.Column("reference", sa.String(length=64), nullable=True),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["remittance_id"],
            ["remittances.id"],
            name=op.f("fk_provider_adjustments_remittance_id_remittances"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provider_adjustments")),
        sa.UniqueConstraint("remittance_id", "seq", name=op.f("uq_provider_adjustments_remittance_id")),
    )
    op.create_index(
        op.f("ix_provider_adjustments_remittance_id"), "provider_adjustments", ["remittance_id"], unique=False
    )

    op.create_table(
        "remit_claims",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("remittance_id", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("patient_control_number", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=4), nullable=False),
        sa.Column("charge_cents", sa.BigInteger(), nullable=False),
        sa.Column("paid_cents", sa.BigInteger(), nullable=False),
        sa.Column("patient_resp_cents", sa.BigInteger(), nullable=True),
        sa.Column("payer_claim_control", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["remittance_id"],
            ["remittances.id"],
            name=op.f("fk_remit_claims_remittance_id_remittances"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_remit_claims")),
        sa.UniqueConstraint("remittance_id", "seq", name=op.f("uq_remit_claims_remittance_id")),
    )
    op.create_index(
        op.f("ix_remit_claims_patient_control_number"),
        "remit_claims",
        ["patient_control_number"],
        unique=False,
    )
    op.create_index(op.f("ix_remit_claims_remittance_id"), "remit_claims", ["remittance_id"], unique=False)

    op.create_table(
        "supply_usage",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("schema_version", sa.Integer(), nullable=False),
        sa.Column("line_key", sa.String(length=255), nullable=False),
        sa.Column("facility", sa.String(length=64), nullable=False),
        sa.Column("transaction_date", sa.Date(), nullable=False),
        sa.Column("business_date", sa.Date(), nullable=True),
        sa.Column("item", sa.String(length=64), nullable=False),
        sa.Column("location", sa.String(length=64), nullable=True),
        sa.Column("quantity", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("unit_cost_cents", sa.BigInteger(), nullable=True),
        sa.Column("cost_center", sa.String(length=64), nullable=True),
        sa.Column("company", sa.String(length=16), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('received', 'mapped', 'routed', 'held')", name=op.f("ck_supply_usage_status")
        ),
        sa.ForeignKeyConstraint(
            ["line_key"],
            ["charges.line_key"],
            name=op.f("fk_supply_usage_line_key_charges"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_supply_usage")),
        sa.UniqueConstraint("line_key", name=op.f("uq_supply_usage_line_key")),
    )
    op.create_index(op.f("ix_supply_usage_business_date"), "supply_usage", ["business_date"], unique=False)
    op.create_index(op.f("ix_supply_usage_status"), "supply_usage", ["status"], unique=False)

    op.create_table(
        "remit_lines",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("claim_id", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("procedure", sa.String(length=64), nullable=False),
        sa.Column("charge_cents", sa.BigInteger(), nullable=False),
        sa.Column("paid_cents", sa.BigInteger(), nullable=False),
        sa.Column("units", sa.Numeric(precision=18, scale=4), nullable=True),
        sa.Column("service_date", sa.Date(), nullable=True),
        sa.Column("line_ref", sa.String(length=64), nullable=True),
        sa.Column("allowed_cents", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["claim_id"],
            ["remit_claims.id"],
            name=op.f("fk_remit_lines_claim_id_remit_claims"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_remit_lines")),
        sa.UniqueConstraint("claim_id", "seq", name=op.f("uq_remit_lines_claim_id")),
    )
    op.create_index(op.f("ix_remit_lines_claim_id"), "remit_lines", ["claim_id"], unique=False)

    op.create_table(
        "remit_adjustments",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("claim_id", sa.BigInteger(), nullable=False),
        sa.Column("line_id", sa.BigInteger(), nullable=True),
        sa.Column("level", sa.String(length=8), nullable=False),
        sa.Column("line_seq", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("group_code", sa.String(length=4), nullable=False),
        sa.Column("reason_code", sa.String(length=8), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("quantity", sa.Numeric(precision=18, scale=4), nullable=True),
        sa.CheckConstraint("level IN ('claim', 'line')", name=op.f("ck_remit_adjustments_level")),
        sa.ForeignKeyConstraint(
            ["claim_id"],
            ["remit_claims.id"],
            name=op.f("fk_remit_adjustments_claim_id_remit_claims"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["line_id"],
            ["remit_lines.id"],
            name=op.f("fk_remit_adjustments_line_id_remit_lines"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_remit_adjustments")),
        sa.UniqueConstraint("claim_id", "line_seq", "seq", name=op.f("uq_remit_adjustments_claim_id")),
    )
    op.create_index(op.f("ix_remit_adjustments_claim_id"), "remit_adjustments", ["claim_id"], unique=False)
    op.create_index(op.f("ix_remit_adjustments_line_id"), "remit_adjustments", ["line_id"], unique=False)


def downgrade() -> None:
    op.drop_table("remit_adjustments")
    op.drop_table("remit_lines")
    op.drop_table("supply_usage")
    op.drop_table("remit_claims")
    op.drop_table("provider_adjustments")
    op.drop_table("exception_events")
    op.drop_table("ack_999")
    op.drop_table("remittances")
    op.drop_table("exceptions")
    op.drop_table("encounters")
    op.drop_table("charges")
    op.drop_table("reconciliation_items")
    op.drop_table("raw_messages")
    op.drop_table("posting_contributions")
    op.drop_table("erp_posting_lines")
    op.drop_table("watermarks")
    op.drop_table("reconciliation_runs")
    op.drop_table("patient_balances")
    op.drop_table("inbound_files")
    op.drop_table("erp_postings")
    op.drop_table("erp_periods")
    op.drop_table("erp_payers")
    op.drop_table("erp_locations")
    op.drop_table("erp_items")
    op.drop_table("erp_gl_accounts")
    op.drop_table("erp_cost_centers")
    op.drop_table("erp_companies")
    op.drop_table("cw_payers")
    op.drop_table("cw_facilities")
    op.drop_table("cw_departments")
    op.drop_table("cw_cdm")
    op.drop_table("crosswalk_history")
    op.drop_table("billing_payments")
    op.drop_table("billing_claims")
    op.drop_table("billing_charges")
    op.drop_table("audit_log")
