"""The nightly finance email: content, CSV, MIME structure, and delivery to a real SMTP server."""

from __future__ import annotations

import csv
import datetime as dt
import email
import email.policy
import io
import re
import smtplib
import socket
import threading
from collections.abc import Iterator

import pandas as pd
import pytest

from carefabric.quality import ExpectationOutcome, QualityResult
from carefabric.report import build_finance_report, format_money, send, to_mime
from carefabric.report.finance_email import UNMATCHED_HTML_CAP

BUSINESS_DATE = dt.date(2026, 11, 23)
PHI_NAME = "DOE^JANE^Q"
PHI_MRN = "MRN00412345"


@pytest.fixture
def items() -> pd.DataFrame:
    """One matched, one missing_in_billing and one amount_mismatch per the reconciliation shape."""
    rows = [
        {
            "check": "charges",
            "key": "CC-F1-ED|2026-11-23",
            "status": "matched",
            "ehr_cents": 125_000,
            "billing_cents": 125_000,
            "gl_cents": 125_000,
            "variance_cents": 0,
            "reason": "",
        },
        {
            "check": "charges",
            "key": "CC-F1-LAB|2026-11-23",
            "status": "amount_mismatch",
            "ehr_cents": 50_000,
            "billing_cents": 50_000,
            "gl_cents": 47_500,
            "variance_cents": 2_500,
            "reason": "GL gross revenue short by $25.00 <check posting>",
        },
        {
            "check": "claims",
            "key": "CLM-000123",
            "status": "missing_in_billing",
            "remit_cents": 8_800,
            "gl_cents": 8_800,
            "variance_cents": 8_800,
            "reason": "paid in 835 but never billed",
        },
        {
            "check": "claims",
            "key": "CLM-000124",
            "status": "matched",
            "billing_cents": 12_000,
            "remit_cents": 12_000,
            "gl_cents": 12_000,
            "variance_cents": 0,
            "reason": "",
        },
        {
            "check": "cash",
            "key": "EFT-778899",
            "status": "matched",
            "remit_cents": 20_800,
            "gl_cents": 20_800,
            "variance_cents": 0,
            "reason": "",
        },
    ]
    frame = pd.DataFrame(rows)
    # Defensive masking: these must never reach the CSV or the email in clear.
    frame["patient_name"] = [PHI_NAME] * len(frame)
    frame["mrn"] = [PHI_MRN] * len(frame)
    return frame


@pytest.fixture
def summary() -> dict:
    return {
        "run_id": "scheduled__2026-11-24T02:00:00+00:00",
        "charges": {
            "ehr_cents": 175_000,
            "billing_cents": 175_000,
            "gl_cents": 172_500,
            "items_by_status": {"matched": 1, "amount_mismatch": 1},
        },
        "claims": {"billing_cents": 12_000, "remit_cents": 20_800, "gl_cents": 20_800},
        "cash": {"remit_cents": 20_800, "gl_cents": 20_800, "items_by_status": {"matched": 1}},
        "journals_posted": 3,
        "debits_cents": 216_100,
        "credits_cents": 216_100,
        "exceptions_open": 7,
    }


@pytest.fixture
def quality() -> list:
    failed = QualityResult(
        dataset="charges",
        success=False,
        evaluated=21,
        failed=1,
        rows=412,
        results=[
            ExpectationOutcome(
                "expect_column_values_to_be_in_set", "transaction_type", False, 2, ["XX"], kwargs={}
            )
        ],
    )
    passed = {
        "dataset": "remittances",
        "success": True,
        "evaluated": 7,
        "failed": 0,
        "rows": 4,
        "results": [],
    }
    return [failed, passed]


EXCEPTIONS = {"UNKNOWN_CDM": 2, "REMIT_UNBALANCED": 1, "DUPLICATE_INTERCHANGE": 1}


@pytest.fixture
def report(summary, items, quality):
    return build_finance_report(summary, items, quality, EXCEPTIONS, business_date=BUSINESS_DATE)


def _csv_rows(report) -> list[dict[str, str]]:
    name, data, mime = next(a for a in report.attachments if a[0].endswith(".csv"))
    assert name == "unmatched_2026-11-23.csv" and mime == "text/csv"
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"))))


@pytest.mark.parametrize(
    ("cents", "text"),
    [(0, "$0.00"), (5, "$0.05"), (123_456, "$1,234.56"), (-1_205, "-$12.05"), (100_000_000, "$1,000,000.00")],
)
def test_format_money(cents: int, text: str) -> None:
    assert format_money(cents) == text


