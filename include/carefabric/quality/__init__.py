"""Data quality: Great Expectations Core 1.x suites for the canonical datasets.

Importing this package is cheap (no GX, no pandas): the DAGs import it at parse time, and
``validate_frame`` imports GX only when it runs.

    from carefabric.quality import validate_frame
    result = validate_frame("charges", frame)   # QualityResult; result.to_dict() is JSON-able

Two uses of the same suites (``expectations.SUITES``): each feed validates every file as it
lands (``validate``: ephemeral, results in the store for the email); the nightly close runs one
persisted GX Checkpoint over the whole day and rebuilds the Data Docs site
(``nightly.build_day_docs`` -> ``checkpoint``; paths and links in ``docs_site``).
"""

from carefabric.quality.expectations import SUITES, ExpectationSpec, suite_for
from carefabric.quality.validate import ExpectationOutcome, QualityResult, is_phi_column, validate_frame

__all__ = [
    "SUITES",
    "ExpectationOutcome",
    "ExpectationSpec",
    "QualityResult",
    "is_phi_column",
    "suite_for",
    "validate_frame",
]
