"""The bank side of the cash check: BAI2 statements read into canonical bank transactions, and
deposits reassociated with the 835s that announced them (per EFT/check trace). No Airflow imports.

* :func:`read_statement` (``reader``): a BAI2 file to a ``BankStatement`` (accounts, transactions,
  control-total findings); ``BankFileError`` when it cannot be read.
* :func:`match_deposits` (``reassociation``): deposits against 835 BPR02 per trace for a date.
"""

from __future__ import annotations

from carefabric.bank.model import AccountSummary, BankFileError, BankStatement, BankTransaction
from carefabric.bank.reader import find_trace, read_statement
from carefabric.bank.reassociation import match_deposits

__all__ = [
    "AccountSummary",
    "BankFileError",
    "BankStatement",
    "BankTransaction",
    "find_trace",
    "match_deposits",
    "read_statement",
]
