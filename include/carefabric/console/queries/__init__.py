"""What the operator console and CLI show: interface health, the exception queue, traces, crosswalks.

Plain functions over a SQLAlchemy ``Session`` returning JSON-ready dicts (amounts as decimal
strings, times in ISO 8601), one module per console page. Shared by the FastAPI console and the
``carefabric`` CLI, so both show the same thing. No PHI leaves here (see ``common``).
"""

from __future__ import annotations

from carefabric.console.queries.common import (
    INTERFACES,
    REPLAY_DAG,
    charge_json,
    exception_json,
    iso,
    money,
    replay_command,
    today,
)
from carefabric.console.queries.crosswalks import (
    audit_entries,
    crosswalk_history,
    crosswalk_rows,
    crosswalks_overview,
)
from carefabric.console.queries.exceptions import (
    exception_detail,
    exception_facets,
    list_exceptions,
    trace_key_for,
)
from carefabric.console.queries.health import erp_summary, health, last_reconciliation
from carefabric.console.queries.trace import trace

__all__ = [
    "INTERFACES", "REPLAY_DAG", "audit_entries", "charge_json", "crosswalk_history", "crosswalk_rows",
    "crosswalks_overview", "erp_summary", "exception_detail", "exception_facets", "exception_json", "health",
    "iso", "last_reconciliation", "list_exceptions", "money", "replay_command", "today", "trace", "trace_key_for",
]
