"""``make demo``: one business day through every DAG, judged against the generator's ground truth.

Steps (each printed as it runs):
1. reset the demo's state (store, sandbox records, landing and archive folders);
2. generate a day with the sandbox generator (injected faults included) and start the peers;
3. load the scenario into the peers, migrate the store, import the governed crosswalks;
4. prepare Airflow (metadata DB, connections and variables from ``airflow_settings.yaml``);
5. arm the ERP's transient 503 and run the DAGs in the order the scheduler would for that date;
6. run the same day again (files re-delivered) and check the peers recorded nothing new;
7. add the missing crosswalk entry, run ``exception_replay`` and reconcile again;
8. print the summary, write it as JSON with the list of differences from the ground truth.
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

from dayrun import PY, DayRun, Peers, run_day  # noqa: E402


def reset(data: Path, env: dict[str, str]) -> None:
    subprocess.run([PY, "-m", "sandbox", "stop"], env=env, capture_output=True)
    for name in ("sandbox", "landing", "archive", "inbox", "scenario"):
        shutil.rmtree(data / name, ignore_errors=True)
    for db in data.glob("carefabric.db*"):
        db.unlink()


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("CAREFABRIC_SANDBOX", "1")  # the demo is the sandbox: its token key is allowed
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--date", default=(dt.date.today() - dt.timedelta(days=1)).isoformat())
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--encounters", type=int, default=60)
    parser.add_argument("--facilities", type=int, default=3)
    args = parser.parse_args(argv)

    from carefabric.config import data_dir

    data = data_dir()
    sandbox_dir = data / "sandbox"
    env = dict(os.environ, SANDBOX_DIR=str(sandbox_dir), CAREFABRIC_DATA_DIR=str(data))
    os.environ.update(SANDBOX_DIR=str(sandbox_dir), CAREFABRIC_DATA_DIR=str(data))

    print(f"== reset demo state under {data}")
    reset(data, env)
    print(f"\n== generate business day {args.date} (seed {args.seed}) and start the sandbox peers")
    scenario = data / "scenario"
    subprocess.run([PY, "-m", "sandbox", "generate", "--seed", str(args.seed), "--encounters", str(args.encounters),
                    "--facilities", str(args.facilities), "--days", "1", "--date", args.date, "--out", str(scenario)],
                   env=env, check=True, capture_output=True)
    subprocess.run([PY, "-m", "sandbox", "start"], env=env, check=True, capture_output=True)
    peers = Peers.from_ready(sandbox_dir)
    print(f"   peers: sftp :{peers.sftp_port}  billing {peers.billing_url}  erp {peers.erp_url}  smtp :{peers.smtp_port}")
    try:
        report = run_day(DayRun(data=data, peers=peers, business_date=args.date), scenario)
    finally:
        subprocess.run([PY, "-m", "sandbox", "stop"], env=env, capture_output=True)
    out = data / f"demo_summary_{args.date}.json"
    out.write_text(json.dumps(report, indent=2, default=str))
    print("\n== summary")
    _print(report)
    print(f"\nsummary JSON: {out}")
    differences = report["differences_from_ground_truth"]
    if differences:
        print(f"\n{len(differences)} difference(s) from the ground truth:")
        for d in differences:
            print(f"  - {d}")
        return 1
    print("\nThe day matches the generator's ground truth: every posting to the cent, every fault where it belongs.")
    return 0


def _print(report: dict[str, Any]) -> None:
    print(f"business date        {report['business_date']}")
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
    print(f"reconciliation       {recon.get('by_check_and_status')}")
    print(f"email                {report['email']}")
    print(f"DAG runs             {report['dag_states']}")
    print(f"took                 {report['seconds']}s")


if __name__ == "__main__":
    raise SystemExit(main())
