"""X12 835 (payer remittance) reading for carefabric. No Airflow imports.

* :func:`iter_transactions` / :func:`read_file` (``reader``): a streaming 835 reader producing
  ``carefabric.canonical.Remittance`` records, with the three balancing rules (``balance``)
  checked while it streams. Unreadable transactions come out as ``X12Error`` values.
* :func:`validate_file` (``validate``): pyx12 TR3 syntax validation, the acceptance decision and
  a 999 acknowledgement (pyx12 is imported only when validating).
* :func:`file_summary` (``summary``): the JSON-able view behind ``carefabric 835 FILE``.

Synthetic 835s for load tests live in ``sandbox.synth_835`` and the reader-versus-pyx12 measure in
``carefabric_bench.x12_reader``: test data and measures are not product code.
"""

from __future__ import annotations

from carefabric.x12.balance import balance_errors
from carefabric.x12.envelope import Delimiters, detect_delimiters
from carefabric.x12.errors import TransactionError, X12Error
from carefabric.x12.reader import FileResult, iter_transactions, read_file
from carefabric.x12.summary import file_summary
from carefabric.x12.validate import Finding, ValidationResult, validate_file

__all__ = [
    "Delimiters",
    "FileResult",
    "Finding",
    "TransactionError",
    "ValidationResult",
    "X12Error",
    "balance_errors",
    "detect_delimiters",
    "file_summary",
    "iter_transactions",
    "read_file",
    "validate_file",
]