def test_html_has_totals_unmatched_exceptions_and_quality(report) -> None:
    html = report.html
    # control totals per check, as dollars from cents
    for amount in ("$1,750.00", "$1,725.00", "$208.00", "$120.00", "$2,161.00"):
        assert amount in html
    assert "Charges" in html and "Claims" in html and "Cash" in html
    # what did not match and why
    assert "CLM-000123" in html and "missing_in_billing" in html
    assert "CC-F1-LAB|2026-11-23" in html and "amount_mismatch" in html
    assert "paid in 835 but never billed" in html
    assert "CLM-000124" not in html  # matched items are not listed
    # exceptions by reason
    for reason in EXCEPTIONS:
        assert reason in html
    # GX results per dataset with the failed expectation
    assert "charges" in html and "remittances" in html
    assert "expect_column_values_to_be_in_set(transaction_type)" in html
    # autoescape: data cannot inject markup
    assert "&lt;check posting&gt;" in html and "<check posting>" not in html
    # no PHI anywhere
    for text in (html, report.text, report.subject):
        assert PHI_NAME not in text and PHI_MRN not in text


def test_subject_and_text(report) -> None:
    assert report.subject == (
        "[carefabric] Reconciliation 2026-11-23: action needed: 2 unmatched, 4 exceptions, 1 data quality failure"
    )
    assert report.needs_action
    assert "CLM-000123" in report.text and "UNKNOWN_CDM: 2" in report.text
    assert "charges (412 rows): FAILED 1 of 21" in report.text


def test_all_clear_report() -> None:
    items = pd.DataFrame(
        [{"check": "cash", "key": "EFT-1", "status": "matched", "remit_cents": 100, "gl_cents": 100}]
    )
    report = build_finance_report(
        {"cash": {"remit_cents": 100, "gl_cents": 100}}, items, [], {}, business_date="2026-11-23"
    )
    assert report.subject.endswith("all matched")
    assert not report.needs_action
    assert "All matched." in report.html
    assert _csv_rows(report) == []


def test_csv_has_only_unmatched_rows_and_masks_phi(report) -> None:
    rows = _csv_rows(report)
    assert [(r["check"], r["key"], r["status"]) for r in rows] == [
        ("charges", "CC-F1-LAB|2026-11-23", "amount_mismatch"),
        ("claims", "CLM-000123", "missing_in_billing"),
    ]
    lab, claim = rows
    assert (lab["ehr_amount"], lab["billing_amount"], lab["gl_amount"], lab["variance"]) == (
        "500.00",
        "500.00",
        "475.00",
        "25.00",
    )
    assert claim["billing_amount"] == "" and claim["remit_amount"] == "88.00"
    assert claim["reason"] == "paid in 835 but never billed"
    assert {r["patient_name"] for r in rows} == {"***"} and {r["mrn"] for r in rows} == {"***"}
    raw = next(a[1] for a in report.attachments if a[0].endswith(".csv")).decode()
    assert PHI_NAME not in raw and PHI_MRN not in raw


def test_unmatched_table_is_capped_but_csv_is_complete() -> None:
    n = UNMATCHED_HTML_CAP + 50
    items = pd.DataFrame(
        {
            "check": ["claims"] * n,
            "key": [f"CLM-{i:06d}" for i in range(n)],
            "status": ["missing_in_gl"] * n,
            "billing_cents": [100] * n,
            "gl_cents": [None] * n,
            "reason": ["not posted"] * n,
        }
    )
    report = build_finance_report({}, items, [], {}, business_date="2026-11-23")
    assert f"Showing the first {UNMATCHED_HTML_CAP} of {n} items" in report.html
    assert "CLM-000199" in report.html and "CLM-000200" not in report.html
    assert len(_csv_rows(report)) == n
    assert _csv_rows(report)[0]["variance"] == "1.00"  # derived from the one side present


def test_chart_is_png_inline_by_cid_and_attached(report) -> None:
    (cid, filename, png, mime) = report.inline[0]
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and mime == "image/png"
    assert f'src="cid:{cid}"' in report.html
    assert (filename, png, "image/png") in report.attachments


def test_mime_structure(report) -> None:
    msg = to_mime(report, sender="carefabric@hospital.example", recipients=["finance@hospital.example"])
    assert msg.get_content_type() == "multipart/mixed"
    types = [part.get_content_type() for part in msg.walk()]
    assert types == [
        "multipart/mixed",
        "multipart/alternative",
        "text/plain",
        "multipart/related",
        "text/html",
        "image/png",
        "text/csv",
        "image/png",
    ]
    html_part = next(p for p in msg.walk() if p.get_content_type() == "text/html")
    inline_png = next(p for p in msg.walk() if p.get("Content-ID"))
    cid = inline_png["Content-ID"].strip("<>")
    assert inline_png.get_content_type() == "image/png"
    assert inline_png.get_content_disposition() == "inline"
    assert f"cid:{cid}" in html_part.get_content()
    csv_part = next(p for p in msg.walk() if p.get_filename() == "unmatched_2026-11-23.csv")
    assert csv_part.get_content_disposition() == "attachment"
    assert b"CLM-000123" in csv_part.get_payload(decode=True)
    assert msg["Subject"] == report.subject and msg["Message-ID"]


