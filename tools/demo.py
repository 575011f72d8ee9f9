"""``make demo``: three business days through every DAG, judged against the generator's ground truth.

Steps (each printed as it runs):
1. reset the demo's state (store, sandbox records, landing and archive folders);
2. generate three days with the sandbox generator (a full first day with the injected faults,
   two shorter ones with late charges and 835s paying the first day's claims) and start the peers;
3. load the scenario into the peers, migrate the store, import the governed crosswalks;
4. prepare Airflow (metadata DB, connections and variables from ``airflow_settings.yaml``);
5. day 1: arm the ERP's transient 503 and run the DAGs in the order the scheduler would; run it
   again (files re-delivered) and check the peers recorded nothing new; add the missing crosswalk
   entry and map the unknown payer, replay their exceptions (the suspense clears) and reconcile again;
6. days 2 and 3: the DAGs in order; on the day the truth says, someone edits the ERP after posting;
7. judge every day: postings to the cent (the ERP's own records), faults, the reconciliation items
   not matched against the truth's expected items (no more, no fewer), the AR roll-forward
   (each closing is the next opening); print the summary and write it as JSON. Exit 1 on any difference.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dayrun import PY, DayRun, Peers, run_days  # noqa: E402


def reset(data: Path, env: dict[str, str]) -> None:
    subprocess.run([PY, "-m", "sandbox", "stop"], env=env, capture_output=True)
    for name in ("sandbox", "landing", "archive", "inbox", "scenario", "lineage"):
        shutil.rmtree(data / name, ignore_errors=True)
    for db in data.glob("carefabric.db*"):
        db.unlink()


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("CAREFABRIC_SANDBOX", "1")  # the demo is the sandbox: its token key is allowed
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--date", default=(dt.date.today() - dt.timedelta(days=3)).isoformat(),
                        help="first business date (default: three days ago, so the last one is yesterday)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--encounters", type=int, default=60, help="encounters on the first day")
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--later-encounters", type=int, default=15, help="encounters on each later day")
    parser.add_argument("--facilities", type=int, default=3)
    args = parser.parse_args(argv)

    from carefabric.config import data_dir

    data = data_dir()
    sandbox_dir = data / "sandbox"
    env = dict(os.environ, SANDBOX_DIR=str(sandbox_dir), CAREFABRIC_DATA_DIR=str(data))
    os.environ.update(SANDBOX_DIR=str(sandbox_dir), CAREFABRIC_DATA_DIR=str(data))

    print(f"== reset demo state under {data}")
    reset(data, env)
    dates = [(dt.date.fromisoformat(args.date) + dt.timedelta(days=n)).isoformat() for n in range(args.days)]
    per_day = [args.encounters] + [args.later_encounters] * (args.days - 1)
    print(f"\n== generate business days {', '.join(dates)} (seed {args.seed}) and start the sandbox peers")
    scenario = data / "scenario"
    subprocess.run([PY, "-m", "sandbox", "generate", "--seed", str(args.seed), "--encounters", str(sum(per_day)),
                    "--day-encounters", ",".join(map(str, per_day)), "--facilities", str(args.facilities),
                    "--days", str(args.days), "--date", args.date, "--out", str(scenario)],
                   env=env, check=True, capture_output=True)
    subprocess.run([PY, "-m", "sandbox", "start"], env=env, check=True, capture_output=True)
    peers = Peers.from_ready(sandbox_dir)
    print(f"   peers: sftp :{peers.sftp_port}  billing {peers.billing_url}  erp {peers.erp_url}  smtp :{peers.smtp_port}")
    try:
        report = run_days(DayRun(data=data, peers=peers, business_date=args.date), scenario, dates)
    finally:
        subprocess.run([PY, "-m", "sandbox", "stop"], env=env, capture_output=True)
    out = data / f"demo_summary_{dates[0]}.json"
    out.write_text(json.dumps(report, indent=2, default=str))
    print("\n== summary")
    _print(report)
    print(f"\nsummary JSON: {out}")
    print(f"OpenLineage events (one JSON a line): {data / 'lineage' / 'openlineage.jsonl'}")
    differences = report["differences_from_ground_truth"]
    if differences:
        print(f"\n{len(differences)} difference(s) from the ground truth:")
        for d in differences:
            print(f"  - {d}")
        return 1
    print(f"\nThe {len(dates)} days match the generator's ground truth: every posting to the cent, every fault where it "
          "belongs, the close's items and AR roll-forward as expected.")
    return 0


def _print(report: dict[str, Any]) -> None:
    print(f"business dates       {', '.join(report['business_dates'])}")
    print(f"files in             {report['files_in']}  by status {report['files_by_status']}")
    print(f"messages by type     {report['messages_by_type']}")
    print(f"records              {report['records']}")
    print("exceptions by reason")
    for reason, n in sorted(report["exceptions_by_reason"].items()):
        print(f"   {reason:<40} {n}")
    j = report["journals"]
    print(f"journals posted      {j['posted']}  debits {j['debits']:.2f} = credits {j['credits']:.2f}")
    print(f"inventory movements  {report['inventory_movements']} document(s)   cash receipts {report['cash_receipts']}")
    print(f"ERP's own records    {report['erp_records']}  faults still armed: {report['erp_faults_pending']}")
    recon = report.get("reconciliation", {})
    print(f"reconciliation       {recon.get('by_check_and_status')} (last run)")
    for date, close in report.get("close_by_date", {}).items():
        print(f"close {date}     run {close['run']}: not matched {close['not_matched']}")
        print(f"   AR roll-forward (opening, closing cents) {close['ar_rollforward']}")
    print(f"email                {report['email']}")
    print(f"DAG runs             {report['dag_states']}")
    print(f"took                 {report['seconds']}s")


if __name__ == "__main__":
    raise SystemExit(main())
