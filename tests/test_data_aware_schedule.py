"""The nightly chain runs on data: asset schedules, event extras, the close's deadlines and guard.

The DAG objects are read from a real ``DagBag`` (what the dag-processor serialises); the deadline
callback runs against a real store and a real SMTP sink. The asset-triggered run itself (the
scheduler creating runs from events) is in ``test_asset_chain_scheduler.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
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
        mp.setenv("AIRFLOW__CORE__PLUGINS_FOLDER", str(DAGS_DIR.parent / "plugins"))  # CloseEmailDue's plugin
        from airflow.dag_processing.dagbag import DagBag

        folder = tmp_path_factory.mktemp("dags")  # the chain's four DAG files only: a quarter of the parse
        for dag_id in ("ehr_ingest", "payer_remittance", "erp_posting", "claims_reconciliation"):
            (folder / f"{dag_id}.py").symlink_to(DAGS_DIR / f"{dag_id}.py")
        yield DagBag(dag_folder=str(folder))


@contextlib.contextmanager
def _plugins_from(folder: Path) -> Iterator[None]:
    """Airflow's plugin manager loading ``folder`` as a scheduler would.

    The folder is read once per process (``settings.PLUGINS_FOLDER`` at import, the plugin lists
    cached): a test worker that imported Airflow for another test first would otherwise keep that
    test's plugins and never see ours.
    """
    from airflow import plugins_manager, settings

    def clear() -> None:
        plugins_manager._get_plugins.cache_clear()
        plugins_manager.get_deadline_references_plugins.cache_clear()

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(settings, "PLUGINS_FOLDER", str(folder))
        clear()
        try:
            yield
        finally:
            clear()


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
    # The email deadline is computed per run on the local calendar (CloseEmailDue), not a fixed interval.
    assert type(names["email_by"].reference).__name__ == "CloseEmailDue"
    assert names["email_by"].interval == dt.timedelta(0)
    assert names["email_by"].callback.path == "carefabric_airflow.deadlines.close_deadline_missed"
    assert names["max_duration"].interval == dt.timedelta(minutes=60)
    # The scheduler's side reads the custom reference back (it finds the class through the plugin).
    from airflow.serialization.decoders import decode_deadline_alert

    from carefabric_airflow.deadlines import CloseEmailDue

    with _plugins_from(DAGS_DIR.parent / "plugins"):
        decoded = {a.name: a for a in map(decode_deadline_alert, dag.deadline)}
    assert isinstance(decoded["email_by"].reference.inner_ref, CloseEmailDue)
    assert decoded["max_duration"].reference.reference_name == "DagRunQueuedAtDeadline"


@pytest.mark.parametrize(("start", "tz", "due_utc"), [
    # The fallback run's interval starts on the business day at the cron's time (05:00 local);
    # the email is due at 06:00 local the next morning, whatever the clocks did overnight.
    ("2026-03-02T05:00:00+00:00", "UTC", "2026-03-03T06:00:00+00:00"),
    ("2026-03-06T10:00:00+00:00", "America/New_York", "2026-03-07T11:00:00+00:00"),  # EST both days
    ("2026-03-07T10:00:00+00:00", "America/New_York", "2026-03-08T10:00:00+00:00"),  # spring forward: 23 h day
    ("2026-10-31T09:00:00+00:00", "America/New_York", "2026-11-01T11:00:00+00:00"),  # fall back: 25 h day
    ("2026-03-28T04:00:00+00:00", "Europe/Berlin", "2026-03-29T04:00:00+00:00"),  # CET -> CEST
])
def test_close_email_due_follows_the_local_calendar(start: str, tz: str, due_utc: str) -> None:
    from carefabric_airflow.data_assets import close_email_due

    created = dt.datetime.fromisoformat(start) + dt.timedelta(days=1)
    assert close_email_due(dt.datetime.fromisoformat(start), created, "06:00", tz) == dt.datetime.fromisoformat(due_utc)


@pytest.mark.parametrize(("created", "due_utc"), [
    ("2026-03-08T06:30:00+00:00", "2026-03-08T10:00:00+00:00"),  # 01:30 EST, before the clocks change
    ("2026-03-08T10:00:00+00:00", "2026-03-09T10:00:00+00:00"),  # exactly 06:00 EDT: the next morning
    ("2026-03-03T23:00:00+00:00", "2026-03-04T11:00:00+00:00"),  # 18:00 EST: tomorrow 06:00
])
def test_asset_triggered_close_is_due_at_the_next_deadline_time(created: str, due_utc: str) -> None:
    from carefabric_airflow.data_assets import close_email_due

    due = close_email_due(None, dt.datetime.fromisoformat(created), "06:00", "America/New_York")
    assert due == dt.datetime.fromisoformat(due_utc)


def test_max_duration_takes_decimal_minutes(monkeypatch: pytest.MonkeyPatch) -> None:
    from carefabric_airflow import deadlines

    monkeypatch.setenv("CAREFABRIC_CLOSE_MAX_MINUTES", "0.02")
    alerts = {a.name: a for a in deadlines.close_deadlines()}
    assert alerts["max_duration"].interval == dt.timedelta(seconds=1.2)
    assert alerts["max_duration"].callback.kwargs == {"deadline_name": "finish within 1.2 s"}
    monkeypatch.setenv("CAREFABRIC_CLOSE_MAX_MINUTES", "0")
    with pytest.raises(ValueError, match="positive"):
        deadlines.close_deadlines()


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


@pytest.mark.parametrize(("zone", "cutoff_utc", "day"), [
    ("Asia/Tokyo", dt.datetime(2026, 3, 4, 18, tzinfo=dt.UTC), dt.date(2026, 3, 5)),  # 03:00 JST on the 5th
    ("Europe/Berlin", dt.datetime(2026, 3, 5, 2, tzinfo=dt.UTC), dt.date(2026, 3, 5)),
    ("America/New_York", dt.datetime(2026, 3, 5, 8, tzinfo=dt.UTC), dt.date(2026, 3, 5)),
])
def test_a_cutoff_run_closes_the_hospitals_local_day_east_and_west_of_utc(
        monkeypatch: pytest.MonkeyPatch, zone: str, cutoff_utc: dt.datetime, day: dt.date) -> None:
    """The posting cut-off run's interval starts yesterday at 03:00 local; Airflow gives it in UTC."""
    from carefabric_airflow import business_date

    monkeypatch.setenv("CAREFABRIC_TIMEZONE", zone)
    assert business_date({"params": {}, "triggering_asset_events": {}, "data_interval_start": cutoff_utc}) == day


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
        context = {"dag_run": {"dag_id": "claims_reconciliation", "dag_run_id": "scheduled__2026-03-02T05:00:00+00:00",
                               "state": "running", "conf": {}, "logical_date": "2026-03-02T05:00:00+00:00",
                               "data_interval_start": "2026-03-02T05:00:00+00:00"},
                   "deadline": {"id": "x", "deadline_time": "2026-03-03T06:00:00+00:00"}}
        first = asyncio.run(deadlines.close_deadline_missed("email by 06:00", context=json.loads(json.dumps(context))))
        again = asyncio.run(deadlines.close_deadline_missed("finish within 60 min", context=context))
        # Noticed only after the run had succeeded (another night): recorded resolved, no "not finished" notice.
        done = {"dag_run": {**context["dag_run"], "state": "success", "conf": {"business_date": "2026-03-01"}},
                "deadline": context["deadline"]}
        late = asyncio.run(deadlines.close_deadline_missed("email by 06:00", context=done))
    finally:
        sink.stop()
    assert first == again  # one exception per night, counted twice
    with session_scope(engine) as s:
        assert (s.get(ExceptionRecord, late).status, s.get(ExceptionRecord, late).record_key) == (
            "resolved", "claims_reconciliation:2026-03-01")
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


