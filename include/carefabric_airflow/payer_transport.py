"""Payer 835 transport: SFTP with the sftp provider's ``SFTPHook`` (list, stage, archive on the
server), and the staged file handed to the domain's ``process_file``.

The hook's helpers do the transport (``list_directory``, ``isdir``, ``retrieve_file`` streamed
into the handoff store, ``create_directory`` and ``path_exists`` for the server's archive); the
one move the hook has no helper for (``rename``) runs on its managed connection. What a listed
name may be, and what a refused one becomes, is the domain's
(``carefabric.interfaces.payer_remittance.accept_remote_path``).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.providers.sftp.hooks.sftp import SFTPHook
    from sqlalchemy.engine import Engine

INTERFACE = "payer_remittance"


def list_remittances(hook: SFTPHook, inbound: str = "/inbound") -> list[str]:
    """``<inbound>/<payer>/<name>.835`` of every waiting file, sorted (names unchecked yet)."""
    found: list[str] = []
    with hook.get_managed_conn():  # one SSH session for the whole listing
        for payer in sorted(hook.list_directory(inbound) or []):
            folder = f"{inbound}/{payer}"
            if hook.isdir(folder):
                names = sorted(hook.list_directory(folder) or [])
                found += [f"{folder}/{name}" for name in names if name.lower().endswith(".835")]
    return found


def fetch_remittance(hook: SFTPHook, remote_path: str, engine: Engine, *, inbound: str = "/inbound",
                     archive: str = "/archive") -> dict[str, Any] | None:
    """Stage one file for ``process`` and move the original into ``<archive>/<payer>/``.

    Returns ``{"path": <staged URL>, "payer": ...}``, or None for a name the domain refused
    (an exception is open for it and it stays on the server). The original moves only after its
    bytes are staged, so a failure before that leaves it waiting for the next run.
    """
    from carefabric.interfaces.payer_remittance import accept_remote_path
    from carefabric_airflow.handoff import discard, new_slot

    accepted = accept_remote_path(engine, remote_path, inbound)
    if accepted is None:
        return None
    payer, name = accepted
    target = new_slot(INTERFACE, payer) / name
    target.parent.mkdir(parents=True, exist_ok=True)
    with hook.get_managed_conn():
        try:
            with target.open("wb") as out:
                hook.retrieve_file(remote_path, out)
        except BaseException:
            discard(target)
            raise
        archive_on_server(hook, remote_path, f"{archive}/{payer}", name)
    return {"path": str(target), "payer": payer}


def archive_on_server(hook: SFTPHook, remote_path: str, folder: str, name: str) -> str:
    """Move a fetched file into the server's archive folder; a name archived before (a re-send)
    keeps both copies, the later one prefixed with the UTC time. Returns the new path."""
    hook.create_directory(folder)
    target = f"{folder}/{name}"
    if hook.path_exists(target):
        target = f"{folder}/{dt.datetime.now(dt.UTC):%Y%m%d%H%M%S}_{name}"
    with hook.get_managed_conn() as sftp:
        sftp.rename(remote_path, target)
    return target


def process_staged(fetched: dict[str, Any], engine: Engine, **kwargs: Any) -> dict[str, Any]:
    """``process_file`` on a local copy of what ``fetch_remittance`` staged; the staged copy is
    deleted once processed, and kept for the task's retry if processing fails."""
    from carefabric.interfaces.payer_remittance import process_file
    from carefabric_airflow.handoff import consume

    return consume(fetched["path"], lambda local: process_file(local, engine, payer_folder=fetched["payer"], **kwargs))
