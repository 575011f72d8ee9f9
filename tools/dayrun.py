"""One business day through every DAG, with real Airflow, against running sandbox peers.

Shared by ``make demo`` (tools/demo.py) and the whole-DAG tests (tests/test_dags_e2e.py): the
steps are the ones a scheduler would take for one business date, then a rerun, then the fix of
the missing crosswalk entry and its replay. Judged against the generator's ground truth, from
the peers' own records (what the ERP and billing hold), never from carefabric's store alone.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bulk_pull  # noqa: E402
from airflow_runtime import airflow_env, dag_run_confs, ensure_metadata_db, load_settings, run_dag  # noqa: E402
from dayjudge import judge_close, judge_faults, store_summary  # noqa: E402

PY = sys.executable
# ehr_ingest reads the landing folder (HL7 batches); ehr_bulk_export pulls the FHIR extract from the EHR.
ORDER = ["erp_master_data", "ehr_ingest", "ehr_bulk_export", "payer_remittance", "billing_sync", "bank_statement",
         "erp_posting", "claims_reconciliation"]


@dataclass
class Peers:
    """Where the sandbox peers answer (the defaults of airflow_settings.yaml, or test ports)."""

    erp_url: str
    billing_url: str
    sftp_port: int
    smtp_port: int
    sandbox_dir: Path
    sftp_root: Path

    @classmethod
    def from_ready(cls, sandbox_dir: Path) -> Peers:
        ready = json.loads((sandbox_dir / "ready.json").read_text())
        return cls(ready["erp_url"], ready["billing_url"], int(ready["sftp_port"]), int(ready["smtp_port"]),
                   sandbox_dir, sandbox_dir / "sftp_root")

    def connection_overrides(self) -> dict[str, dict[str, Any]]:
        def hp(url: str) -> tuple[str, int]:
            host, port = url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)
            return host, int(port)

        erp_host, erp_port = hp(self.erp_url)
        billing_host, billing_port = hp(self.billing_url)
        return {
            "erp_api": {"host": erp_host, "port": erp_port},
            "billing_api": {"host": billing_host, "port": billing_port},
            "payer_sftp": {"port": self.sftp_port},
            "finance_smtp": {"port": self.smtp_port},
        }


@dataclass
class DayRun:
    """State and environment of one business-day run."""

    data: Path
    peers: Peers
    business_date: str
    db_url: str | None = None
    log: Callable[[str], None] = print
    states: dict[str, str] = field(default_factory=dict)
    # How one DagRun runs: ``airflow dags test`` per run (the demo), or a ``dag_test_runner.DagTestRunner``
    # (the tests: ``dag.test()`` in one process per Airflow home).
    runner: Callable[[dict[str, str], str, str, dict[str, Any]], str] = run_dag

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ, SANDBOX_DIR=str(self.peers.sandbox_dir), CAREFABRIC_DATA_DIR=str(self.data))
        if self.db_url:
            env["CAREFABRIC_DB_URL"] = self.db_url
        return env

    def sandbox(self, *args: str) -> str:
        result = subprocess.run([PY, "-m", "sandbox", *args], env=self.env, text=True, capture_output=True)
        if result.returncode != 0:
            raise RuntimeError(f"sandbox {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def install(self, scenario: Path, *, sftp_only: bool = False) -> None:
        args = ["install", str(scenario), "--erp-url", self.peers.erp_url, "--billing-url", self.peers.billing_url,
                "--sftp-root", str(self.peers.sftp_root), "--landing-dir", str(self.data / "landing" / "ehr")]
        self.sandbox(*args, *(["--sftp-only"] if sftp_only else []))

    def deliver(self, scenario: Path, date: str | None, *, ehr: bool = True) -> Path:
        """Deliver one business date's files the way the senders would: its 835s and bank
        statement to the SFTP server, its EHR extracts to the landing folder (later dates' files
        arrive on their own date). ``None``: the peers' seeds only (master data, billing, the
        go-live AR), no file; ``ehr=False``: the payers and the bank re-send, the EHR does not.
        Returns the staged view of the scenario it installed from."""
        view = scenario.parent / f"{scenario.name}_staged" / (date or "peers")
        shutil.rmtree(view, ignore_errors=True)
        for sub in ("ehr", "sftp", "bank"):
            (view / sub).mkdir(parents=True)
        for name in ("erp_master.json", "billing_seed.json", "ground_truth.json"):
            shutil.copyfile(scenario / name, view / name)
        tag = date.replace("-", "") if date else None
        if tag:
            for file in scenario.glob(f"sftp/*/*_{tag}_*.835"):
                (view / "sftp" / file.parent.name).mkdir(exist_ok=True)
                shutil.copyfile(file, view / "sftp" / file.parent.name / file.name)
            for file in [*scenario.glob(f"bank/{tag}.bai"), *scenario.glob(f"ehr/*_{tag}.*")]:
                shutil.copyfile(file, view / file.relative_to(scenario))
        self.install(view, sftp_only=tag is not None)
        if tag and ehr:
            pulled = bulk_pull.deliver(view, self.peers.sandbox_dir)  # FHIR: the EHR's server, pulled by $export
            landing = self.data / "landing" / "ehr"
            landing.mkdir(parents=True, exist_ok=True)
            for file in sorted(f for f in (view / "ehr").iterdir() if f not in pulled):  # atomically: the sensor never sees half a file
                shutil.copyfile(file, landing / f".{file.name}.part")
                (landing / f".{file.name}.part").replace(landing / file.name)
        return view

    def prepare_store(self, scenario: Path) -> dict[str, Any]:
        from carefabric.store.crosswalks import import_csv_dir
        from carefabric.store.db import get_engine, session_scope, upgrade

        upgrade(self.db_url)
        engine = get_engine(self.db_url)
        with session_scope(engine) as session:
            imported = import_csv_dir(session, scenario / "crosswalks", actor="demo")
        engine.dispose()
        return imported

    def prepare_airflow(self) -> dict[str, str]:
        extra = {k: v for k, v in self.env.items() if k.startswith(("CAREFABRIC_", "SANDBOX_"))}
        aenv = airflow_env(self.data / "airflow_home", extra)
        ensure_metadata_db(aenv)
        overrides = {**self.peers.connection_overrides(), **bulk_pull.connection_overrides(self.peers.sandbox_dir)}
        load_settings(aenv, sandbox_dir=self.peers.sandbox_dir, overrides=overrides)
        return aenv

    def arm_erp_fault(self, truth: dict[str, Any]) -> dict[str, Any] | None:
        import requests

        fault = next((f["erp_fault"] for f in truth["faults"] if "erp_fault" in f), None)
        if fault:
            requests.post(f"{self.peers.erp_url}/_sandbox/faults", json={**fault, "retry_after": 1}, timeout=10).raise_for_status()
        return fault

    def run(self, aenv: dict[str, str], dag_id: str, conf: dict[str, Any], label: str | None = None) -> str:
        t0 = time.monotonic()
        state = self.runner(aenv, dag_id, self.business_date, conf)
        self.states[label or dag_id] = state
        self.log(f"   {label or dag_id:<34} {state:<8} {time.monotonic() - t0:5.1f}s")
        return state

    def peer_counts(self) -> dict[str, Any]:
        return peer_counts(self.peers.erp_url, self.peers.billing_url)


def run_day(day: DayRun, scenario: Path) -> dict[str, Any]:
    """The scenario's first business date (``day.business_date``) through every DAG, rerun and
    fixed; returns the report with its differences from the ground truth."""
    return run_days(day, scenario, [day.business_date])


def run_days(day: DayRun, scenario: Path, dates: list[str]) -> dict[str, Any]:
    """Install the scenario once; run each business date in turn as the scheduler would (the
    first one also rerun and fixed: the missing chargemaster entry, then the unknown payer);
    make the truth's ERP edits between posting and the close; judge every date."""
    truth = json.loads((scenario / "ground_truth.json").read_text())
    started = time.monotonic()
    day.log("\n== load the scenario into the peers; migrate the store; import the governed crosswalks")
    day.deliver(scenario, None)
    day.log(f"   crosswalks: {day.prepare_store(scenario)}")
    day.log("\n== prepare Airflow (metadata DB, connections and variables from airflow_settings.yaml)")
    aenv = day.prepare_airflow()
    checks: list[str] = []
    first_pass: dict[str, Any] = {}
    second_pass: dict[str, Any] = {}
    for index, date in enumerate(dates):
        day.business_date = date
        if index == 0:
            fault = day.arm_erp_fault(truth)
            if fault:
                day.log(f"   armed: ERP {fault['method']} {fault['path_prefix']} -> {fault['status']} x{fault['count']}")
        suffix = "" if index == 0 else f" [{date}]"
        day.deliver(scenario, date)
        day.log(f"\n== run the DAGs for {date}: {' -> '.join(ORDER)}")
        for dag_id in ORDER[:-1]:
            day.run(aenv, dag_id, {"business_date": date}, dag_id + suffix)
        for edit in (e for e in truth.get("erp_edits", []) if e["business_date"] == date):
            day.log(f"   someone edits the ERP: {apply_erp_edit(day.peers.erp_url, edit)}")
        day.run(aenv, ORDER[-1], {"business_date": date}, ORDER[-1] + suffix)
        if index == 0:
            first_pass, second_pass, more = _rerun_and_fix(day, aenv, scenario, truth)
            checks += more
    day.business_date = dates[0]
    return _report(day, scenario, truth, dates, checks, first_pass, second_pass, started)


