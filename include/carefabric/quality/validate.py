"""Validate a whole canonical frame with Great Expectations Core 1.x and keep a small result.

Why GX Core and not the Airflow GX provider: the provider pins ``structlog<25.5`` and cannot be
installed beside Airflow 3.3, and its DataFrame operator loads data at DAG parse time. Calling
GX Core from a task avoids both.

Why an ephemeral context built per call: nothing of GX's own (no ``gx/`` folder, no data docs,
no stores) has to exist on a worker, two tasks validating at once share no state, and the
result we keep is our own ``QualityResult``, a small JSON-able record the integration store and
the nightly finance email read. Building the context, datasource, dataframe asset, batch
definition, suite and validation definition costs a few milliseconds; the run itself dominates.
The persisted side (a file-backed context, a Checkpoint, Data Docs) is the nightly close's alone
(``checkpoint.py``): once a night, off the ingest path.

Timing (this machine, GX 1.24.1, pandas 3.1.1, warm process): ``import great_expectations``
costs 1.7-2.4 s once per process. Validating the 21-expectation ``charges`` suite takes about
70 ms for 1,000 rows, 75 ms for 10,000 (80-180 ms under pytest) and 145 ms for 100,000.
Nearly all of it is GX's fixed cost per run (context, metric graph): called per message it
would cost ~70 ms a record. Validate whole frames once per file or batch after parsing, never
on the per-record path. ``tests/test_quality.py`` re-measures 10,000 rows (fails above 10 s).

PHI: unexpected values are copied into the result only for columns that do not look like PHI
(``is_phi_column``); for the others only the count is kept, since results go to the store and
to an email.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import re
import string
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from carefabric import phi
from carefabric.quality.expectations import ExpectationSpec, suite_for

if TYPE_CHECKING:  # pragma: no cover - typing only; pandas is imported lazily
    import pandas

# Column names that hold or may hold protected health information (DOMAIN.md: names, MRNs,
# birth dates, addresses, phone numbers, SSNs, member ids; canonical ``*_phi`` fields). Matched
# anywhere in the name, case-insensitively, on purpose: over-masking a token column costs
# nothing, leaking a member id into an email is a reportable breach.
_PHI_COLUMN = re.compile(
    r"patient|member|mrn|name|dob|birth|ssn|social|phone|address|email|zip|_phi",
    re.IGNORECASE,
)

_MAX_VALUE_CHARS = 80  # a sample value is evidence, not a payload


def is_phi_column(column: str | None) -> bool:
    """True when a column's name suggests PHI, so its values must not leave the store in clear."""
    return bool(column) and _PHI_COLUMN.search(str(column)) is not None


@dataclass(slots=True)
class ExpectationOutcome:
    """The result of one expectation on one frame, reduced to what an operator acts on."""

    expectation_type: str
    column: str | None
    success: bool
    unexpected_count: int | None = None  # None when the expectation is not per-row (type, exists)
    unexpected_values: list[Any] = field(default_factory=list)  # a few samples; empty for PHI columns
    observed_value: Any = None  # for aggregate expectations (e.g. the observed dtype)
    error: str | None = None  # GX raised while computing a metric (e.g. the column is missing)
    kwargs: dict[str, Any] = field(default_factory=dict)  # the rule's arguments, for the report

    @property
    def label(self) -> str:
        """``expect_column_values_to_be_unique(line_key)``: the name used in reports and logs."""
        return f"{self.expectation_type}({self.column})" if self.column else self.expectation_type

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExpectationOutcome:
        return cls(
            expectation_type=data["expectation_type"],
            column=data.get("column"),
            success=bool(data["success"]),
            unexpected_count=data.get("unexpected_count"),
            unexpected_values=list(data.get("unexpected_values") or []),
            observed_value=data.get("observed_value"),
            error=data.get("error"),
            kwargs=dict(data.get("kwargs") or {}),
        )


