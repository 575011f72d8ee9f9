"""Start and stop every sandbox peer inside the current process.

Used by ``python -m sandbox serve`` and directly by tests (ports 0: the OS picks free ports,
so parallel test runs never collide). Each peer runs in its own thread(s): the SFTP accept loop,
one uvicorn server per HTTP peer and the aiosmtpd controller. ``ready.json`` records the ports
actually bound, which ``python -m sandbox start/status/install`` and the demo read.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn

from sandbox import HOST

log = logging.getLogger(__name__)


class HttpPeer:
    """One FastAPI app served by uvicorn in a thread, on a socket bound beforehand."""

    def __init__(self, name: str, app: Any, port: int, host: str = HOST) -> None:
        self.name = name
        self.app = app
        self.host = host
        self.requested_port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None

    @property
    def port(self) -> int:
        if self._sock is None:
            raise RuntimeError(f"{self.name} peer not started")
        return int(self._sock.getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.requested_port))
        self._sock = sock
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name=f"sandbox-{self.name}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"sandbox {self.name} peer did not start on port {self.requested_port}")
            time.sleep(0.02)

    def stop(self, timeout: float = 10.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        if self._sock is not None:
            self._sock.close()
        store = getattr(self.app.state, "store", None)
        if store is not None:
            store.close()


class SandboxServers:
    """All five peers (SFTP, billing, ERP, SMTP, the EHR's FHIR server) over one state folder; a context manager.

    ``SandboxServers(tmp_path)`` uses free ports; the CLI passes the contract's ports.
    """

    def __init__(
        self,
        base_dir: Path,
        sftp_port: int = 0,
        billing_port: int = 0,
        erp_port: int = 0,
        smtp_port: int = 0,
        host: str = HOST,
        ehr_fhir_port: int = 0,
    ) -> None:
        self.base_dir = Path(base_dir)
        self.host = host
        self._ports = {"sftp": sftp_port, "billing": billing_port, "erp": erp_port, "smtp": smtp_port, "ehr_fhir": ehr_fhir_port}
        self.sftp: Any = None
        self.billing: HttpPeer | None = None
        self.erp: HttpPeer | None = None
        self.smtp: Any = None
        self.ehr_fhir: HttpPeer | None = None
        self._started: list[Any] = []

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> SandboxServers:
        from sandbox.billing_api import create_app as billing_app
        from sandbox.erp_api import create_app as erp_app
        from sandbox.fhir_server import create_app as ehr_fhir_app
        from sandbox.http_common import FaultRegistry
        from sandbox.sftp_server import SftpDrop
        from sandbox.smtp_sink import SmtpSink

        self.base_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.sftp = SftpDrop(self.base_dir, self._ports["sftp"], self.host)
            self.sftp.start()
            self._started.append(self.sftp)
            self.billing = HttpPeer(
                "billing", billing_app(self.base_dir / "billing.db", FaultRegistry()), self._ports["billing"], self.host
            )
            self.billing.start()
            self._started.append(self.billing)
            self.erp = HttpPeer("erp", erp_app(self.base_dir / "erp.db", FaultRegistry()), self._ports["erp"], self.host)
            self.erp.start()
            self._started.append(self.erp)
            self.smtp = SmtpSink(self.base_dir, self._ports["smtp"], self.host)
            self.smtp.start()
            self._started.append(self.smtp)
            self.ehr_fhir = HttpPeer("ehr_fhir", ehr_fhir_app(self.base_dir), self._ports["ehr_fhir"], self.host)
            self.ehr_fhir.start()
            self._started.append(self.ehr_fhir)
        except BaseException:
            self.stop()
            raise
        self._write_ready()
        log.info("sandbox up: %s", self.ports)
        return self

    def stop(self) -> None:
        """Stop every peer that started, newest first; safe to call twice."""
        while self._started:
            peer = self._started.pop()
            try:
                peer.stop()
            except Exception:  # noqa: BLE001 - keep stopping the others
                log.exception("stopping %s failed", type(peer).__name__)
        ready = self.base_dir / "ready.json"
        with contextlib.suppress(OSError, ValueError):  # already gone, or another process's file
            if json.loads(ready.read_text()).get("pid") == os.getpid():
                ready.unlink()

    def __enter__(self) -> SandboxServers:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- addresses ------------------------------------------------------------------------------

    @property
    def sftp_port(self) -> int:
        return int(self.sftp.port)

    @property
    def smtp_port(self) -> int:
        return int(self.smtp.port)

    @property
    def billing_url(self) -> str:
        assert self.billing is not None, "not started"
        return self.billing.url

    @property
    def erp_url(self) -> str:
        assert self.erp is not None, "not started"
        return self.erp.url

    @property
    def ehr_fhir_url(self) -> str:
        """The EHR's FHIR base URL (Bulk Data ``$export`` lives under it)."""
        from sandbox.fhir_server import BASE

        assert self.ehr_fhir is not None, "not started"
        return self.ehr_fhir.url + BASE

    @property
    def ehr_client_key(self) -> Path:
        """The integration's private key the EHR registered (PEM): what the Airflow connection holds."""
        return self.base_dir / "ehr_fhir" / "client_key.pem"

    @property
    def sftp_root(self) -> Path:
        return self.base_dir / "sftp_root"

    @property
    def mail_dir(self) -> Path:
        return self.base_dir / "mail"

    @property
    def ports(self) -> dict[str, int]:
        return {
            "sftp": self.sftp_port,
            "billing": self.billing.port if self.billing else 0,
            "erp": self.erp.port if self.erp else 0,
            "smtp": self.smtp_port,
            "ehr_fhir": self.ehr_fhir.port if self.ehr_fhir else 0,
        }

    def _write_ready(self) -> None:
        info = {
            "pid": os.getpid(),
            "host": self.host,
            "sftp_port": self.sftp_port,
            "billing_port": self.ports["billing"],
            "erp_port": self.ports["erp"],
            "smtp_port": self.smtp_port,
            "billing_url": self.billing_url,
            "erp_url": self.erp_url,
            "ehr_fhir_port": self.ports["ehr_fhir"],
            "ehr_fhir_url": self.ehr_fhir_url,
            "ehr_client_key": str(self.ehr_client_key.resolve()),
            "base_dir": str(self.base_dir.resolve()),
            "sftp_root": str(self.sftp_root.resolve()),
            "mail_dir": str(self.mail_dir.resolve()),
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        path = self.base_dir / "ready.json"
        tmp = path.with_name("ready.json.tmp")
        tmp.write_text(json.dumps(info, indent=2) + "\n")
        os.replace(tmp, path)


def read_ready(base_dir: Path) -> dict[str, Any] | None:
    """The ``ready.json`` a running sandbox wrote, or None."""
    try:
        return json.loads((Path(base_dir) / "ready.json").read_text())
    except (OSError, ValueError):
        return None


def port_answers(port: int, host: str = HOST, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


__all__ = ["HttpPeer", "SandboxServers", "port_answers", "read_ready"]
