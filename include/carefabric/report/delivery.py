"""Delivering a rendered finance report: the MIME message and the send over an open SMTP connection."""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:  # pragma: no cover - typing only
    from carefabric.report.finance_email import FinanceReport

log = logging.getLogger("carefabric.report.finance_email")


def _addresses(recipients: str | Sequence[str]) -> list[str]:
    if isinstance(recipients, str):
        recipients = recipients.replace(";", ",").split(",")
    found = [r.strip() for r in recipients if r and r.strip()]
    if not found:
        raise ValueError("no recipients")
    return found


def to_mime(report: FinanceReport, *, sender: str, recipients: str | Sequence[str]) -> EmailMessage:
    """The report as one message::

        multipart/mixed
          multipart/alternative
            text/plain                      report.text
            multipart/related
              text/html                     report.html (img src="cid:...")
              image/png  Content-ID <cid>   inline chart
          text/csv     attachment           unmatched_<date>.csv
          image/png    attachment           reconciliation_<date>.png

    The chart is both inline (so it shows in the body) and attached (so it survives clients
    that strip related parts and can be forwarded on its own).
    """
    to = _addresses(recipients)
    msg = EmailMessage()
    msg["Subject"] = report.subject
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Date"] = formatdate(localtime=True)
    domain = sender.rsplit("@", 1)[-1].strip("> ") if "@" in sender else "carefabric.local"
    msg["Message-ID"] = make_msgid(domain=domain)  # short: a folded Message-ID confuses some clients
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation auto-replies to a robot
    msg.set_content(report.text)
    msg.add_alternative(report.html, subtype="html")
    html_part = cast(EmailMessage, msg.get_payload()[1])  # type: ignore[index]  # the alternative just added
    for cid, filename, data, mime in report.inline:
        maintype, subtype = mime.split("/", 1)
        html_part.add_related(
            data, maintype=maintype, subtype=subtype, cid=f"<{cid}>", filename=filename, disposition="inline"
        )
    for filename, data, mime in report.attachments:
        maintype, subtype = mime.split("/", 1)
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return msg


def send(report: FinanceReport, client: smtplib.SMTP, *, sender: str, recipients: str | Sequence[str]) -> str:
    """Send the report over an open, authenticated SMTP connection and return its Message-ID.

    The connection (host, port, implicit TLS or STARTTLS, login) is the caller's: in Airflow the
    smtp provider's ``SmtpHook`` opens it with its TLS/SSL semantics
    (``carefabric_airflow.email.send_report``), so the TLS rule has one home. Sent once: recipients
    the server refuses while accepting others are logged, not raised, because the message went
    out and a retry would send it again to everyone who already has it. If every recipient is
    refused smtplib raises ``SMTPRecipientsRefused``.
    """
    to = _addresses(recipients)
    msg = to_mime(report, sender=sender, recipients=to)
    refused = client.send_message(msg, from_addr=sender, to_addrs=to)
    if refused:
        log.warning("finance report %s refused for %s", msg["Message-ID"], sorted(refused))
    log.info("finance report for %s sent to %d recipient(s)", report.business_date, len(to) - len(refused))
    return str(msg["Message-ID"])
