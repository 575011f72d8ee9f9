"""Deterministic scenario generator: one business day (or several) of a hospital network.

``generate(out, seed=..., encounters=..., days=..., facilities=..., start_date=...)`` writes the
EHR extracts (HL7 v2 batches and FHIR NDJSON), the payers' 835 files, the bank's statements, the
ERP master data, the billing platform's seed, the governed crosswalks, the ground truth and a
manifest. Same arguments give the same bytes: all randomness comes from ``random.Random`` seeded
with text derived from ``seed`` (string seeding is stable across processes and
``PYTHONHASHSEED``), no wall clock is read, and every JSON file is written with sorted keys.

Output layout (``<out>/``)::

    ehr/<F>_<YYYYMMDD>.hl7           FHS/BHS batch per facility and day (ADT A01/A03/A04/A08/A11, DFT^P03)
    ehr/fhir_<YYYYMMDD>.ndjson       FHIR R4 Encounter, Coverage, ChargeItem (FHIR-only encounters)
    sftp/<payer_id>/era_<x12 id>_<F>_<YYYYMMDD>_<nn>.835   one 835 per payer, payee facility, day
    bank/<YYYYMMDD>.bai              the bank's BAI2 statement of the day (``sandbox.bank_writer``)
    erp_master.json                  ERP /_sandbox/load body (companies ... periods)
    billing_seed.json                billing /_sandbox/load body (claims, payments, patient_balances)
    crosswalks/departments.csv, cdm.csv, payers.csv, facilities.csv
    ground_truth.json                expected postings, receipts, counts, faults, after_fix, the close
    manifest.json                    arguments and sha256 + size of every file above

Day by day, the 835s come first (``sandbox.scenario.remit_day``: they pay claims billed before
the scenario and, from the second date on, claims of the scenario's own earlier encounters),
then the EHR extracts (``sandbox.scenario.ehr_day``). What each carries, and where the seed
places it, is in those modules; ``ground_truth.json`` "scenario" lists where each feature landed.

Faults (one each, all on the first day; see ``ground_truth.json`` "faults"):

1. ``UNKNOWN_CDM``: the first HL7 encounter at F1 has an extra FT1 with ``CDM2099`` (not in
   ``cdm.csv``; department LAB).
2. ``INACTIVE_COST_CENTER``: ``departments.csv`` maps F2/PHARM (or the last facility) to
   ``CC-F2-PHARM-OLD``, which the ERP master marks inactive; every such line is held.
3. ``HL7_PARSE_ERROR``: the second HL7 encounter at F3 (or the last facility) has its DFT^P03
   written with an MSH that ends after MSH-7 (no MSH-9 type, no MSH-10 control id).
4. ``UNKNOWN_PAYER``: ``sftp/PAYER-ZENITH/...`` from x12 id ``1999451001`` (in no crosswalk, not
   in the ERP).
5. ``DUPLICATE_INTERCHANGE``: a byte copy of the ACME/F1 file named ``..._01_resend.835``.
6. ``REMIT_UNBALANCED``: a second PAYER-BLUE file for F2 whose BPR02 is off by a few dollars.
7. ``missing_in_billing``: the last claim of the MEDICARE/F3 file has a claim id billing never had.
8. ``ERP_UNAVAILABLE``: a transient 503 on the first ``POST /api/v1/journal-batches`` (the
   demo arms it through ``/_sandbox/faults``; it must be retried, posted once, no exception).

Besides, placed by the seed: the bank's short deposit and deposit with no 835 (first date), and
"someone edited the ERP" (``erp_edits``: a contractual line doubled after posting, on a later date
when there is one), which the demo applies; ``sandbox.scenario.expected`` derives the suspense,
AR roll-forward and reconciliation items the nightly close must report.

``ground_truth.json`` "counts": ``charge_lines`` are the FT1 lines of parseable messages plus
the FHIR ChargeItems (supply, late and ``CD`` credit lines included; the malformed message's lines
are only in ``charge_lines_held.HL7_PARSE_ERROR``); ``charge_lines_posted`` = ``charge_lines``
minus the ``UNKNOWN_CDM`` and ``INACTIVE_COST_CENTER`` holds; ``messages`` counts MSH segments
by type (``malformed`` for the truncated one); ``claims_remitted`` and ``cash_receipts`` cover
the good 835s only (not the unknown-payer, unbalanced or duplicate file). "inventory_movements"
is a flat list of summarized lines, each with its ``movement_date``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import sys
from pathlib import Path
from typing import Any

from sandbox import bank_writer
from sandbox.ground_truth import Ledger
from sandbox.reference import (
    CHARGEMASTER,
    COMPANY,
    DEPARTMENTS,
    UNKNOWN_CDM,
    UNKNOWN_PAYER,
    Encounter,
    cost_center,
    inactive_cost_center_fault,
)
from sandbox.reference import facilities as make_facilities
from sandbox.scenario import ehr_day, expected, master, remit_day
from sandbox.scenario.common import World, dump_json, sha256_of, write_json_lists
from sandbox.scenario.common import claim_id as claim_id
from sandbox.scenario.common import encounter_id as encounter_id
from sandbox.scenario.ehr import Policy
from sandbox.scenario.remit import EarlierClaim, RemitBuilder
from sandbox.x12_writer import RemitTransaction

GENERATOR_VERSION = 2
FAULT_ORDER = ["unknown_cdm", "inactive_cost_center", "hl7_parse_error", "unknown_payer", "duplicate_interchange",
               "remit_unbalanced", "missing_in_billing", "erp_unavailable"]


def _day_counts(encounters: int, days: int) -> list[int]:
    return [encounters // days + (1 if index < encounters % days else 0) for index in range(days)]


def _clean_outputs(out: Path) -> None:
    """Remove files a previous run wrote here (only our own layout), so no stale file lingers."""
    for sub in ("ehr", "sftp", "crosswalks", "bank"):
        if (out / sub).is_dir():
            shutil.rmtree(out / sub)
    for name in ("erp_master.json", "billing_seed.json", "ground_truth.json", "manifest.json"):
        (out / name).unlink(missing_ok=True)


def _check_arguments(encounters: int, days: int, facilities: int) -> None:
    if facilities < 1 or facilities > 99:
        raise ValueError("facilities must be between 1 and 99")
    if days < 1:
        raise ValueError("days must be at least 1")
    if encounters < 4 * facilities * days:
        raise ValueError(
            f"encounters must be at least 4 x facilities x days ({4 * facilities * days}) "
            "so every fault has an encounter to sit on"
        )


def generate(
    out_dir: Path,
    *,
    seed: int,
    encounters: int,
    days: int,
    facilities: int,
    start_date: dt.date,
    day_encounters: list[int] | None = None,
) -> dict[str, Any]:
    """Write the whole scenario into ``out_dir`` and return the manifest (also written).

    ``day_encounters``: encounters per date (default: ``encounters`` spread evenly), so the demo
    can run a full first date and shorter later ones."""
    _check_arguments(encounters, days, facilities)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _clean_outputs(out)
    for sub in ("ehr", "sftp", "crosswalks"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    facs = make_facilities(facilities)
    dates = [start_date + dt.timedelta(days=index) for index in range(days)]
    counts_per_day = day_encounters or _day_counts(encounters, days)
    if len(counts_per_day) != days or min(counts_per_day) < 4 * facilities:
        raise ValueError(f"day_encounters needs {days} numbers of at least {4 * facilities}")
    world = World(out, seed, facs, dates, counts_per_day, Ledger(), Ledger(), Ledger(),
                  features={"denials": [], "interest": [], "credits": []})
    codes = world.codes
    inactive = inactive_cost_center_fault(codes)
    department_map = {(code, dept): cost_center(code, dept) for code in codes for dept in DEPARTMENTS}
    department_map[(inactive[0], inactive[1])] = inactive[2]
    policy = Policy(department_map, {e.code for e in CHARGEMASTER}, inactive)  # UNKNOWN_CDM deliberately absent

    builder = RemitBuilder(seed)
    paid: dict[dt.date, list[RemitTransaction]] = {}  # every payment announced: the bank's deposits
    earlier: list[EarlierClaim] = []
    paid_before: list[str] = []
    history: list[Encounter] = []
    for day_index, date in enumerate(dates):
        paid[date] = remit_day.build_day(world, builder, day_index, date, earlier, paid_before)
        earlier += ehr_day.build_day(world, policy, day_index, date, history)
    _add_config_faults(world, policy)

    master.write_crosswalks(out, facs, department_map)
    dump_json(out / "erp_master.json", master.erp_master(facs, inactive, dates))
    billing = world.billing
    billing.claims.sort(key=lambda c: c["claim_id"])
    billing.balances.sort(key=lambda b: (b["encounter_id"], b["account_token"]))
    write_json_lists(out / "billing_seed.json",
                     {"claims": billing.claims, "payments": billing.payments, "patient_balances": billing.balances})
    # The bank comes last and draws from its own random stream: nothing above moves with it.
    bank = bank_writer.write_statements(out, paid, seed=seed, facilities=facs)
    truth = _ground_truth(world, bank)
    truth.update(expected.close_truth(truth, seed))
    dump_json(out / "ground_truth.json", truth)
    return _manifest(out, seed=seed, encounters=encounters, days=days, facilities=facilities, start_date=start_date)


def _add_config_faults(world: World, policy: Policy) -> None:
    """The faults that live in configuration (the retired cost center) or in the ERP (a 503)."""
    inactive_fac, inactive_dept, inactive_cc = policy.inactive
    first = world.dates[0].isoformat()
    world.faults.append({
        "fault": "inactive_cost_center", "exception": "INACTIVE_COST_CENTER", "reference": inactive_cc,
        "expect_open": True, "business_date": first,
        "details": {"facility": inactive_fac, "department": inactive_dept, "held_lines": len(policy.held_inactive),
                    "sample_transaction_ids": policy.held_inactive[:10]},
    })
    world.faults.append({
        "fault": "erp_unavailable", "exception": "ERP_UNAVAILABLE", "reference": "/api/v1/journal-batches",
        "expect_open": False, "business_date": first,
        "expected": "retried with backoff; the batch is posted once; no exception left open",
        "erp_fault": {"path_prefix": "/api/v1/journal-batches", "method": "POST", "status": 503, "count": 1},
    })
    world.faults.sort(key=lambda item: (FAULT_ORDER.index(item["fault"]), item.get("business_date", "")))


def _ground_truth(world: World, bank: dict[str, Any]) -> dict[str, Any]:
    counts, ledger = world.counts, world.ledger
    unknown_fault = next(f for f in world.faults if f["fault"] == "unknown_cdm")
    return {
        "business_date": world.dates[0].isoformat(),
        "business_dates": [date.isoformat() for date in world.dates],
        "seed": world.seed,
        "company": COMPANY,
        "generator_version": GENERATOR_VERSION,
        "counts": {
            "files": dict(sorted(counts.files.items())),
            "messages": dict(sorted(counts.messages.items())),
            "fhir_resources": dict(sorted(counts.fhir.items())),
            "encounters": counts.encounters_hl7 + counts.encounters_fhir,
            "encounters_hl7": counts.encounters_hl7,
            "encounters_fhir": counts.encounters_fhir,
            "charge_lines": counts.charge_lines,
            "supply_lines": counts.supply_lines,
            "credit_lines": counts.credit_lines,
            "charge_lines_posted": counts.posted_lines,
            "charge_lines_held": dict(sorted(counts.held.items())),
            "claims_remitted": counts.claims_remitted,
            "remit_transactions_posted": counts.remit_transactions,
            "cash_receipts": len(ledger.receipts),
        },
        "journals": ledger.journals(),
        "inventory_movements": ledger.inventory_movements(),
        "cash_receipts": ledger.cash_receipts(),
        "faults": world.faults,
        "after_fix": {
            "crosswalk": {
                "table": "cdm", "cdm_code": UNKNOWN_CDM.code, "description": UNKNOWN_CDM.description,
                "revenue_account": UNKNOWN_CDM.revenue_account, "erp_item": None,
                "procedure_code": UNKNOWN_CDM.procedure_code,
            },
            "replay": unknown_fault["details"],
            "journals": world.after_fix.journals(),
        },
        # the unknown payer, once the ERP and the payer crosswalk know it and its 835 is replayed
        "after_payer_fix": {
            "payer": {"x12_payer_id": UNKNOWN_PAYER.x12_id, "erp_payer_id": UNKNOWN_PAYER.payer_id,
                      "name": UNKNOWN_PAYER.name},
            "journals": world.payer_fix.journals(),
            "cash_receipts": world.payer_fix.cash_receipts(),
        },
        "scenario": world.features,
        **bank,
    }


def _manifest(out: Path, **args: Any) -> dict[str, Any]:
    files = sorted(p for p in out.rglob("*") if p.is_file() and p.name != "manifest.json" and _ours(out, p))
    manifest = {
        "generator": "carefabric-sandbox",
        "generator_version": GENERATOR_VERSION,
        "args": {**{k: v for k, v in args.items() if k != "start_date"}, "date": args["start_date"].isoformat()},
        "files": [{"path": p.relative_to(out).as_posix(), "sha256": sha256_of(p), "bytes": p.stat().st_size}
                  for p in files],
    }
    dump_json(out / "manifest.json", manifest)
    return manifest


def _ours(out: Path, path: Path) -> bool:
    """Whether a file under ``out`` belongs to the generated layout (foreign files are not listed)."""
    rel = path.relative_to(out).parts
    return rel[0] in ("ehr", "sftp", "crosswalks", "bank") or (
        len(rel) == 1 and rel[0] in ("erp_master.json", "billing_seed.json", "ground_truth.json")
    )


# --------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sandbox generate",
        description="Write a deterministic hospital-network scenario with its ground truth.",
    )
    parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    parser.add_argument("--encounters", type=int, default=60, help="encounters in total (default 60)")
    parser.add_argument("--days", type=int, default=1, help="business days (default 1)")
    parser.add_argument("--facilities", type=int, default=3, help="facilities F1..Fn (default 3)")
    parser.add_argument(
        "--date",
        type=dt.date.fromisoformat,
        default=dt.date(2025, 3, 14),
        help="first business date YYYY-MM-DD",
    )
    parser.add_argument("--day-encounters", type=lambda text: [int(n) for n in text.split(",")], default=None,
                        help="encounters per date, comma separated (e.g. 60,15,15; default: spread evenly)")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    return parser


def main(argv: list[str] | None = None) -> int:
    """CLI entry (``python -m sandbox generate ...`` calls this with the arguments after ``generate``)."""
    args = build_parser().parse_args(argv)
    try:
        manifest = generate(
            args.out,
            seed=args.seed,
            encounters=args.encounters,
            days=args.days,
            facilities=args.facilities,
            start_date=args.date,
            day_encounters=args.day_encounters,
        )
    except ValueError as exc:
        print(f"generate: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {len(manifest['files'])} files to {args.out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main(sys.argv[1:]))
