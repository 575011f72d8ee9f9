"""Operator CLI: ``carefabric db|crosswalk|exceptions|trace|health`` against a scratch SQLite store.

JSON on stdout, exit 0; bad input, unknown ids, an unmigrated store: one line on stderr and exit
code 2, never a traceback. Every change is in the audit log with its actor.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import pwd
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from carefabric.cli import main
from carefabric.store.db import get_engine, head_revision, session_scope
from carefabric.store.models import AuditLog, CrosswalkHistory, ExceptionRecord

#: The actor of every CLI change: the OS account running it (as the kernel says, not $USER).
ME = f"cli:{pwd.getpwuid(os.geteuid()).pw_name}"

BUSINESS_DATE = dt.date(2026, 11, 23)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def usage_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """argparse rejects the command line: SystemExit(2) and a single line on stderr."""
    with pytest.raises(SystemExit) as info:
        main(list(argv))
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("carefabric"), err
    return err


def one_line_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == "" and err.count("\n") == 1 and err.startswith("carefabric: "), (code, out, err)
    return err


def audit_rows(url: str, action: str) -> list[AuditLog]:
    engine = get_engine(url)
    try:
        with session_scope(engine) as s:
            return list(s.scalars(select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id)))
    finally:
        engine.dispose()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A generated scenario and an (unmigrated) store URL in CAREFABRIC_DB_URL."""
    from sandbox.generator import main as generate

    url = f"sqlite:///{tmp_path / 'store.db'}"
    monkeypatch.setenv("CAREFABRIC_DB_URL", url)
    monkeypatch.setenv("CAREFABRIC_DATA_DIR", str(tmp_path / "data"))
    scenario = tmp_path / "scenario"
    assert generate(["--out", str(scenario), "--encounters", "12", "--facilities", "3",
                     "--date", BUSINESS_DATE.isoformat()]) == 0
    return {"url": url, "scenario": scenario, "tmp": tmp_path}


