"""ERP posting: journals, inventory movements and cash receipts from mapped records.

Pure and set-based: no database, no HTTP, no Airflow. The builders take mapped canonical
records (or the DataFrames ``charges_frame`` / ``remit_events_frame`` make of them) and return
canonical ERP documents plus contribution frames for reconciliation; the caller stores them
and sends them with the ERP client. The rules are those of docs/CONTRACTS.md "Posting policy".
"""

from carefabric.posting.cash import TRACE_COLUMNS, build_cash_receipts, remit_traces_frame
from carefabric.posting.external_ids import content_digest, external_id
from carefabric.posting.inventory import build_inventory_movements, inventory_external_id, inventory_rows
from carefabric.posting.journals import (
    CHARGE_COLUMNS,
    CONTRIBUTION_COLUMNS,
    REMIT_EVENT_COLUMNS,
    JournalPosting,
    UnbalancedJournalError,
    assert_balanced,
    build_charge_journal,
    build_remit_journal,
    build_supply_journal,
    charge_posting,
    charges_frame,
    remit_events_frame,
    remit_posting,
    supply_posting,
)

__all__ = [
    "CHARGE_COLUMNS",
    "CONTRIBUTION_COLUMNS",
    "REMIT_EVENT_COLUMNS",
    "TRACE_COLUMNS",
    "JournalPosting",
    "UnbalancedJournalError",
    "assert_balanced",
    "build_cash_receipts",
    "build_charge_journal",
    "build_inventory_movements",
    "build_remit_journal",
    "build_supply_journal",
    "charge_posting",
    "charges_frame",
    "content_digest",
    "external_id",
    "inventory_external_id",
    "inventory_rows",
    "remit_events_frame",
    "remit_posting",
    "remit_traces_frame",
    "supply_posting",
]
