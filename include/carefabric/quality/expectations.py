"""The expectation suites carefabric holds each canonical dataset to.

Suites are declared here as plain data (``ExpectationSpec``) rather than as Great Expectations
objects, for three reasons: the DAGs import this package at parse time and must not pay for
importing GX; the finance report and the docs can list what is checked without GX; and a rule
change is a one-line diff reviewers can read. ``validate.py`` turns the specs into GX
expectations when a frame is validated.

Column names are those of the canonical records flattened into frames
(``carefabric.canonical``): amounts as integer cents (``amount_cents``, ``charge_cents``,
``paid_cents``, ``payment_cents``), CLP02 status as the string the 835 carries.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

# FT1-6: CG charge, CD credit, PY payment, AJ adjustment (DOMAIN.md).
TRANSACTION_TYPES: tuple[str, ...] = ("CG", "CD", "PY", "AJ")

# Event types the router sends on: ADT admit/discharge/register/update/cancels and DFT^P03,
# plus the FHIR R4 Encounter.status values (a FHIR Encounter carries its status as event type).
HL7_ROUTED_EVENTS: tuple[str, ...] = ("A01", "A03", "A04", "A08", "A11", "A13", "P03")
FHIR_ENCOUNTER_STATUSES: tuple[str, ...] = (
    "planned",
    "arrived",
    "triaged",
    "in-progress",
    "onleave",
    "finished",
    "cancelled",
    "entered-in-error",
    "unknown",
)
ROUTED_EVENT_TYPES: tuple[str, ...] = HL7_ROUTED_EVENTS + FHIR_ENCOUNTER_STATUSES

# CLP02 claim status codes a 005010X221A1 835 may carry (DOMAIN.md).
CLAIM_STATUSES: tuple[str, ...] = ("1", "2", "3", "4", "19", "20", "21", "22", "23")

# A CDM code is an identifier, never free text: a space or punctuation means a bad extract.
CDM_CODE_REGEX = r"^[A-Za-z0-9_-]+$"

# Ten million cents is $100,000 for one charge line: above that is a keying or unit error
# (cents sent as dollars, or the reverse), not a real hospital charge.
MAX_LINE_AMOUNT_CENTS = 10_000_000

# dtype names an integer-cents column may have: numpy ints, pandas nullable ints, and "int" for
# an object column of Python ints. A float or Decimal column means someone skipped to_cents().
INTEGER_TYPES: tuple[str, ...] = (
    "int8",
    "int16",
    "int32",
    "int64",
    "Int8",
    "Int16",
    "Int32",
    "Int64",
    "int",
)


@dataclass(frozen=True, slots=True)
class ExpectationSpec:
    """One expectation as data: GX snake_case type, its column and its other arguments."""

    type: str  # e.g. "expect_column_values_to_not_be_null"
    column: str | None = None
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def gx_class_name(self) -> str:
        """The GX Core 1.x class name (``ExpectColumnValuesToNotBeNull``)."""
        return "".join(part.capitalize() for part in self.type.split("_"))

    def describe(self) -> str:
        """A short human label for reports: ``expect_column_values_to_be_in_set(status)``."""
        return f"{self.type}({self.column})" if self.column else self.type


def _exists(*columns: str) -> list[ExpectationSpec]:
    return [ExpectationSpec("expect_column_to_exist", c) for c in columns]


def _not_null(*columns: str) -> list[ExpectationSpec]:
    return [ExpectationSpec("expect_column_values_to_not_be_null", c) for c in columns]


def _in_set(column: str, values: tuple[Any, ...]) -> ExpectationSpec:
    return ExpectationSpec("expect_column_values_to_be_in_set", column, {"value_set": list(values)})


_CHARGES: tuple[ExpectationSpec, ...] = (
    # Schema first: a missing column fails here with a clear name, not as a metric error.
    *_exists(
        "line_key",
        "facility",
        "encounter_id",
        "transaction_date",
        "transaction_type",
        "cdm_code",
        "quantity",
        "amount_cents",
        "department",
    ),
    *_not_null("line_key"),
    # line_key is the idempotency key: a duplicate in one frame would post the line twice.
    ExpectationSpec("expect_column_values_to_be_unique", "line_key"),
    *_not_null("encounter_id", "transaction_date"),
    _in_set("transaction_type", TRANSACTION_TYPES),
    *_not_null("cdm_code"),
    ExpectationSpec("expect_column_values_to_match_regex", "cdm_code", {"regex": CDM_CODE_REGEX}),
    *_not_null("quantity", "amount_cents"),
    ExpectationSpec(
        "expect_column_values_to_be_in_type_list", "amount_cents", {"type_list": list(INTEGER_TYPES)}
    ),
    ExpectationSpec(
        "expect_column_values_to_be_between",
        "amount_cents",
        {"min_value": -MAX_LINE_AMOUNT_CENTS, "max_value": MAX_LINE_AMOUNT_CENTS},
    ),
    *_not_null("department"),
)

_ENCOUNTERS: tuple[ExpectationSpec, ...] = (
    *_exists("encounter_id", "event_type", "facility"),
    *_not_null("encounter_id"),
    _in_set("event_type", ROUTED_EVENT_TYPES),
    *_not_null("facility"),
)

_REMIT_CLAIMS: tuple[ExpectationSpec, ...] = (
    *_exists("patient_control_number", "status", "charge_cents", "paid_cents"),
    # CLP01 is the join key to the billing claim: without it the payment cannot be applied.
    *_not_null("patient_control_number"),
    _in_set("status", CLAIM_STATUSES),
    *_not_null("charge_cents", "paid_cents"),
)

_REMITTANCES: tuple[ExpectationSpec, ...] = (
    *_exists("trace_number", "payment_cents", "balanced"),
    # TRN02 ties the remittance to the bank deposit (cash reconciliation key).
    *_not_null("trace_number", "payment_cents", "balanced"),
    # An unbalanced 835 must have become a REMIT_UNBALANCED exception before reaching here.
    _in_set("balanced", (True,)),
)

SUITES: Mapping[str, tuple[ExpectationSpec, ...]] = MappingProxyType(
    {
        "charges": _CHARGES,
        "encounters": _ENCOUNTERS,
        "remit_claims": _REMIT_CLAIMS,
        "remittances": _REMITTANCES,
    }
)


def suite_for(dataset: str) -> tuple[ExpectationSpec, ...]:
    """The specs for a dataset name; a ``KeyError`` naming the known datasets otherwise."""
    try:
        return SUITES[dataset]
    except KeyError:
        raise KeyError(f"no expectation suite for dataset {dataset!r}; known: {sorted(SUITES)}") from None