def load_day(env: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    """Migrate and import crosswalks with the CLI, then load master data and ingest the HL7."""
    from carefabric.interfaces import erp_master_data
    from carefabric.interfaces.ehr_ingest import ingest_file
    from carefabric.store.bulk import upsert

    assert run(capsys, "db", "upgrade")[0] == 0
    assert run(capsys, "crosswalk", "import", str(env["scenario"] / "crosswalks"))[0] == 0
    engine = get_engine(env["url"])
    try:
        master = json.loads((env["scenario"] / "erp_master.json").read_text())
        with session_scope(engine) as s:
            for key, items in master.items():
                kind = key.replace("_", "-")
                model, keys = erp_master_data.TABLES[kind]
                upsert(s, model, erp_master_data._rows(kind, items), keys)
        for path in sorted((env["scenario"] / "ehr").glob("*.hl7")):
            ingest_file(path, engine, business_date=BUSINESS_DATE, validate=False)
    finally:
        engine.dispose()


def test_db_upgrade_and_current(env: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "db", "current")
    assert code == 0 and json.loads(out)["revision"] is None and json.loads(out)["up_to_date"] is False
    code, out, err = run(capsys, "db", "upgrade")
    body = json.loads(out)
    assert code == 0 and err == "" and body["from"] is None and body["revision"] == body["head"] == head_revision()
    code, out, _ = run(capsys, "db", "current")
    assert code == 0 and json.loads(out) == {**json.loads(out), "revision": head_revision(), "up_to_date": True}
    code, out, _ = run(capsys, "db", "upgrade")  # again: nothing to do
    assert code == 0 and json.loads(out)["from"] == head_revision()
    usage_error(capsys, "db")
    usage_error(capsys, "db", "sideways")


def test_unmigrated_store_is_one_line(env: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    err = one_line_error(capsys, "exceptions", "list")
    assert "carefabric db upgrade" in err
    one_line_error(capsys, "health")


def test_crosswalk_import_set_show(env: dict[str, Any], capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("USER", "LOGNAME", "USERNAME"):  # anyone can set these: the actor ignores them
        monkeypatch.setenv(variable, "mallory")
    run(capsys, "db", "upgrade")
    code, out, err = run(capsys, "crosswalk", "import", str(env["scenario"] / "crosswalks"))
    body = json.loads(out)
    assert code == 0 and err == "" and body["imported"]["cdm"]["created"] > 0 and body["actor"] == ME
    assert len(audit_rows(env["url"], "crosswalk.import")) == 4
    code, out, _ = run(capsys, "crosswalk", "import", str(env["scenario"] / "crosswalks"))
    assert code == 0 and json.loads(out)["imported"]["cdm"]["created"] == 0  # same files: nothing new

    one_line_error(capsys, "crosswalk", "import", str(env["tmp"] / "missing"))
    empty = env["tmp"] / "empty"
    empty.mkdir()
    assert "no crosswalk CSV" in one_line_error(capsys, "crosswalk", "import", str(empty))
    bad = env["tmp"] / "bad"
    bad.mkdir()
    (bad / "cdm.csv").write_text("cdm_code,description\nX1,thing\n")
    assert "revenue_account" in one_line_error(capsys, "crosswalk", "import", str(bad))

    code, out, _ = run(capsys, "crosswalk", "set", "cdm", "CDM2099", "--revenue-account", "4010",
                       "--procedure-code", "83036", "--description", "HEMOGLOBIN A1C")
    row = json.loads(out)
    assert code == 0 and row["cdm_code"] == "CDM2099" and row["version"] == 1 and row["changed_by"] == ME
    code, out, _ = run(capsys, "crosswalk", "set", "cdm", "CDM2099", "--revenue-account", "4020")
    row = json.loads(out)
    assert row["version"] == 2 and row["revenue_account"] == "4020" and row["procedure_code"] == "83036"
    sets = audit_rows(env["url"], "crosswalk.set")
    assert [(a.actor, a.target) for a in sets] == [(ME, "crosswalk:cdm:CDM2099")] * 2
    engine = get_engine(env["url"])
    with session_scope(engine) as s:
        versions = list(s.scalars(select(CrosswalkHistory.version).where(CrosswalkHistory.key == "CDM2099")))
    engine.dispose()
    assert versions == [1, 2]

    # The actor is the OS account, never a typed name.
    usage_error(capsys, "crosswalk", "set", "cdm", "CDM1", "--revenue-account", "4010", "--actor", "mallory")
    usage_error(capsys, "crosswalk", "set", "cdm", "CDM1")  # no account
    usage_error(capsys, "crosswalk", "show", "nope")

    code, out, _ = run(capsys, "crosswalk", "show", "cdm")
    rows = json.loads(out)["rows"]
    assert code == 0 and next(r for r in rows if r["cdm_code"] == "CDM2099")["version"] == 2
    code, out, _ = run(capsys, "crosswalk", "show")
    assert code == 0 and set(json.loads(out)) == {"departments", "cdm", "payers", "facilities"}

    code, out, _ = run(capsys, "crosswalk", "set", "department", "F2", "PHARM", "--cost-center", "CC-F2-PHARM")
    assert code == 0 and json.loads(out)["cost_center"] == "CC-F2-PHARM"
    code, out, _ = run(capsys, "crosswalk", "set", "payer", "1999451001", "--erp-payer", "PAYER-ACME")
    assert code == 0 and json.loads(out)["erp_payer_id"] == "PAYER-ACME"


def test_crosswalk_set_checks_the_erp_master(env: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    load_day(env, capsys)
    err = one_line_error(capsys, "crosswalk", "set", "cdm", "CDM2099", "--revenue-account", "9999")
    assert err == "carefabric: cdm CDM2099: revenue account 9999 is not in the ERP master data\n"
    err = one_line_error(capsys, "crosswalk", "set", "department", "F2", "PHARM", "--cost-center", "CC-F2-PHARM-OLD")
    assert "inactive" in err
    assert audit_rows(env["url"], "crosswalk.set") == []


def test_exceptions_list_show_discard_resolve(env: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    load_day(env, capsys)
    code, out, err = run(capsys, "exceptions", "list")
    body = json.loads(out)
    assert code == 0 and err == "" and body["total"] == len(body["items"]) >= 3
    assert {e["status"] for e in body["items"]} == {"open"}
    reasons = {e["reason_code"] for e in body["items"]}
    assert {"UNKNOWN_CDM", "INACTIVE_COST_CENTER", "HL7_PARSE_ERROR"} <= reasons

    code, out, _ = run(capsys, "exceptions", "list", "--reason", "UNKNOWN_CDM")
    (cdm,) = json.loads(out)["items"]
    code, out, _ = run(capsys, "exceptions", "list", "--interface", "payer_remittance")
    assert json.loads(out)["total"] == 0
    code, out, _ = run(capsys, "exceptions", "list", "--limit", "1")
    assert json.loads(out)["shown"] == 1
    usage_error(capsys, "exceptions", "list", "--status", "weird")
    usage_error(capsys, "exceptions", "list", "--limit", "0")

    code, out, _ = run(capsys, "exceptions", "show", str(cdm["id"]))
    shown = json.loads(out)
    assert code == 0 and shown["events"][0]["action"] == "opened" and shown["record_key"] == cdm["record_key"]
    assert "airflow dags trigger exception_replay" in shown["replay_command"]
    assert one_line_error(capsys, "exceptions", "show", "99999") == "carefabric: exception 99999: no exception 99999\n"
    usage_error(capsys, "exceptions", "show", "abc")

    parse = next(e for e in body["items"] if e["reason_code"] == "HL7_PARSE_ERROR")
    usage_error(capsys, "exceptions", "discard", str(parse["id"]))  # --note is required
    err = one_line_error(capsys, "exceptions", "discard", str(parse["id"]), "--note", " ")
    assert "needs a note" in err
    code, out, _ = run(capsys, "exceptions", "discard", str(parse["id"]), "--note", "sender fixed MSH")
    body = json.loads(out)
    assert code == 0 and body["status"] == "discarded" and body["events"][-1]["actor"] == ME
    (entry,) = audit_rows(env["url"], "exception.discard")
    assert entry.actor == ME and entry.detail == {"exception_id": parse["id"], "note": "sender fixed MSH"}
    assert "only open" in one_line_error(capsys, "exceptions", "discard", str(parse["id"]), "--note", "x")

    held = next(e for e in json.loads(run(capsys, "exceptions", "list")[1])["items"]
                if e["reason_code"] == "INACTIVE_COST_CENTER")
    code, out, _ = run(capsys, "exceptions", "resolve", str(held["id"]))
    assert code == 0 and json.loads(out)["status"] == "resolved"
    assert [a.actor for a in audit_rows(env["url"], "exception.resolve")] == [ME]
    usage_error(capsys, "exceptions", "resolve", str(held["id"]), "--actor", "ben")  # no typed actor

    code, out, _ = run(capsys, "exceptions", "list", "--status", "all")
    statuses = {e["id"]: e["status"] for e in json.loads(out)["items"]}
    assert statuses[parse["id"]] == "discarded" and statuses[held["id"]] == "resolved"

    code, out, _ = run(capsys, "exceptions", "replay", str(cdm["id"]))
    replay = json.loads(out)
    assert code == 0 and replay["mode"] == "dag" and replay["still_held"] == {"UNKNOWN_CDM": [cdm["id"]]}
    assert replay["command"].startswith("airflow dags trigger exception_replay --conf ")
    assert "name exception ids" in one_line_error(capsys, "exceptions", "replay")
    engine = get_engine(env["url"])
    with session_scope(engine) as s:
        assert s.get(ExceptionRecord, cdm["id"]).status == "open"  # the CLI never half-replays
    engine.dispose()


def test_trace_and_health(env: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    load_day(env, capsys)
    code, out, _ = run(capsys, "exceptions", "list", "--reason", "UNKNOWN_CDM")
    (cdm,) = json.loads(out)["items"]
    code, out, err = run(capsys, "trace", cdm["record_key"])
    t = json.loads(out)
    assert code == 0 and err == "" and t["matched_as"] == ["line_key"]
    assert t["charges"][0]["status"] == "held" and [e["id"] for e in t["exceptions"]] == [cdm["id"]]
    assert t["files"][0]["name"].endswith(".hl7") and "payload" not in t["messages"][0]

    code, out, _ = run(capsys, "trace", t["files"][0]["name"])
    assert code == 0 and json.loads(out)["matched_as"] == ["file"]
    err = one_line_error(capsys, "trace", "no-such-key")
    assert err.startswith("carefabric: no-such-key: nothing in the store matches")

    code, out, _ = run(capsys, "health")
    health = json.loads(out)
    ehr = next(i for i in health["interfaces"] if i["interface"] == "ehr_ingest")
    hl7_files = len(list((env["scenario"] / "ehr").glob("*.hl7")))
    assert code == 0 and ehr["files"]["today"]["received"] == hl7_files == ehr["files"]["total"]["processed"]
    assert ehr["exceptions"]["by_reason"]["UNKNOWN_CDM"] == 1
    code, out, _ = run(capsys, "health", "--day", "2020-01-01")
    ehr = next(i for i in json.loads(out)["interfaces"] if i["interface"] == "ehr_ingest")
    assert ehr["files"]["today"]["received"] == 0 and ehr["files"]["total"]["received"] == hl7_files
    usage_error(capsys, "health", "--day", "yesterday")

    # Output carries no MRN from the raw HL7.
    raw = "\r".join(p.read_bytes().decode() for p in (env["scenario"] / "ehr").glob("*.hl7"))
    mrns = {rep.split("^")[0] for seg in re.split(r"[\r\n]+", raw) if seg.startswith("PID|")
            for rep in seg.split("|")[3].split("~") if rep.split("^")[4:5] == ["MR"]}
    assert mrns
    everything = json.dumps(t) + json.dumps(health)
    assert not [m for m in mrns if m in everything]


def test_console_script_errors_are_one_line(env: dict[str, Any]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "carefabric.cli", "exceptions", "show", "1"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1
    assert "carefabric db upgrade" in proc.stderr
