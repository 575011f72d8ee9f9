"""The nightly chain runs on data: asset schedules, event extras, the close's deadlines and guard.

The DAG objects are read from a real ``DagBag`` (what the dag-processor serialises); the deadline
callback runs against a real store and a real SMTP sink. The asset-triggered run itself (the
scheduler creating runs from events) is in ``test_asset_chain_scheduler.py``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import scenario
from sqlalchemy.engine import Engine

from carefabric import nightly_close
from carefabric.store.db import session_scope
from carefabric.store.models import ErpPosting, ExceptionRecord, ReconciliationRun

DAGS_DIR = Path(__file__).resolve().parents[1] / "dags"
DAY = dt.date(2026, 3, 2)


@pytest.fixture(scope="module")
def dagbag(tmp_path_factory: pytest.TempPathFactory) -> object:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW_HOME", str(tmp_path_factory.mktemp("airflow_home")))
        mp.setenv("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
        from airflow.dag_processing.dagbag import DagBag

        yield DagBag(dag_folder=str(DAGS_DIR))


def _roundtrip(dag: object) -> object:
    """The DAG as the scheduler sees it (serialised, then read back)."""
    from airflow.serialization.serialized_objects import DagSerialization

    return DagSerialization.from_dict(json.loads(json.dumps(DagSerialization.to_dict(dag))))


def _asset_uris(condition: object) -> set[str]:
    return {key.uri for key, _ in condition.iter_assets()}


def test_posting_waits_for_both_feeds_or_its_cutoff(dagbag: object) -> None:
    from airflow.timetables.assets import AssetOrTimeSchedule

    from carefabric_airflow.data_assets import CHARGES, REMITTANCES

    dag = _roundtrip(dagbag.dags["erp_posting"])
    assert isinstance(dag.timetable, AssetOrTimeSchedule)
    assert _asset_uris(dag.timetable.asset_condition) == {CHARGES.uri, REMITTANCES.uri}
    assert type(dag.timetable.asset_condition).__name__ == "SerializedAssetAll"  # both, not either
    assert dag.timetable.timetable.summary == "0 3 * * *"


def test_close_follows_postings_with_a_time_fallback_and_deadlines(dagbag: object) -> None:
    from airflow.timetables.assets import AssetOrTimeSchedule

    from carefabric_airflow.data_assets import POSTINGS

    dag = _roundtrip(dagbag.dags["claims_reconciliation"])
    assert isinstance(dag.timetable, AssetOrTimeSchedule)
    assert _asset_uris(dag.timetable.asset_condition) == {POSTINGS.uri}
    source = dagbag.dags["claims_reconciliation"]
    names = {alert.name: alert for alert in source.deadline}
    # Fallback run at 05:00 of the business day; email due 06:00 the next morning.
    assert names["email_by"].interval == dt.timedelta(hours=25)
    assert names["email_by"].callback.path == "carefabric_airflow.deadlines.close_deadline_missed"
    assert names["max_duration"].interval == dt.timedelta(minutes=60)


@pytest.mark.parametrize(("dag_id", "task_id", "uri"), [
    ("ehr_ingest", "route_to_billing", "carefabric://ehr/charges"),
    ("payer_remittance", "summarize", "carefabric://payer/remittances"),
    ("erp_posting", "settle_and_judge", "carefabric://erp/postings"),
    ("claims_reconciliation", "close_day", "carefabric://finance/reconciliation"),
])
def test_producers_update_the_assets_consumers_wait_for(dagbag: object, dag_id: str, task_id: str, uri: str) -> None:
    task = dagbag.dags[dag_id].get_task(task_id)
    assert [o.uri for o in task.outlets] == [uri]


def test_sensor_dags_poll_so_manual_runs_never_queue_behind_a_sleeping_sensor(dagbag: object) -> None:
    for dag_id in ("ehr_ingest", "payer_remittance"):
        dag = _roundtrip(dagbag.dags[dag_id])
        assert dag.params["wait_for_files"] is False, dag_id  # scheduled runs take what is there
        assert dag.timetable.summary.startswith("*/"), dag_id  # and come back soon


@pytest.mark.parametrize(("cron", "due", "hours"), [("0 5 * * *", "06:00", 25.0), ("30 4 * * *", "06:00", 25.5),
                                                    ("0 5 * * *", "04:00", 23.0)])
def test_close_deadline_interval(cron: str, due: str, hours: float) -> None:
    from carefabric_airflow.data_assets import close_deadline_interval

    assert close_deadline_interval(cron, due) == dt.timedelta(hours=hours)


def test_close_deadline_needs_a_daily_cron() -> None:
    from carefabric_airflow.data_assets import close_deadline_interval

    with pytest.raises(ValueError, match="daily"):
        close_deadline_interval("*/5 * * * *", "06:00")


def test_event_extra_carries_the_date_and_counts_only() -> None:
    from carefabric_airflow.data_assets import event_extra

    extra = event_extra(DAY, {"files": 3, "by_status": {"processed": 3}, "outcomes": ["sent"], "note": None})
    assert extra == {"business_date": "2026-03-02", "files": 3, "by_status": {"processed": 3}, "note": None}


def test_business_date_comes_from_the_triggering_events() -> None:
    from carefabric_airflow import business_date

    def event(day: str | None) -> SimpleNamespace:
        return SimpleNamespace(extra={"business_date": day} if day else {})

    context = {"params": {}, "triggering_asset_events": {"a": [event("2026-03-01")], "b": [event("2026-03-02"), event(None)]}}
    assert business_date(context) == DAY
    assert business_date({**context, "params": {"business_date": "2026-02-01"}}) == dt.date(2026, 2, 1)
    interval = {"params": {}, "triggering_asset_events": {}, "data_interval_start": dt.datetime(2026, 3, 5, 3)}
    assert business_date(interval) == dt.date(2026, 3, 5)


def test_announce_skips_a_run_that_found_nothing() -> None:
    from airflow.sdk.exceptions import AirflowSkipException

    from carefabric_airflow.data_assets import CHARGES, announce

    outlet = SimpleNamespace(extra={})
    context = {"outlet_events": {CHARGES: outlet}}
    with pytest.raises(AirflowSkipException):
        announce(context, CHARGES, DAY, {"files": 0}, require="files")
    assert outlet.extra == {}
    announce(context, CHARGES, DAY, {"files": 2, "routed": 40}, require="files")
    assert outlet.extra == {"business_date": "2026-03-02", "files": 2, "routed": 40}


# --------------------------------------------------------------------------- the close, on a real store


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    with scenario.migrated_store(store_url) as eng:
        yield eng


def _posting(session: object, at: dt.datetime, key: str) -> None:
    session.add(ErpPosting(kind="journal", external_id=key, source="CHARGES", company="C1", business_date=DAY,
                           status="posted", payload={}, posted_at=at))


def test_day_closed_only_after_a_reconciliation_newer_than_the_last_posting(engine: Engine) -> None:
    t0 = dt.datetime(2026, 3, 3, 3, 0, tzinfo=dt.UTC)
    with session_scope(engine) as s:
        _posting(s, t0, "J1")
    assert not nightly_close.day_closed(engine, DAY)
    with session_scope(engine) as s:
        s.add(ReconciliationRun(business_date=DAY, status="completed", finished_at=t0 + dt.timedelta(minutes=10)))
    assert nightly_close.day_closed(engine, DAY)
    with session_scope(engine) as s:  # a late posting (a replay) opens the day again
        _posting(s, t0 + dt.timedelta(hours=1), "J2")
    assert not nightly_close.day_closed(engine, DAY)


def test_missed_deadline_opens_one_exception_emails_finance_and_resolves_when_closed(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import carefabric_airflow
    from carefabric_airflow import deadlines
    from sandbox.smtp_sink import SmtpSink

    sink = SmtpSink(tmp_path, 0, "127.0.0.1")
    sink.start()
    try:
        monkeypatch.setattr(carefabric_airflow, "engine", lambda: engine)
        monkeypatch.setenv("AIRFLOW_CONN_FINANCE_SMTP", json.dumps({
            "conn_type": "smtp", "host": "127.0.0.1", "port": sink.port,
            "extra": {"from_email": "carefabric@hospital.example", "disable_tls": True, "disable_ssl": True}}))
        monkeypatch.setenv("AIRFLOW_VAR_CAREFABRIC_FINANCE_RECIPIENTS", "finance@hospital.example")
        # The context Airflow's scheduler hands the callback (Deadline.handle_miss).
        context = {"dag_run": {"dag_id": "claims_reconciliation", "run_id": "scheduled__2026-03-02T05:00:00+00:00",
                               "conf": {}, "logical_date": "2026-03-02T05:00:00+00:00",
                               "data_interval_start": "2026-03-02T05:00:00+00:00"},
                   "deadline": {"id": "x", "deadline_time": "2026-03-03T06:00:00+00:00"}}
        first = asyncio.run(deadlines.close_deadline_missed("email by 06:00", context=json.loads(json.dumps(context))))
        again = asyncio.run(deadlines.close_deadline_missed("finish within 60 min", context=context))
    finally:
        sink.stop()
    assert first == again  # one exception per night, counted twice
    with session_scope(engine) as s:
        exc = s.get(ExceptionRecord, first)
        assert (exc.reason_code, exc.status, exc.attempts, exc.record_key) == (
            "DEADLINE_MISSED", "open", 2, "claims_reconciliation:2026-03-02")
    mails = sorted((tmp_path / "mail").glob("*.eml"))
    assert len(mails) == 2
    message = email.message_from_bytes(mails[0].read_bytes(), policy=email.policy.default)
    assert "nightly close 2026-03-02 late" in message["Subject"]
    assert f"Exception #{first}" in message.get_body(("html", "plain")).get_content()
    assert nightly_close.resolve_deadline_misses(engine, DAY) == 1
    with session_scope(engine) as s:
        assert s.get(ExceptionRecord, first).status == "resolved"
