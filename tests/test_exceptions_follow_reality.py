"""Exceptions follow reality: they close on their own once what they reported went away.

- a task failure (``PEER_UNAVAILABLE``/``TASK_FAILED``) closes when the same task of the same run
  succeeds (an operator cleared and re-ran it), with an event naming the try;
- an ``X12_UNREADABLE`` for a half-uploaded 835 closes when the complete file under the same name
  is read;
- ``ERP_REJECTED`` and ``ERP_UNCONFIRMED`` close when their document posts (see the fault suite).
"""

from __future__ import annotations

from pathlib import Path

import scenario
from sqlalchemy.engine import Engine

from carefabric.interfaces import payer_remittance
from carefabric.interfaces.common import record_task_failure, record_task_success
from carefabric.store.db import session_scope
from carefabric.store.models import ExceptionRecord

DAY = scenario.BUSINESS_DATE


def test_a_task_failure_closes_when_the_same_task_of_the_same_run_succeeds(engine: Engine) -> None:
    with session_scope(engine) as s:
        record_task_failure(s, interface="erp_posting", task_id="send_documents", run_id="manual__2024-03-05",
                            error="TransientError: ERP unavailable", transient=True)
        record_task_failure(s, interface="erp_posting", task_id="send_documents", run_id="manual__2024-03-06",
                            error="TransientError: ERP unavailable", transient=True)
    with session_scope(engine) as s:
        assert record_task_success(s, task_id="send_documents", run_id="manual__2024-03-05", try_number=3) == 1
    rows = {e.record_key: e for e in scenario.exceptions(engine, ExceptionRecord.reason_code == "PEER_UNAVAILABLE")}
    assert rows["manual__2024-03-05:send_documents"].status == "resolved"
    assert rows["manual__2024-03-06:send_documents"].status == "open"  # another run: still failing
    with session_scope(engine) as s:
        closed = s.get(ExceptionRecord, rows["manual__2024-03-05:send_documents"].id)
        assert closed is not None and closed.events[-1].note == "task succeeded on try 3"


def test_an_unreadable_half_upload_closes_when_the_complete_file_is_read(engine: Engine, day_dir: Path,
                                                                         tmp_path: Path) -> None:
    complete = next(p for p in sorted((day_dir / "sftp").glob("*/*.835")) if "_resend" not in p.name)
    half = tmp_path / "upload" / complete.name
    half.parent.mkdir()
    half.write_bytes(complete.read_bytes()[: len(complete.read_bytes()) // 2])
    first = payer_remittance.process_file(half, engine, payer_folder=complete.parent.name, business_date=DAY)
    assert first["status"] == "rejected"
    (unreadable,) = scenario.exceptions(engine, ExceptionRecord.reason_code == "X12_UNREADABLE")
    assert (unreadable.record_key, unreadable.status) == (complete.name, "open")

    payer_remittance.process_file(complete, engine, payer_folder=complete.parent.name, business_date=DAY)
    (after,) = scenario.exceptions(engine, ExceptionRecord.id == unreadable.id)
    assert after.status == "resolved"
