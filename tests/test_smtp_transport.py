"""The finance email through the smtp provider's SmtpHook, against the sandbox SMTP sink.

The provider's semantics, not carefabric's: implicit TLS unless ``disable_ssl``, STARTTLS unless
``disable_tls``, certificates verified unless ``ssl_context`` is ``none``. A connection never
falls back to plain text silently: with the defaults, a plain-text server is an error. The sink
is served plain (as in the sandbox), with STARTTLS required, and with implicit TLS, on a
self-signed certificate made for the test.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import json
import smtplib
import socket
import ssl
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from carefabric.report import FinanceReport
from sandbox.smtp_sink import MailSaver, SmtpSink, _BoundController

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

RECIPIENTS = "finance@hospital.example, controller@hospital.example"


def small_report() -> FinanceReport:
    return FinanceReport(
        subject="[carefabric] Reconciliation 2026-11-23: all matched", html='<p>ok</p><img src="cid:chart">',
        text="ok", attachments=[("unmatched_2026-11-23.csv", b"check,key,status\n", "text/csv")],
        inline=[("chart", "chart.png", b"\x89PNG\r\n", "image/png")], business_date="2026-11-23",
    )


def use_connection(monkeypatch: pytest.MonkeyPatch, port: int, extra: dict[str, Any]) -> str:
    monkeypatch.setenv("AIRFLOW_CONN_FINANCE_SMTP_T", json.dumps(
        {"conn_type": "smtp", "host": "127.0.0.1", "port": port, "extra": {"retry_limit": 0, "timeout": 10, **extra}}))
    return "finance_smtp_t"


def sandbox_extras(tmp_path: Path) -> dict[str, Any]:
    """The ``finance_smtp`` extras of airflow_settings.yaml, as ``make demo`` loads them."""
    from airflow_runtime import SETTINGS_FILE, settings_to_import_files

    conn_file, _ = settings_to_import_files(SETTINGS_FILE, tmp_path / "settings")
    return dict(json.loads(json.loads(conn_file.read_text())["finance_smtp"]["extra"]))


@pytest.fixture(scope="module")
def server_tls(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    """A server context with a self-signed certificate for 127.0.0.1."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "carefabric-sandbox")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .sign(key, hashes.SHA256()))
    folder = tmp_path_factory.mktemp("tls")
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    return context


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[Callable[..., tuple[int, Path]]]:
    """Start the sandbox sink: ``sink()`` plain, ``sink(tls_context=...)`` STARTTLS,
    ``sink(ssl_context=...)`` implicit TLS. Returns (port, mail folder)."""
    started: list[Any] = []

    def start(**tls: Any) -> tuple[int, Path]:
        if not tls:
            plain = SmtpSink(tmp_path)
            plain.start()
            started.append(plain)
            return plain.port, plain.mail_dir
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        mail = tmp_path / "mail"
        if "tls_context" in tls:
            tls["require_starttls"] = True  # no MAIL before STARTTLS: delivery proves the upgrade
        controller = _BoundController(MailSaver(mail), sock, loop=asyncio.new_event_loop(),
                                      server_hostname="carefabric-sandbox", ready_timeout=10.0, **tls)
        controller.start()
        started.append(controller)
        return int(sock.getsockname()[1]), mail

    yield start
    for server in started:
        server.stop()


def delivered(mail: Path) -> list[email.message.EmailMessage]:
    return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default)  # type: ignore[misc]
            for p in sorted(mail.glob("*.eml"))]


def test_sandbox_connection_delivers_to_the_sink(monkeypatch: pytest.MonkeyPatch, sink: Any, tmp_path: Path) -> None:
    from carefabric_airflow.email import send_report

    extras = sandbox_extras(tmp_path)
    assert extras["disable_ssl"] is True and extras["disable_tls"] is True  # plain SMTP on loopback
    port, mail = sink()
    message_id = send_report(small_report(), conn_id=use_connection(monkeypatch, port, extras), recipients=RECIPIENTS)
    (msg,) = delivered(mail)
    assert msg["Message-ID"] == message_id
    assert msg["From"] == extras["from_email"]
    assert msg["X-Original-To"] == "finance@hospital.example, controller@hospital.example"
    assert {p.get_filename() for p in msg.iter_attachments()} == {"unmatched_2026-11-23.csv"}
    assert any(p.get_content_type() == "multipart/related" for p in msg.walk())  # the inline chart survived


def test_provider_default_is_implicit_tls_never_plain(monkeypatch: pytest.MonkeyPatch, sink: Any) -> None:
    from carefabric_airflow.email import send_report

    port, mail = sink()
    with pytest.raises(ssl.SSLError):
        send_report(small_report(), conn_id=use_connection(monkeypatch, port, {}), recipients=RECIPIENTS)
    assert delivered(mail) == []


def test_disable_ssl_alone_means_starttls_required(monkeypatch: pytest.MonkeyPatch, sink: Any,
                                                   server_tls: ssl.SSLContext) -> None:
    from carefabric_airflow.email import send_report

    port, mail = sink()  # a server that offers no STARTTLS: refused, not sent in plain text
    with pytest.raises(smtplib.SMTPNotSupportedError):
        send_report(small_report(), conn_id=use_connection(monkeypatch, port, {"disable_ssl": True}), recipients=RECIPIENTS)
    assert delivered(mail) == []

    port, mail = sink(tls_context=server_tls)  # STARTTLS offered (and required by the server)
    with pytest.raises(ssl.SSLCertVerificationError):  # certificates are verified by default
        send_report(small_report(), conn_id=use_connection(monkeypatch, port, {"disable_ssl": True}), recipients=RECIPIENTS)
    conn_id = use_connection(monkeypatch, port, {"disable_ssl": True, "ssl_context": "none"})
    send_report(small_report(), conn_id=conn_id, recipients=RECIPIENTS)
    assert len(delivered(mail)) == 1


def test_disable_tls_alone_means_implicit_tls(monkeypatch: pytest.MonkeyPatch, sink: Any,
                                              server_tls: ssl.SSLContext) -> None:
    from carefabric_airflow.email import send_report

    port, mail = sink(ssl_context=server_tls)
    conn_id = use_connection(monkeypatch, port, {"disable_tls": True, "ssl_context": "none"})
    send_report(small_report(), conn_id=conn_id, recipients=RECIPIENTS)
    assert len(delivered(mail)) == 1
