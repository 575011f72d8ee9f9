"""``carefabric fhir FILE``: the canonical JSON of every resource of a FHIR R4 NDJSON file (one
resource a line, as a bulk export writes it) or of a Bundle (``.json``), as ``ehr_ingest`` would
read it. Same PHI masking and exit codes as ``carefabric hl7`` (``cli.EXIT_CODES``): 0 read, 1
read with problems (some resources are errors, with their reason code), 2 unreadable (missing,
not JSON, no FHIR resource in it).

Without a store the chargemaster is not consulted: a ChargeItem without ``priceOverride`` shows
``needs_price`` (ingest prices it from the CDM crosswalk), and references to resources in other
files do not resolve.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, TextIO

from carefabric.fhir import SYSTEM_VISIT, FhirConfig, FhirItem, ReadContext, iter_resources


def _item_json(item: FhirItem, show_phi: bool) -> dict[str, Any]:
    from carefabric.cli import _jsonable, _mask_phi

    out: dict[str, Any] = {"line": item.line_number, "resource_type": item.resource_type, "id": item.resource_id}
    if item.error:
        out.update(status="error", reason_code=item.reason_code, error=item.error)
        return out
    out["status"] = "skipped" if item.skipped_reason else "ok"
    if item.skipped_reason:
        out["skipped_reason"] = item.skipped_reason
    if item.encounter is not None:
        encounter = _jsonable(item.encounter)
        out["encounter"] = encounter if show_phi else _mask_phi(encounter)
    if item.charges:
        out["charges"] = [_jsonable(c) for c in item.charges]
    if item.coverage is not None:
        out["coverage"] = item.coverage
    if item.claim is not None:
        out["claim"] = item.claim
    out["warnings"] = item.warnings
    return out


def cmd_fhir(args: argparse.Namespace, out: TextIO) -> int:
    from carefabric.cli import CliError, _indent

    path = Path(args.file)
    config = FhirConfig(facility=args.facility, visit_systems=(SYSTEM_VISIT, *(args.visit_system or ())))
    counts = {"ok": 0, "skipped": 0, "error": 0}
    records: list[dict[str, Any]] = []
    try:
        for item in iter_resources(path, ReadContext(config=config)):
            record = _item_json(item, args.show_phi)
            counts[record["status"]] += 1
            records.append(record)
    except (OSError, UnicodeError) as exc:
        raise CliError(str(path), getattr(exc, "strerror", None) or str(exc)) from None
    if not any(r["resource_type"] for r in records):
        reason = records[0]["error"].split(": ", 1)[-1] if records else "no FHIR resource in file"
        raise CliError(str(path), reason)
    body = ",\n".join(_indent(json.dumps(r, indent=2, ensure_ascii=False), 4) for r in records)
    out.write('{\n  "file": ' + json.dumps(str(path), ensure_ascii=False) + ',\n  "resources": [\n' + body)
    summary = {"resources": len(records), **counts}
    out.write('\n  ],\n  "summary": ' + _indent(json.dumps(summary, indent=2), 2).lstrip() + "\n}\n")
    return 1 if counts["error"] else 0


def add_parser(sub: Any, epilog: str) -> None:
    p = sub.add_parser("fhir", help="print canonical JSON of every resource of a FHIR R4 NDJSON file or Bundle",
                       epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", metavar="FILE")
    p.add_argument("--show-phi", action="store_true", help="print MRNs in clear")
    p.add_argument("--facility", help="the source's default facility (when a resource names none)")
    p.add_argument("--visit-system", action="append", metavar="URI",
                   help="identifier system of the source's visit numbers (repeatable; type VN is always taken)")
    p.set_defaults(handler=cmd_fhir)
