"""X12 835 (payer remittance) reading for carefabric.

* :func:`iter_transactions` / :func:`read_file` (``reader``): a streaming 835 reader producing
  ``carefabric.canonical.Remittance`` records, with the three balancing rules (``balance``)
  checked while it streams.
* :func:`validate_file` (``validate``): pyx12 TR3 syntax validation plus a 999 acknowledgement.
* :func:`file_summary` (``summary``): the JSON-able view behind ``carefabric 835 FILE``.

``validate`` imports pyx12 lazily, so reading 835s never pays for loading its maps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from carefabric.x12.balance import balance_errors
from carefabric.x12.envelope import Delimiters, detect_delimiters
from carefabric.x12.errors import TransactionError, X12Error
from carefabric.x12.reader import FileResult, iter_transactions, read_file
from carefabric.x12.summary import file_summary  # noqa: F401

if TYPE_CHECKING:
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


def __getattr__(name: str) -> Any:
    if name in ("Finding", "ValidationResult", "validate_file"):
        from carefabric.x12 import validate

        return getattr(validate, name)
    raise AttributeError(f"module 'carefabric.x12' has no attribute {name!r}")
