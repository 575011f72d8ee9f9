"""The SMTP sink: accepts any message on 127.0.0.1 and saves it as an ``.eml`` file.

carefabric mails operators about open exceptions and the nightly reconciliation; the sink lets
those mails be sent over real SMTP and then read back by tests (and checked for PHI) without a
mail server. Files are named ``<UTC timestamp>-<n>.eml`` so a listing is in arrival order, and
written to a temporary name first so a reader never sees half a message.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from sandbox import HOST


class MailSaver:
    """aiosmtpd handler writing each accepted message under ``mail_dir``."""

    def __init__(self, mail_dir: Path) -> None:
        self.mail_dir = Path(mail_dir)
        self.mail_dir.mkdir(parents=True, exist_ok=True)
        self._counter = itertools.count(1)
        self._lock = threading.Lock()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        content = envelope.original_content or b""
        # Envelope sender and recipients as an MTA records them (Bcc recipients appear only here).
        trace = (
            f"Return-Path: <{envelope.mail_from or ''}>\r\n"
            f"X-Original-To: {', '.join(envelope.rcpt_tos)}\r\n"
        ).encode()
        self.save(trace + content)
        return "250 Message accepted for delivery"

    def save(self, data: bytes) -> Path:
        with self._lock:
            number = next(self._counter)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        path = self.mail_dir / f"{stamp}-{number:04d}.eml"
        tmp = self.mail_dir / f".{path.name}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, path)
        return path


class _BoundController(Controller):
    """A Controller serving on a socket bound beforehand, so port 0 works without a race."""

    def __init__(self, handler: Any, sock: socket.socket, **kwargs: Any) -> None:
        self._bound_sock = sock
        host, port = sock.getsockname()[:2]
        super().__init__(handler, hostname=host, port=port, **kwargs)

    def _create_server(self) -> Any:
        return self.loop.create_server(self._factory_invoker, sock=self._bound_sock, ssl=self.ssl_context)


class SmtpSink:
    """Start/stop wrapper around the aiosmtpd controller thread."""

    def __init__(self, base_dir: Path, port: int = 0, host: str = HOST) -> None:
        self.mail_dir = Path(base_dir) / "mail"
        self.host = host
        self.requested_port = port
        self.handler = MailSaver(self.mail_dir)
        self._controller: _BoundController | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("SMTP sink not started")
        return self._port

    def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.requested_port))
        self._port = int(sock.getsockname()[1])
        self._controller = _BoundController(
            self.handler, sock, loop=asyncio.new_event_loop(), server_hostname="carefabric-sandbox",
            ready_timeout=10.0,
        )
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller.loop.close()
            self._controller = None


__all__ = ["MailSaver", "SmtpSink"]