def _rerun_and_fix(day: DayRun, aenv: dict[str, str], scenario: Path,
                   truth: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """The first date again (nothing new may post), then the operators' fixes and replays."""
    conf = {"business_date": day.business_date}
    first_pass = day.peer_counts()
    day.log("\n== the same day again (extracts re-read, 835s re-delivered): nothing new may post")
    day.deliver(scenario, day.business_date, ehr=False)
    day.run(aenv, "ehr_ingest", {**conf, "include_processed": True}, "ehr_ingest (rerun)")
    day.run(aenv, "ehr_bulk_export", conf, "ehr_bulk_export (rerun)")
    day.run(aenv, "payer_remittance", conf, "payer_remittance (rerun)")
    day.run(aenv, "erp_posting", conf, "erp_posting (rerun)")
    second_pass = day.peer_counts()
    diffs = [] if second_pass == first_pass else [f"rerun changed the peers: {first_pass} -> {second_pass}"]

    day.log("\n== add the missing crosswalk entry and map the unknown payer; replay their exceptions; reconcile again")
    fix = truth["after_fix"]["crosswalk"]
    payer = truth.get("after_payer_fix", {}).get("payer")
    from carefabric.store.crosswalks import set_cdm, set_payer
    from carefabric.store.db import get_engine, session_scope

    if payer:
        add_erp_payer(day.peers.erp_url, scenario, payer)
    engine = get_engine(day.db_url)
    with session_scope(engine) as session:
        set_cdm(session, fix["cdm_code"], fix["revenue_account"], erp_item=fix.get("erp_item"),
                procedure_code=fix.get("procedure_code"), description=fix.get("description"), actor="demo")
        if payer:
            set_payer(session, payer["x12_payer_id"], payer["erp_payer_id"], actor="demo")
    engine.dispose()
    # Master data now finds the held line resolvable and triggers exception_replay with its id;
    # the demo then runs the replays itself (the way an operator would from the UI).
    day.run(aenv, "erp_master_data", conf, "erp_master_data (after fix)")
    requeued = [c for c in dag_run_confs(aenv, "exception_replay") if c.get("exception_ids")]
    diffs += [] if requeued else ["erp_master_data did not re-queue the exception the fix resolves"]
    day.log(f"   re-queued for replay: {requeued[0]['exception_ids'] if requeued else 'nothing'}")
    day.run(aenv, "exception_replay", {"reason_code": "UNKNOWN_CDM", "actor": "demo"}, "exception_replay (after fix)")
    if payer:
        day.run(aenv, "exception_replay", {"reason_code": "UNKNOWN_PAYER", "actor": "demo"},
                "exception_replay (payer mapped)")
    day.run(aenv, "claims_reconciliation", conf, "claims_reconciliation (after fix)")
    return first_pass, second_pass, diffs


def apply_erp_edit(erp_url: str, edit: dict[str, Any]) -> str:
    """Make one of the truth's ``erp_edits`` in the ERP, the way a person with ERP access would."""
    import requests

    from sandbox.judge import erp_records

    journals = erp_records(erp_url, "erp-sandbox-token", edit["business_date"])["journals"]
    for journal in journals:
        if journal.get("source") != edit["source"]:
            continue
        for number, line in enumerate(journal["lines"], start=1):
            if line["account"] == edit["account"] and line.get("facility") == edit["facility"] \
                    and f"{Decimal(str(line[edit['field']])):.2f}" == edit["was"]:
                body = {"action": "update_line", "document_id": journal["document_id"],
                        "line_no": line.get("line_no", number), "set": {edit["field"]: edit["set"]}}
                requests.post(f"{erp_url}/_sandbox/ledger-edit", json=body, timeout=10).raise_for_status()
                return f"{journal['document_id']} line {body['line_no']} {edit['account']} {edit['facility']} " \
                       f"{edit['field']} {edit['was']} -> {edit['set']}"
    raise RuntimeError(f"no ERP line to edit for {edit}")


def add_erp_payer(erp_url: str, scenario: Path, payer: dict[str, str]) -> None:
    """Finance adds the payer to the ERP's master (the sandbox's load replaces the payer list)."""
    import requests

    master = json.loads((scenario / "erp_master.json").read_text())
    payers = [*master["payers"], {"payer_id": payer["erp_payer_id"], "name": payer["name"],
                                  "x12_id": payer["x12_payer_id"], "active": True}]
    requests.post(f"{erp_url}/_sandbox/load", json={"payers": payers}, timeout=10).raise_for_status()


def _report(day: DayRun, scenario: Path, truth: dict[str, Any], dates: list[str], checks: list[str],
            first_pass: dict[str, Any], second_pass: dict[str, Any], started: float) -> dict[str, Any]:
    from sandbox.judge import judge

    summary = store_summary(day.db_url)
    payer_fixed = bool(truth.get("after_payer_fix"))
    verdict = judge(scenario / "ground_truth.json", day.peers.erp_url, "erp-sandbox-token", after_fix=True, bank=True,
                    payer_fixed=payer_fixed, edited=True, dates=dates)
    close = judge_close(truth, dates, day.db_url)
    differences = verdict["differences"] + judge_faults(truth, summary, payer_fixed=payer_fixed) + checks
    differences += close["differences"]
    differences += [f"DAG {d} ended {s}" for d, s in day.states.items() if s != "success"]
    mail = sorted((day.peers.sandbox_dir / "mail").glob("*.eml"))
    postings = summary["erp_postings"]
    return {
        "business_date": dates[0],
        "business_dates": dates,
        "dag_states": dict(day.states),
        **{k: v for k, v in summary.items() if k != "exceptions"},
        "exceptions": [{k: v for k, v in e.items() if k != "detail"} for e in summary["exceptions"]],
        "journals": {
            "posted": sum(1 for p in postings if p["kind"] == "journal" and p["status"] == "posted"),
            "debits": sum(p["debits"] for p in postings if p["kind"] == "journal"),
            "credits": sum(p["credits"] for p in postings if p["kind"] == "journal"),
        },
        "inventory_movements": sum(1 for p in postings if p["kind"] == "inventory" and p["status"] == "posted"),
        "cash_receipts": sum(1 for p in postings if p["kind"] == "cash" and p["status"] == "posted"),
        "erp_records": {k: verdict[k] for k in ("journals_posted", "inventory_documents", "cash_receipts")},
        "close_by_date": close["by_date"],
        "peers_after_first_pass": first_pass,
        "peers_after_rerun": second_pass,
        "erp_faults_pending": _pending_faults(day.peers.erp_url),
        "email": str(mail[-1]) if mail else None,
        "differences_from_ground_truth": differences,
        "seconds": round(time.monotonic() - started, 1),
    }


def _pending_faults(erp_url: str) -> Any:
    import requests

    return requests.get(f"{erp_url}/_sandbox/state", timeout=10).json().get("faults_pending")


def peer_counts(erp_url: str, billing_url: str) -> dict[str, Any]:
    import requests

    erp = requests.get(f"{erp_url}/_sandbox/state", timeout=10).json()
    billing = requests.get(f"{billing_url}/_sandbox/state", timeout=10).json()
    return {"erp": erp.get("counts", erp), "billing": billing.get("counts", billing)}
