"""The nightly finance report: HTML email with control totals, unmatched items, exceptions,
data quality results, a chart and a CSV of what did not match.

Importing this package is cheap (no pandas, matplotlib or Jinja2 at import time); they load when
a report is built.

    from carefabric.report import build_finance_report, send
    report = build_finance_report(summary, items, quality, exceptions_by_reason, business_date=day)
    with smtplib.SMTP(host, port) as client:  # in Airflow: carefabric_airflow.email.send_report
        message_id = send(report, client, sender=..., recipients=[...])
"""

from carefabric.report.finance_email import (
    FinanceReport,
    build_finance_report,
    format_money,
    send,
    to_mime,
)

__all__ = ["FinanceReport", "build_finance_report", "format_money", "send", "to_mime"]
