"""The payers' SFTP drop: a real SSH/SFTP server (paramiko) over ``SANDBOX_DIR/sftp_root``.

Payers leave 835 files in ``inbound/<payer_id>/``; the pipeline lists, fetches, and renames each
into ``archive/<payer_id>/`` once stored. Speaking real SFTP means the pipeline's SFTP hook, host
key pinning and auth code run as in production.

The root is a jail: every client path is taken relative to it, a path with a ``..`` component is
refused outright (permission denied, never normalised away), and a resolved path whose real
location (symlinks followed) leaves the root is refused too. The host key is kept in a file so a
restarted sandbox presents the same key and pinned ``known_hosts`` entries stay valid.
"""

from __future__ import annotations

import contextlib
import logging
import os
import posixpath
import socket
import threading
from pathlib import Path
from typing import Any

import paramiko
from paramiko import SFTPAttributes, SFTPHandle, SFTPServer, SFTPServerInterface
from paramiko.common import (
    AUTH_FAILED,
    AUTH_SUCCESSFUL,
    OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED,
    OPEN_SUCCEEDED,
)
from paramiko.sftp import (
    SFTP_FAILURE,
    SFTP_NO_SUCH_FILE,
    SFTP_OK,
    SFTP_OP_UNSUPPORTED,
    SFTP_PERMISSION_DENIED,
)

from sandbox import HOST, SFTP_PASSWORD, SFTP_USER

log = logging.getLogger(__name__)

# paramiko logs every login at INFO and a client that drops the TCP connection without a
# goodbye (most SFTP clients, Airflow's hook included) at ERROR; keep the sandbox's log readable.
SSH_LOG_CHANNEL = "sandbox.sftp.ssh"
_ssh_log = logging.getLogger(SSH_LOG_CHANNEL)
_ssh_log.setLevel(logging.WARNING)
_ssh_log.addFilter(lambda record: "Connection reset by peer" not in record.getMessage())


class PathRefused(Exception):
    """A client path that would leave the SFTP root."""


# --------------------------------------------------------------------------- keys