# --------------------------------------------------------------------------- real SMTP delivery


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Collector:
    """aiosmtpd handler that keeps every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.received = threading.Event()

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd's hook name
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        self.received.set()
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_server() -> Iterator[tuple[int, _Collector]]:
    from aiosmtpd.controller import Controller

    handler = _Collector()
    controller = Controller(handler, hostname="127.0.0.1", port=_free_port())
    controller.start()
    try:
        yield controller.port, handler
    finally:
        controller.stop()


def test_send_delivers_to_a_real_smtp_server(report, smtp_server) -> None:
    port, handler = smtp_server
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        message_id = send(report, client, sender="carefabric@hospital.example",
                          recipients=["finance@hospital.example", "controller@hospital.example"])
    assert handler.received.wait(10)
    (mail_from, rcpt_tos, raw) = handler.messages[0]
    assert mail_from == "carefabric@hospital.example"
    assert rcpt_tos == ["finance@hospital.example", "controller@hospital.example"]
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg["Message-ID"] == message_id
    assert re.fullmatch(r"<[^@>]+@hospital\.example>", message_id)
    assert msg["Subject"] == report.subject
    attachments = {part.get_filename(): part.get_payload(decode=True) for part in msg.iter_attachments()}
    assert set(attachments) == {"unmatched_2026-11-23.csv", "reconciliation_2026-11-23.png"}
    assert attachments["unmatched_2026-11-23.csv"].decode().splitlines()[0].startswith("check,key,status")
    assert attachments["reconciliation_2026-11-23.png"].startswith(b"\x89PNG")
    assert PHI_NAME.encode() not in raw and PHI_MRN.encode() not in raw


def test_items_missing_required_columns_are_rejected() -> None:
    with pytest.raises(ValueError, match="status"):
        build_finance_report(
            {}, pd.DataFrame({"check": ["cash"], "key": ["EFT"]}), [], {}, business_date="2026-11-23"
        )


def test_store_rows_are_accepted_as_they_are() -> None:
    """reconciliation_items rows (check_name, item_key, detail JSON) need no renaming by the DAG."""
    rows = pd.DataFrame(
        [
            {
                "id": 7,
                "run_id": 1,
                "check_name": "claims",
                "item_key": "CLM-9",
                "status": "missing_in_billing",
                "ehr_cents": None,
                "billing_cents": None,
                "remit_cents": 500,
                "gl_cents": 500,
                "variance_cents": 500,
                "detail": {"reason": "paid but never billed", "member_id": "W123456789"},
            }
        ]
    )
    report = build_finance_report({}, rows, [], {}, business_date="2026-11-23")
    (row,) = _csv_rows(report)
    assert (row["check"], row["key"], row["reason"]) == ("claims", "CLM-9", "paid but never billed")
    assert set(row) == {
        "check",
        "key",
        "status",
        "ehr_amount",
        "billing_amount",
        "remit_amount",
        "gl_amount",
        "variance",
        "reason",
    }
    assert "W123456789" not in report.html


def test_held_money_is_a_control_total_line_and_payers_show_under_their_facility() -> None:
    held = {"charges": {"UNKNOWN_CDM": {"lines": 2, "cents": 4500}},
            "suspense": {"rejected": {"transactions": 1, "cents": 91872}}, "remittances": {}}
    rollforward = [{"facility": "F1", "opening_cents": 100000, "charges_cents": 5000, "payment_cents": -3000,
                    "contractual_cents": -1000, "denial_cents": 0, "plb_cents": 0, "patient_responsibility_cents": 0,
                    "expected_closing_cents": 101000, "closing_cents": 101000, "difference_cents": 0,
                    "payers": [{"payer_id": "PAYER-ACME", "payment_cents": -3000, "contractual_cents": -1000,
                                "denial_cents": 0, "plb_cents": 0, "charges_cents": 0,
                                "patient_responsibility_cents": 0, "activity_cents": -4000}]}]
    report = build_finance_report({}, None, [], {}, business_date=dt.date(2026, 11, 23), chart=False, held=held,
                                  rollforward=rollforward)
    assert report.html.count('class="held-line"') == 2
    assert "Not posted: 835 cash in suspense" in report.html and "$918.72" in report.html
    assert 'class="rollforward-payer' in report.html and "PAYER-ACME" in report.html
    assert "PAYER-ACME: payments -$30.00, adjustments -$10.00" in report.text
    assert "$963.72 not posted" in report.subject
