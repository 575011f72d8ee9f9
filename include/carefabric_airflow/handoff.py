"""Files handed from one task to the next through ``ObjectStoragePath``, never a worker's disk.

One setting, ``CAREFABRIC_HANDOFF_URL``: any fsspec URL Airflow's object storage understands
(``s3://aws_default@bucket/carefabric/handoff``: the connection id before the ``@``; ``gs://``,
``abfs://``, ...; each needs its provider installed, e.g. ``apache-airflow-providers-amazon``
for ``s3://``). Default: ``file://<CAREFABRIC_DATA_DIR>/handoff``, which is right for the sandbox,
one machine, or workers sharing that folder (the compose file's ``carefabric-data`` volume on one
Docker host); workers on several hosts need an object store here.

Why a handoff store rather than one fetch-and-process task (``payer_remittance`` and
``bank_statement``): ``fetch`` moves
the original into the SFTP server's archive as soon as it has the bytes, so a ``process`` that
fails (database restart, worker killed) must be retried from a copy that outlives its worker;
and the two steps have different limits (SFTP sessions vs CPU). A staged file is deleted once
processed; the integration store keeps its own archive copy.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

SETTING = "CAREFABRIC_HANDOFF_URL"


def handoff_url() -> str:
    """The handoff store's URL (``CAREFABRIC_HANDOFF_URL``, else the data folder's ``handoff``)."""
    from carefabric.config import data_dir

    return os.environ.get(SETTING) or f"file://{data_dir().resolve() / 'handoff'}"


def handoff_root() -> Any:
    """The ``ObjectStoragePath`` under which tasks stage files for each other."""
    from airflow.sdk import ObjectStoragePath

    return ObjectStoragePath(handoff_url())


def new_slot(interface: str, *parts: str) -> Any:
    """A fresh staging folder (``<root>/<interface>/<parts>/<uuid>/``): two deliveries of one
    name, or a retried fetch, never overwrite a copy another task may still read."""
    return handoff_root().joinpath(interface, *parts, uuid.uuid4().hex)


def staged(url: str) -> Any:
    """The ``ObjectStoragePath`` a previous task handed on (as its URL in XCom)."""
    from airflow.sdk import ObjectStoragePath

    return ObjectStoragePath(url)


def stage_file(local: Path, interface: str, *parts: str) -> str:
    """Upload a local file into a fresh slot; returns the staged URL for the next task."""
    target = new_slot(interface, *parts) / local.name
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with local.open("rb") as src, target.open("wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    except BaseException:
        discard(target)
        raise
    return str(target)


def consume(url: str, handler: Callable[[Path], T]) -> T:
    """Run ``handler`` on a local copy of a staged file, then delete the staged file. If the
    handler fails, the staged file stays for the task's retry."""
    path = staged(url)
    with local_copy(path) as local:
        result = handler(local)
    discard(path)
    return result


@contextlib.contextmanager
def local_copy(path: Any) -> Iterator[Path]:
    """A private local copy of a staged file under its own name, removed afterwards: readers that
    need a real file (pyx12, the streaming X12 reader) get one within this task only."""
    with tempfile.TemporaryDirectory(prefix="carefabric_handoff_") as tmp:
        local = Path(tmp) / path.name
        with path.open("rb") as src, local.open("wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        yield local


def discard(path: Any) -> None:
    """Delete a staged file and its (now empty) slot once the consumer is done with it."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    with contextlib.suppress(OSError, NotImplementedError):  # object stores have no real folders
        path.parent.rmdir()