def load_or_create_key(path: Path, *, bits: int = 2048) -> paramiko.RSAKey:
    """The RSA key stored at ``path``; generated (mode 0600) the first time only."""
    if path.exists():
        return paramiko.RSAKey.from_private_key_file(str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    key = paramiko.RSAKey.generate(bits)
    tmp = path.with_name(path.name + ".tmp")
    key.write_private_key_file(str(tmp))
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return key


def client_key_pair(base_dir: Path) -> tuple[Path, paramiko.RSAKey]:
    """The client key pair operators and the pipeline use for key auth (``client_key`` + ``.pub``)."""
    key_path = base_dir / "client_key"
    key = load_or_create_key(key_path)
    pub_path = base_dir / "client_key.pub"
    public_line = f"{key.get_name()} {key.get_base64()} payer-drop@carefabric-sandbox\n"
    if not pub_path.exists() or pub_path.read_text() != public_line:
        pub_path.write_text(public_line)
    return key_path, key


# --------------------------------------------------------------------------- path jail


def _errno_to_sftp(exc: OSError) -> int:
    return SFTPServer.convert_errno(exc.errno) if exc.errno is not None else SFTP_FAILURE


class RootedSFTP(SFTPServerInterface):
    """SFTP operations confined to one folder; ``root`` comes from the subsystem handler kwargs."""

    def __init__(self, server: paramiko.ServerInterface, *args: Any, root: str, **kwargs: Any) -> None:
        super().__init__(server, *args, **kwargs)
        self.root = os.path.realpath(root)

    # -- path handling -----------------------------------------------------------------------

    def _virtual(self, path: str | bytes) -> str:
        """A client path as a normalised absolute path inside the jail; ``..`` is refused."""
        if isinstance(path, bytes):
            path = path.decode("utf-8", "surrogateescape")
        parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]
        if ".." in parts or any("\x00" in p for p in parts):
            raise PathRefused(path)
        return "/" + "/".join(parts)

    def _local(self, path: str | bytes, *, follow_last: bool = True) -> str:
        """The real filesystem path for a client path, checked to stay under the root.

        With ``follow_last`` False (lstat, remove, rename) the last component is not resolved,
        so a symlink itself can be seen or removed without following it.
        """
        virtual = self._virtual(path)
        local = os.path.join(self.root, virtual.lstrip("/"))
        if follow_last:
            real = os.path.realpath(local)
        else:
            real = os.path.join(os.path.realpath(os.path.dirname(local)), os.path.basename(local))
        if real != self.root and not real.startswith(self.root + os.sep):
            raise PathRefused(path)
        return real

    # -- interface ---------------------------------------------------------------------------

    def canonicalize(self, path: str) -> str:
        """Names as the client sees them: rooted at ``/``, never revealing the real location."""
        try:
            return self._virtual(path)
        except PathRefused:
            return "/"

    def list_folder(self, path: str) -> list[SFTPAttributes] | int:
        try:
            local = self._local(path)
            out = []
            for name in sorted(os.listdir(local)):
                attr = SFTPAttributes.from_stat(os.lstat(os.path.join(local, name)))
                attr.filename = name
                out.append(attr)
            return out
        except PathRefused:
            return SFTP_PERMISSION_DENIED
        except OSError as exc:
            return _errno_to_sftp(exc)

    def stat(self, path: str) -> SFTPAttributes | int:
        try:
            return SFTPAttributes.from_stat(os.stat(self._local(path)))
        except PathRefused:
            return SFTP_PERMISSION_DENIED
        except OSError as exc:
            return _errno_to_sftp(exc)

    def lstat(self, path: str) -> SFTPAttributes | int:
        try:
            return SFTPAttributes.from_stat(os.lstat(self._local(path, follow_last=False)))
        except PathRefused:
            return SFTP_PERMISSION_DENIED
        except OSError as exc:
            return _errno_to_sftp(exc)

    def open(self, path: str, flags: int, attr: SFTPAttributes) -> SFTPHandle | int:
        try:
            local = self._local(path)
            mode = getattr(attr, "st_mode", None) or 0o644
            fd = os.open(local, flags | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOFOLLOW", 0), mode & 0o777)
        except PathRefused:
            return SFTP_PERMISSION_DENIED
        except OSError as exc:
            return _errno_to_sftp(exc)
        if flags & os.O_WRONLY:
            fmode = "ab" if flags & os.O_APPEND else "wb"
        elif flags & os.O_RDWR:
            fmode = "a+b" if flags & os.O_APPEND else "r+b"
        else:
            fmode = "rb"
        try:
            handle_file = os.fdopen(fd, fmode)
        except OSError as exc:
            os.close(fd)
            return _errno_to_sftp(exc)
        handle = SFTPHandle(flags)
        handle.filename = local  # type: ignore[attr-defined]
        handle.readfile = handle_file  # type: ignore[attr-defined]
        handle.writefile = handle_file  # type: ignore[attr-defined]
        return handle

    def remove(self, path: str) -> int:
        try:
            local = self._local(path, follow_last=False)
            if os.path.isdir(local) and not os.path.islink(local):
                return SFTP_FAILURE
            os.remove(local)
            return SFTP_OK
        except PathRefused:
            return SFTP_PERMISSION_DENIED
        except OSError as exc:
            return _errno_to_sftp(exc)

    def _rename(self, oldpath: str, newpath: str, *, overwrite: bool) -> int:
        try:
            old_local = self._local(oldpath, follow_last=False)
            new_local = self._local(newpath, follow_last=False)
            if not os.path.lexists(old_local):
                return SFTP_NO_SUCH_FILE
            parent = os.path.dirname(new_local)
            virtual_parent = posixpath.dirname(self._virtual(newpath))
            # The drop provisions archive/<payer>/ on first use, as the payer portal does.
            if not os.path.isdir(parent) and posixpath.dirname(virtual_parent) == "/archive":
                os.makedirs(parent, exist_ok=True)
            if os.path.lexists(new_local) and not overwrite:
                return SFTP_FAILURE  # SFTP v3 rename never replaces (OpenSSH behaves the same)
            if overwrite:
                os.replace(old_local, new_local)
            else:
                os.rename(old_local, new_local)
            return SFTP_OK
        except PathRefused:
            return SFTP_PERMISSION_DENIED
        except OSError as exc:
            return _errno_to_sftp(exc)

    def rename(self, oldpath: str, newpath: str) -> int:
        return self._rename(oldpath, newpath, overwrite=False)

    def posix_rename(self, oldpath: str, newpath: str) -> int:
        return self._rename(oldpath, newpath, overwrite=True)

    def mkdir(self, path: str, attr: SFTPAttributes) -> int:
        try:
            local = self._local(path, follow_last=False)
            mode = getattr(attr, "st_mode", None) or 0o755
            os.mkdir(local, mode & 0o777)
            return SFTP_OK
        except PathRefused:
            return SFTP_PERMISSION_DENIED
        except OSError as exc:
            return _errno_to_sftp(exc)

    def rmdir(self, path: str) -> int:
        try:
            local = self._local(path, follow_last=False)
            if local == self.root:
                return SFTP_PERMISSION_DENIED
            os.rmdir(local)
            return SFTP_OK
        except PathRefused:
            return SFTP_PERMISSION_DENIED
        except OSError as exc:
            return _errno_to_sftp(exc)

    def chattr(self, path: str, attr: SFTPAttributes) -> int:
        """Accepted and ignored (clients set times after upload); the drop keeps its own modes."""
        try:
            self._local(path)
            return SFTP_OK
        except PathRefused:
            return SFTP_PERMISSION_DENIED

    def symlink(self, target_path: str, path: str) -> int:
        return SFTP_PERMISSION_DENIED  # a client-made symlink is the classic jail escape

    def readlink(self, path: str) -> str | int:
        return SFTP_OP_UNSUPPORTED


# --------------------------------------------------------------------------- SSH server


class DropServer(paramiko.ServerInterface):
    """Authentication for the drop: the shared password, or the sandbox client's public key."""

    def __init__(self, authorized_key: paramiko.PKey | None) -> None:
        self.authorized_key = authorized_key

    def get_allowed_auths(self, username: str) -> str:
        return "publickey,password"

    def check_auth_password(self, username: str, password: str) -> int:
        if username == SFTP_USER and password == SFTP_PASSWORD:
            return AUTH_SUCCESSFUL
        return AUTH_FAILED

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        if (
            username == SFTP_USER
            and self.authorized_key is not None
            and key.get_name() == self.authorized_key.get_name()
            and key.asbytes() == self.authorized_key.asbytes()
        ):
            return AUTH_SUCCESSFUL
        return AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        return OPEN_SUCCEEDED if kind == "session" else OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_subsystem_request(self, channel: paramiko.Channel, name: str) -> bool:
        return name == "sftp" and super().check_channel_subsystem_request(channel, name)


class SftpDrop:
    """The listening server: accepts on 127.0.0.1, one thread per connection, clean stop."""

    def __init__(self, base_dir: Path, port: int = 0, host: str = HOST) -> None:
        self.base_dir = Path(base_dir)
        self.root = self.base_dir / "sftp_root"
        self.host = host
        self.requested_port = port
        self.host_key = load_or_create_key(self.base_dir / "sftp_host_key")
        _, self.client_key = client_key_pair(self.base_dir)
        self._sock: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._transports: set[paramiko.Transport] = set()
        self._workers: set[threading.Thread] = set()

    @property
    def port(self) -> int:
        if self._sock is None:
            raise RuntimeError("SFTP server not started")
        return int(self._sock.getsockname()[1])

    def start(self) -> None:
        for folder in ("inbound", "archive"):
            (self.root / folder).mkdir(parents=True, exist_ok=True)
        for payer in (self.root / "inbound").iterdir():
            if payer.is_dir():
                (self.root / "archive" / payer.name).mkdir(exist_ok=True)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.requested_port))
        sock.listen(16)
        sock.settimeout(0.5)  # lets the accept loop notice stop() promptly
        self._sock = sock
        self._stopping.clear()
        self._accept_thread = threading.Thread(target=self._accept_loop, name="sandbox-sftp-accept", daemon=True)
        self._accept_thread.start()

    def _accept_loop(self) -> None:
        assert self._sock is not None
        while not self._stopping.is_set():
            try:
                conn, _addr = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            worker = threading.Thread(target=self._serve, args=(conn,), name="sandbox-sftp-conn", daemon=True)
            with self._lock:
                self._workers.add(worker)
            worker.start()

    def _serve(self, conn: socket.socket) -> None:
        transport: paramiko.Transport | None = None
        try:
            conn.settimeout(None)
            transport = paramiko.Transport(conn)
            transport.set_log_channel(SSH_LOG_CHANNEL)
            transport.add_server_key(self.host_key)
            transport.set_subsystem_handler("sftp", SFTPServer, RootedSFTP, root=str(self.root))
            with self._lock:
                self._transports.add(transport)
            transport.start_server(server=DropServer(self.client_key))
            while transport.is_active() and not self._stopping.is_set():
                self._stopping.wait(0.2)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            log.debug("sftp connection ended: %s", exc)
        finally:
            if transport is not None:
                transport.close()
                with self._lock:
                    self._transports.discard(transport)
            else:
                conn.close()
            with self._lock:
                self._workers.discard(threading.current_thread())

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, close every session, wait for the threads."""
        self._stopping.set()
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
        if self._accept_thread is not None:
            self._accept_thread.join(timeout)
        with self._lock:
            transports = list(self._transports)
            workers = list(self._workers)
        for transport in transports:
            transport.close()
        for worker in workers:
            worker.join(timeout)


__all__ = ["DropServer", "RootedSFTP", "SftpDrop", "client_key_pair", "load_or_create_key"]