def test_a_miss_of_an_asset_triggered_run_is_keyed_by_run_and_resolved_by_its_close(engine: Engine) -> None:
    """No business date in the scheduler's context: the run id keys the miss, and close_day resolves it."""
    due = dt.datetime(2026, 3, 3, 4, 0, tzinfo=dt.UTC)
    run_id = "asset_triggered__2026-03-03T03:00:00+00:00_abc"
    exc_id = nightly_close.record_deadline_miss(engine, dag_id="claims_reconciliation", run_id=run_id, deadline_time=due,
                                                business_date=None, deadline_name="finish within 60 min")
    assert nightly_close.resolve_deadline_misses(engine, DAY) == 0  # another run's close: not this one
    assert nightly_close.resolve_deadline_misses(engine, DAY, run_id=run_id) == 1
    with session_scope(engine) as s:
        exc = s.get(ExceptionRecord, exc_id)
        assert (exc.record_key, exc.status) == (f"claims_reconciliation:{run_id}", "resolved")


def test_a_miss_noticed_after_the_run_succeeded_is_recorded_resolved(engine: Engine) -> None:
    exc_id = nightly_close.record_deadline_miss(
        engine, dag_id="claims_reconciliation", run_id="scheduled__x", deadline_time=dt.datetime(2026, 3, 3, 6, tzinfo=dt.UTC),
        business_date=DAY, deadline_name="email by 06:00", finished=True)
    with session_scope(engine) as s:
        exc = s.get(ExceptionRecord, exc_id)
        assert (exc.status, exc.attempts) == ("resolved", 1)  # late, not lost; the metrics still count it
