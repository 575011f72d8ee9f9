"""``make bench`` section "fhir": our FHIR reader against fhir.resources (R4B models) on the same NDJSON.

Why measured: issue 9 asks to validate with a well-kept FHIR model library where its speed
allows. fhir.resources (pydantic models of every R4B resource) validates structure and types
only; our reader (``carefabric.fhir.iter_resources``) reads, resolves references and builds the
canonical encounters and charges. The same file goes through both; the row shows the rates, the
ratio and how many lines the models rejected (the generator's output must be valid R4B).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _ndjson(work: Path, resources: int) -> Path:
    """The sandbox generator's FHIR lines for one day, repeated up to ``resources`` lines."""
    from sandbox.generator import generate

    day = work / "fhir_day"
    generate(day, seed=7, encounters=400, days=1, facilities=3, start_date=dt.date(2026, 11, 23))
    lines = [line for p in sorted((day / "ehr").glob("fhir_*.ndjson")) for line in p.read_text().splitlines() if line]
    path = work / "bench_fhir.ndjson"
    with open(path, "w") as out:
        for n in range(resources):
            out.write(lines[n % len(lines)] + "\n")
    return path


def section(work: Path, sizes: dict[str, int], row: Callable[..., Any], details: dict[str, Any]) -> None:
    from fhir.resources.R4B import get_fhir_model_class

    from carefabric.fhir import ReadContext, iter_resources

    print("\n== FHIR R4 NDJSON: our reader (read + canonical) vs fhir.resources R4B validation (same file)", flush=True)
    path = _ndjson(work, sizes["fhir_resources"])
    lines = path.read_text().splitlines()

    def ours() -> int:
        return sum(1 for item in iter_resources(path, ReadContext()) if item.error is None)

    rejected: list[str] = []

    def models() -> int:
        rejected.clear()
        ok = 0
        for line in lines:
            kind = line.split('"resourceType":"', 1)[1].split('"', 1)[0]
            try:
                get_fhir_model_class(kind).model_validate_json(line)
                ok += 1
            except ValueError as exc:
                rejected.append(f"{kind}: {str(exc).splitlines()[0][:120]}")
        return ok

    times = {}
    for name, fn in (("ours", ours), ("fhir.resources", models)):
        best: float | None = None
        for _ in range(3):
            t0 = time.perf_counter()
            count = fn()
            best = min(best or 1e9, time.perf_counter() - t0)
        assert best is not None
        times[name] = (best, count)
    (ours_s, ours_n), (ref_s, ref_n) = times["ours"], times["fhir.resources"]
    rate, ref_rate = len(lines) / ours_s, len(lines) / ref_s
    details["fhir"] = {"resources": len(lines), "ours_s": round(ours_s, 3), "fhir_resources_s": round(ref_s, 3),
                       "ours_read": ours_n, "models_valid": ref_n, "models_rejected": rejected[:5]}
    row("FHIR NDJSON read+canonical", rate, "resources/s", reference=ref_rate, ref_name="fhir.resources R4B validation",
        ratio=rate / ref_rate, target="reference only", met=None,
        note=f"{len(lines):,} resources (Encounter, Coverage, ChargeItem); models rejected {len(rejected)}; best of 3")
