"""The finance email through the smtp provider's ``SmtpHook`` (its TLS/SSL semantics, not ours).

The hook opens and authenticates the connection from an Airflow SMTP connection: implicit TLS
(``SMTP_SSL``) unless the extra ``disable_ssl`` is true, then STARTTLS unless ``disable_tls`` is
true, certificates verified (``ssl_context``: ``default``), login when the connection has one,
reconnects up to ``retry_limit`` on a dropped connection, ``timeout`` seconds. The message itself
is carefabric's (``carefabric.report.to_mime``: multipart/alternative with an inline chart in a
multipart/related part, which ``SmtpHook.send_email_smtp`` cannot build), so it goes out through
the hook's open client with ``send_message``, once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from carefabric.report import FinanceReport

DEFAULT_SENDER = "carefabric@hospital.example"


def send_report(report: FinanceReport, *, conn_id: str, recipients: str | Sequence[str]) -> str:
    """Send the finance report through ``conn_id``; returns its Message-ID."""
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    from carefabric.report import send

    with SmtpHook(smtp_conn_id=conn_id) as hook:
        client = hook._smtp_client  # the provider's open, authenticated smtplib client
        if client is None:  # pragma: no cover - get_conn raises rather than leave it unset
            raise RuntimeError(f"SMTP connection {conn_id} did not open")
        return send(report, client, sender=hook.from_email or DEFAULT_SENDER, recipients=recipients)  # type: ignore[arg-type]
