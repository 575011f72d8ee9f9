"""Bank BAI2 statements over SFTP, handed from ``fetch`` to ``process`` through the handoff store.

The fetch itself (listing, unsafe names, the server-side archive) is the domain's
``carefabric.interfaces.bank_statement.fetch_statements`` on the ``SFTPHook``'s managed
connection; it downloads into a private temporary folder of this task, from which each statement
is staged at once (``carefabric_airflow.handoff``), so ``process`` may run on any worker.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.providers.sftp.hooks.sftp import SFTPHook
    from sqlalchemy.engine import Engine

INTERFACE = "bank_statement"


def fetch_bank_statements(hook: SFTPHook, engine: Engine, *, inbound: str) -> list[str]:
    """Staged URLs of every statement fetched (originals archived on the server)."""
    from carefabric.interfaces.bank_statement import fetch_statements
    from carefabric_airflow.handoff import stage_file

    with hook.get_managed_conn() as sftp, tempfile.TemporaryDirectory(prefix="carefabric_bank_") as tmp:
        paths = fetch_statements(sftp, engine, Path(tmp), inbound=inbound)
        return [stage_file(path, INTERFACE) for path in paths]


def process_staged_statement(url: str, engine: Engine, *, business_date: dt.date) -> dict[str, Any]:
    """``process_statement`` on a staged statement; the staged copy is deleted once processed."""
    from carefabric.interfaces.bank_statement import process_statement
    from carefabric_airflow.handoff import consume

    return consume(url, lambda local: process_statement(local, engine, business_date=business_date))