@dataclass(slots=True)
class QualityResult:
    """One dataset's validation: what the store records and the finance email shows.

    ``to_dict()`` holds only JSON types (no NaN, no numpy scalars, no dates), so it can go
    straight into a JSON column or an XCom.
    """

    dataset: str
    success: bool
    evaluated: int
    failed: int
    rows: int
    results: list[ExpectationOutcome] = field(default_factory=list)
    duration_ms: int = 0
    gx_version: str | None = None

    @property
    def failures(self) -> list[ExpectationOutcome]:
        return [r for r in self.results if not r.success]

    def summary(self) -> str:
        """One line for logs and exception summaries (no values, so no PHI)."""
        if self.success:
            return f"{self.dataset}: {self.evaluated} expectations passed on {self.rows} rows"
        failed = ", ".join(
            f"{f.label}" + (f" x{f.unexpected_count}" if f.unexpected_count else "") for f in self.failures
        )
        return f"{self.dataset}: {self.failed} of {self.evaluated} expectations failed on {self.rows} rows: {failed}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> QualityResult:
        return cls(
            dataset=data["dataset"],
            success=bool(data["success"]),
            evaluated=int(data.get("evaluated", 0)),
            failed=int(data.get("failed", 0)),
            rows=int(data.get("rows", 0)),
            results=[ExpectationOutcome.from_dict(r) for r in data.get("results") or []],
            duration_ms=int(data.get("duration_ms", 0)),
            gx_version=data.get("gx_version"),
        )

    @classmethod
    def coerce(cls, value: QualityResult | Mapping[str, Any]) -> QualityResult:
        """Accept either a result or its stored dict (the report reads both)."""
        return value if isinstance(value, QualityResult) else cls.from_dict(value)


# --------------------------------------------------------------------------- GX plumbing


def _ephemeral_context() -> Any:
    """An in-memory GX context with progress bars and analytics off.

    Progress bars would write tqdm noise into every task log; analytics would be a network call
    from a hospital network, which we do not make.
    """
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
    )
    return gx.get_context(mode="ephemeral", project_config=config)


def _to_gx(spec: ExpectationSpec) -> Any:
    """Build the GX expectation object for a spec (class looked up by its 1.x name)."""
    import great_expectations.expectations as gxe

    cls = getattr(gxe, spec.gx_class_name, None)
    if cls is None:
        raise ValueError(f"GX has no expectation {spec.type!r} ({spec.gx_class_name})")
    kwargs = dict(spec.kwargs)
    if spec.column is not None:
        kwargs["column"] = spec.column
    return cls(**kwargs)


def _json_value(value: Any) -> Any:
    """A GX sample value as a JSON type: NaN/NA/NaT become None, numpy scalars Python ones."""
    if value is None or isinstance(value, bool | int | str):
        return value[:_MAX_VALUE_CHARS] if isinstance(value, str) else value
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if hasattr(value, "item") and not isinstance(value, list | tuple | dict):  # numpy scalar
        with contextlib.suppress(TypeError, ValueError):  # not convertible: fall through to str()
            return _json_value(value.item())
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    try:  # pandas NA / NaT compare unequal to themselves or refuse to be truth-tested
        if value != value:
            return None
    except (TypeError, ValueError):
        return None
    text = str(value)
    if text in {"NaT", "<NA>", "nan"}:
        return None
    return text[:_MAX_VALUE_CHARS]


def _exception_message(info: Any) -> str | None:
    """GX nests exception info per metric; find the first raised exception's message."""
    if isinstance(info, Mapping):
        if info.get("raised_exception"):
            return str(info.get("exception_message") or "expectation raised an exception")
        for inner in info.values():
            if isinstance(inner, Mapping):
                message = _exception_message(inner)
                if message:
                    return message
    return None


_NEUTRAL = str.maketrans(string.punctuation, "-" * len(string.punctuation))


