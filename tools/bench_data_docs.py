"""What the close's Data Docs step costs: the nightly GX checkpoint on a demo-sized day.

    .venv/bin/python tools/bench_data_docs.py [--encounters 60] [--nights 5] [--rows 0]

Generates a day with the sandbox generator (``make demo``'s first day has 60 encounters), runs
it through ingest and remittance into a scratch SQLite store, then times, in one process:

* ``import great_expectations`` (once per worker process);
* the first night: the context created under a scratch data folder, the checkpoint run, the
  site built;
* each later night (the same day's data under the next dates): the context reused, one more
  night in the index;
* the reference, in the same run: ``validate_frame`` of the day's charges, i.e. what one
  ingest file already pays for GX.

``--rows N`` adds a run on N synthetic charge lines (a regional day is ~300,000). Prints JSON.
Not a test: the seconds depend on the machine and its load; the ratio is what to compare.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

DAY = dt.date(2026, 11, 23)


def _load_day(root: Path, encounters: int) -> Any:
    """A generated day ingested into a new SQLite store: the engine."""
    from carefabric.interfaces import erp_master_data, payer_remittance
    from carefabric.interfaces.ehr_ingest import ingest_file
    from carefabric.store.bulk import upsert
    from carefabric.store.crosswalks import import_csv_dir
    from carefabric.store.db import get_engine, session_scope, upgrade
    from sandbox.generator import main as generate

    scenario = root / "scenario"
    assert generate(["--out", str(scenario), "--encounters", str(encounters), "--facilities", "3",
                     "--date", DAY.isoformat()]) == 0
    url = f"sqlite:///{root / 'store.db'}"
    upgrade(url)
    engine = get_engine(url)
    master = json.loads((scenario / "erp_master.json").read_text())
    with session_scope(engine) as s:
        import_csv_dir(s, scenario / "crosswalks", "bench")
        for key, items in master.items():
            kind = key.replace("_", "-")
            model, keys = erp_master_data.TABLES[kind]
            upsert(s, model, erp_master_data._rows(kind, items), keys)
    for path in sorted((scenario / "ehr").iterdir()):
        ingest_file(path, engine, business_date=DAY, validate=False)
    for path in sorted((scenario / "sftp").rglob("*.835"), key=lambda p: ("resend" in p.name, p.name)):
        payer_remittance.process_file(path, engine, payer_folder=path.parent.name, business_date=DAY)
    return engine


def _timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, round(time.perf_counter() - started, 3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encounters", type=int, default=60)
    parser.add_argument("--nights", type=int, default=5)
    parser.add_argument("--rows", type=int, default=0, help="also time N synthetic charge lines")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_data_docs_") as tmp:
        root = Path(tmp)
        os.environ["CAREFABRIC_DATA_DIR"] = str(root / "data")
        os.environ.setdefault("CAREFABRIC_SANDBOX", "1")  # the generated day is tokenized with the sandbox key
        # in a child: the ingest below imports GX in this process (what a fresh task process pays)
        _, import_s = _timed(subprocess.run, [sys.executable, "-c", "import great_expectations"], check=True)
        engine = _load_day(root, args.encounters)
        from carefabric.quality.checkpoint import run_nightly_checkpoint
        from carefabric.quality.nightly import day_frames
        from carefabric.quality.validate import validate_frame

        frames, read_s = _timed(day_frames, engine, DAY)
        reference = min(_timed(validate_frame, "charges", frames["charges"])[1] for _ in range(3))
        nights = [_timed(run_nightly_checkpoint, frames, DAY + dt.timedelta(days=i))[1] for i in range(args.nights)]
        out: dict[str, Any] = {
            "rows": {name: len(f) for name, f in frames.items()},
            "import_great_expectations_s": import_s,
            "read_day_from_store_s": read_s,
            "first_night_s (context created)": nights[0],
            "later_nights_s": nights[1:],
            "reference validate_frame(charges)_s": reference,
            "ratio later night / reference": round(min(nights[1:] or nights) / reference, 1),
        }
        if args.rows:
            import pandas as pd

            day = frames["charges"]
            copies = -(-args.rows // max(len(day), 1))
            charges = pd.concat([day] * copies, ignore_index=True).head(args.rows)
            charges["line_key"] = [f"BENCH|{i}" for i in range(len(charges))]  # unique, as in a real day
            big = {**frames, "charges": charges}
            out[f"night with {args.rows} charge lines_s"] = _timed(run_nightly_checkpoint, big, DAY + dt.timedelta(days=99))[1]
            out[f"reference validate_frame({args.rows})_s"] = _timed(validate_frame, "charges", big["charges"])[1]
        engine.dispose()
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
