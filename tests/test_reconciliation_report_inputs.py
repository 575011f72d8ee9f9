"""What the nightly report reads from the store: GX results merged per dataset."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from carefabric.interfaces.claims_reconciliation import quality_results
from carefabric.store.bulk import insert_ignore
from carefabric.store.db import get_engine, session_scope, upgrade
from carefabric.store.models import QualityResult

DAY = dt.date(2026, 11, 20)


def _outcome(column: str, success: bool, unexpected: int | None = None) -> dict:
    return {"expectation_type": "expect_column_values_to_not_be_null", "column": column, "success": success,
            "unexpected_count": unexpected, "unexpected_values": [], "observed_value": None, "error": None, "kwargs": {}}


def test_results_of_several_files_merge_into_one_row_per_dataset(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade(url)
    engine = get_engine(url)
    files = [
        ("a", 10, [_outcome("line_key", True), _outcome("department", True)]),
        ("b", 5, [_outcome("line_key", True), _outcome("department", False, 2)]),
        ("c", 7, [_outcome("line_key", True), _outcome("department", False, 1)]),
    ]
    rows = [
        {"interface": "ehr_ingest", "dataset": "charges", "scope": scope, "business_date": DAY,
         "success": all(o["success"] for o in outcomes), "evaluated": 2, "failed": sum(not o["success"] for o in outcomes),
         "rows": n, "results": {"dataset": "charges", "success": True, "evaluated": 2, "failed": 0, "rows": n,
                                "results": outcomes, "duration_ms": 5}}
        for scope, n, outcomes in files
    ]
    rows.append({**rows[0], "scope": "other-day", "business_date": DAY - dt.timedelta(days=1)})
    with session_scope(engine) as session:
        insert_ignore(session, QualityResult, rows, ["interface", "dataset", "scope"])

    (merged,) = quality_results(engine, DAY)
    assert (merged["dataset"], merged["files"], merged["rows"]) == ("charges", 3, 22)
    assert (merged["evaluated"], merged["failed"], merged["success"]) == (2, 1, False)
    department = next(o for o in merged["results"] if o["column"] == "department")
    assert department["success"] is False and department["unexpected_count"] == 3
    engine.dispose()