def _code_shaped(value: Any) -> bool:
    """A sample worth keeping: a shifted field can put a name in a code column, so a string is
    kept only when it is code-shaped (keys joined with '|' are; spaces and PHI shapes are not)."""
    if not isinstance(value, str):
        return True
    neutral = value.translate(_NEUTRAL)
    return phi.code(neutral) == neutral


def _outcome(result: Any, sample_size: int) -> ExpectationOutcome:
    config = result.expectation_config
    kwargs = {k: v for k, v in dict(config.kwargs).items() if k not in {"column", "batch_id"}}
    column = config.kwargs.get("column")
    details: Mapping[str, Any] = result.result or {}
    unexpected = details.get("unexpected_count")
    samples: list[Any] = []
    if unexpected and not is_phi_column(column):
        # Nulls say nothing the count does not (and not_null samples are all null): skip them.
        values = (_json_value(v) for v in details.get("partial_unexpected_list") or [])
        samples = [v for v in values if v is not None and _code_shaped(v)][:sample_size]
    return ExpectationOutcome(
        expectation_type=config.type,
        column=column,
        success=bool(result.success),
        unexpected_count=None if unexpected is None else int(unexpected),
        unexpected_values=samples,
        observed_value=None if is_phi_column(column) else _json_value(details.get("observed_value")),
        error=_exception_message(result.exception_info),
        kwargs={k: _json_kwargs(v) for k, v in kwargs.items()},
    )


def _json_kwargs(value: Any) -> Any:
    if isinstance(value, list | tuple | set | frozenset):
        return [_json_value(v) for v in value]
    return _json_value(value)


def validate_frame(
    name: str,
    df: pandas.DataFrame,
    *,
    specs: Iterable[ExpectationSpec] | None = None,
    sample_size: int = 5,
) -> QualityResult:
    """Validate a whole frame against the dataset's suite and return a ``QualityResult``.

    ``name`` picks the suite in ``expectations.SUITES`` (``charges``, ``encounters``,
    ``remit_claims``, ``remittances``); ``specs`` overrides it (tests, ad hoc checks).
    ``sample_size`` caps the unexpected values kept per expectation (never for PHI columns).
    Never raises for bad data: a failed expectation, or one GX could not compute (missing
    column), is a failed outcome; the caller decides whether that is a ``GX_VALIDATION_FAILED``
    exception.
    """
    chosen = tuple(specs) if specs is not None else suite_for(name)
    if not chosen:
        raise ValueError(f"no expectations to validate {name!r} with")

    import great_expectations as gx

    started = time.perf_counter()
    context = _ephemeral_context()
    asset = context.data_sources.add_pandas(name="carefabric").add_dataframe_asset(name=name)
    batch_definition = asset.add_batch_definition_whole_dataframe("whole_frame")
    suite = context.suites.add(
        gx.ExpectationSuite(name=f"carefabric.{name}", expectations=[_to_gx(s) for s in chosen])
    )
    validation = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"carefabric.{name}.whole_frame", data=batch_definition, suite=suite)
    )
    run = validation.run(
        batch_parameters={"dataframe": df},
        result_format={"result_format": "SUMMARY", "partial_unexpected_count": max(sample_size, 1)},
    )
    elapsed_ms = round((time.perf_counter() - started) * 1000)

    # GX returns results in its own order; put them back in suite order so results are stable.
    order = {(s.type, s.column): i for i, s in reversed(list(enumerate(chosen)))}
    outcomes = sorted(
        (_outcome(r, sample_size) for r in run.results),
        key=lambda o: order.get((o.expectation_type, o.column), len(order)),
    )
    failed = sum(1 for o in outcomes if not o.success)
    return QualityResult(
        dataset=name,
        success=bool(run.success) and failed == 0,
        evaluated=len(outcomes),
        failed=failed,
        rows=len(df),
        results=outcomes,
        duration_ms=elapsed_ms,
        gx_version=getattr(gx, "__version__", None),
    )
