"""The store's ORM models (SQLAlchemy 2, typed). Import everything from here: ``models.Charge``."""

from carefabric.store.models.bank import BankDeposit
from carefabric.store.models.base import NAMING_CONVENTION, Base
from carefabric.store.models.billing import BillingCharge, BillingClaim, BillingPayment, PatientBalance
from carefabric.store.models.crosswalk import (
    CROSSWALK_NAMES,
    CrosswalkHistory,
    CwCdm,
    CwDepartment,
    CwFacility,
    CwPayer,
)
from carefabric.store.models.erp import (
    LIVE_POSTING_STATUSES,
    POSTING_KINDS,
    POSTING_STATUSES,
    ErpPosting,
    ErpPostingLine,
    OutboxLock,
    PostingContribution,
    PostingRecord,
)
from carefabric.store.models.exceptions import (
    EXCEPTION_KINDS,
    EXCEPTION_STATUSES,
    ExceptionEvent,
    ExceptionRecord,
)
from carefabric.store.models.ingest import (
    FILE_SOURCES,
    FILE_STATUSES,
    MESSAGE_STATUSES,
    InboundFile,
    RawMessage,
)
from carefabric.store.models.master import (
    ErpCompany,
    ErpCostCenter,
    ErpGlAccount,
    ErpItem,
    ErpLocation,
    ErpPayer,
    ErpPeriod,
)
from carefabric.store.models.ops import AuditLog, QualityResult, Watermark
from carefabric.store.models.peer import PEER_BUCKETS, PeerCallStat
from carefabric.store.models.recon import (
    RECON_CHECKS,
    RECON_STATUSES,
    RUN_STATUSES,
    ReconciliationItem,
    ReconciliationRun,
)
from carefabric.store.models.records import CHARGE_STATUSES, Charge, Encounter, SupplyUsage
from carefabric.store.models.remit import (
    ADJUSTMENT_LEVELS,
    REMITTANCE_STATUSES,
    Ack999,
    ProviderAdjustment,
    RemitAdjustment,
    RemitClaim,
    RemitLine,
    Remittance,
)

__all__ = [
    "ADJUSTMENT_LEVELS",
    "CHARGE_STATUSES",
    "CROSSWALK_NAMES",
    "EXCEPTION_KINDS",
    "EXCEPTION_STATUSES",
    "FILE_SOURCES",
    "FILE_STATUSES",
    "MESSAGE_STATUSES",
    "NAMING_CONVENTION",
    "PEER_BUCKETS",
    "LIVE_POSTING_STATUSES",
    "POSTING_KINDS",
    "POSTING_STATUSES",
    "RECON_CHECKS",
    "RECON_STATUSES",
    "REMITTANCE_STATUSES",
    "RUN_STATUSES",
    "Ack999",
    "AuditLog",
    "BankDeposit",
    "Base",
    "BillingCharge",
    "BillingClaim",
    "BillingPayment",
    "Charge",
    "CrosswalkHistory",
    "CwCdm",
    "CwDepartment",
    "CwFacility",
    "CwPayer",
    "Encounter",
    "ErpCompany",
    "ErpCostCenter",
    "ErpGlAccount",
    "ErpItem",
    "ErpLocation",
    "ErpPayer",
    "ErpPeriod",
    "ErpPosting",
    "ErpPostingLine",
    "ExceptionEvent",
    "ExceptionRecord",
    "InboundFile",
    "PatientBalance",
    "PeerCallStat",
    "OutboxLock",
    "PostingContribution",
    "PostingRecord",
    "ProviderAdjustment",
    "RawMessage",
    "ReconciliationItem",
    "ReconciliationRun",
    "RemitAdjustment",
    "RemitClaim",
    "RemitLine",
    "Remittance",
    "SupplyUsage",
    "QualityResult",
    "Watermark",
]
