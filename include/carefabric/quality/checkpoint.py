"""The nightly Great Expectations Checkpoint: the day's datasets validated, Data Docs rebuilt.

The feeds keep validating each file as it lands (``validate.validate_frame``, ephemeral, a few
ms of GX per file on top of the import); this is the close's look at the whole day, persisted:
a file-backed context under the data folder (``docs_site``), one Validation Definition per
dataset over its suite from ``expectations.SUITES``, and ONE checkpoint for the night whose
``UpdateDataDocsAction`` rebuilds the static site.

Why one nightly checkpoint over the day's batches rather than one per feed: the day is what
finance signs off, so one run (one run name, ``nightly-<date>``) holds every dataset of the day
and the index lists the nights; the site is rebuilt once, not once per feed (each rebuild
re-reads the index); and nothing is added to the ingest path, which GX would slow. A GX
checkpoint hands the same batch parameters to each definition, so the datasets cannot be
in-memory frames (one ``dataframe`` parameter for all): they are staged as CSV files named by
date, ``batches/<dataset>/<YYYY-MM-DD>.csv``, read through a daily batch definition with
``{"year", "month", "day"}`` as the checkpoint's parameters, and deleted after the run.

PHI: the checkpoint's ``result_format`` (``RESULT_FORMAT``) excludes unexpected values for
every column: stored results and the rendered pages carry counts and percentages, never a value
from the data. The canonical records hold tokens, not PHI, but a shifted field can put a name in
a code column, and GX renders unexpected values by default.
"""

from __future__ import annotations

import datetime as dt
import html
import shutil
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from carefabric.quality import docs_site
from carefabric.quality.expectations import SUITES, suite_for
from carefabric.quality.validate import _to_gx

if TYPE_CHECKING:  # pragma: no cover - typing only; pandas and GX are imported lazily
    import pandas

DATASOURCE = "carefabric_nightly"
CHECKPOINT = "carefabric_nightly"
SITE = "carefabric"
BATCH_DEFINITION = "daily"

#: Counts and percentages only: no unexpected value, row or index query is stored or rendered.
RESULT_FORMAT: dict[str, Any] = {
    "result_format": "SUMMARY",
    "exclude_unexpected_values": True,
    "include_unexpected_rows": False,
    "partial_unexpected_count": 0,
    "return_unexpected_index_query": False,
}



def _read_dtypes(dataset: str) -> dict[str, str]:
    """Codes and ids read back as strings (CLP02 "1" must stay "1"); cents and flags inferred.

    Not ``Int64`` for cents: GX's type-list check fails a nullable-integer column read from CSV.
    """
    columns = {s.column for s in suite_for(dataset) if s.column}
    return {c: "str" for c in sorted(columns) if not c.endswith("_cents") and c != "balanced"}

# The context's configuration, written once. Our own rather than GX's scaffold: analytics off
# (no call home from a hospital network), no progress bars in task logs, the site under the
# data folder and no "how to" buttons on it.
_CONTEXT_YML = f"""\
config_version: 4.0
config_variables_file_path: uncommitted/config_variables.yml
plugins_directory: plugins/
analytics_enabled: false
progress_bars:
  globally: false
  metric_calculations: false
stores:
  expectations_store:
    class_name: ExpectationsStore
    store_backend: {{class_name: TupleFilesystemStoreBackend, base_directory: expectations/}}
  validation_results_store:
    class_name: ValidationResultsStore
    store_backend: {{class_name: TupleFilesystemStoreBackend, base_directory: uncommitted/validations/}}
  checkpoint_store:
    class_name: CheckpointStore
    store_backend: {{class_name: TupleFilesystemStoreBackend, suppress_store_backend_id: true, base_directory: checkpoints/}}
  validation_definition_store:
    class_name: ValidationDefinitionStore
    store_backend: {{class_name: TupleFilesystemStoreBackend, base_directory: validation_definitions/}}
expectations_store_name: expectations_store
validation_results_store_name: validation_results_store
checkpoint_store_name: checkpoint_store
data_docs_sites:
  {SITE}:
    class_name: SiteBuilder
    show_how_to_buttons: false
    store_backend: {{class_name: TupleFilesystemStoreBackend, base_directory: data_docs/}}
    site_index_builder: {{class_name: DefaultSiteIndexBuilder}}
fluent_datasources: {{}}
"""


@dataclass(slots=True)
class DatasetDocs:
    """One dataset's validation in the night's checkpoint run (no values from the data)."""

    dataset: str
    success: bool
    evaluated: int
    failed: int
    rows: int
    page: str  # the validation result's page, relative to the site root
    failures: list[str] = field(default_factory=list)  # expect_...(column) labels


@dataclass(slots=True)
class NightlyDocs:
    """What the night's checkpoint did: JSON-able for an XCom, enough for a log line."""

    business_date: str
    success: bool
    run_name: str
    datasets: list[DatasetDocs]
    day_page: str
    duration_ms: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        failed = [f"{d.dataset} ({d.failed} failed)" for d in self.datasets if not d.success]
        state = "all passed" if self.success else "failures in " + ", ".join(failed)
        return f"data docs {self.business_date}: {len(self.datasets)} datasets, {state}"


def _batches_dir() -> Path:
    return docs_site.gx_root() / "batches"


def nightly_context() -> Any:
    """The file-backed context with the nightly checkpoint, created or brought up to date.

    Idempotent: the yml is written once; the datasource, assets, suites, definitions and the
    checkpoint are added when missing and a suite is rewritten only when its specs changed.
    """
    import great_expectations as gx

    root = docs_site.gx_root()
    root.mkdir(parents=True, exist_ok=True)
    yml = root / "great_expectations.yml"
    if not yml.exists():
        yml.write_text(_CONTEXT_YML)
    context = gx.get_context(mode="file", project_root_dir=str(root.parent))
    batches = _batches_dir()
    batches.mkdir(parents=True, exist_ok=True)
    # GX tests an asset's folder when it is added and refuses an empty one: say what it is for.
    (batches / "README.txt").write_text("The nightly checkpoint stages each day's datasets here; they are removed after the run.\n")
    source = _datasource(context, batches)
    definitions = [_validation_definition(context, source, name) for name in SUITES]
    if not _checkpoint_current(context, definitions):
        # add_or_update saves every definition and suite again: only when something changed
        context.checkpoints.add_or_update(
            gx.Checkpoint(
                name=CHECKPOINT,
                validation_definitions=definitions,
                actions=[gx.checkpoint.UpdateDataDocsAction(name="update_data_docs", site_names=[SITE])],
                result_format=RESULT_FORMAT,
            )
        )
    return context


def _checkpoint_current(context: Any, definitions: list[Any]) -> bool:
    try:
        stored = context.checkpoints.get(CHECKPOINT)
    except Exception:  # not stored yet
        return False
    return (
        [d.name for d in stored.validation_definitions] == [d.name for d in definitions]
        and [(a.type, list(getattr(a, "site_names", []))) for a in stored.actions] == [("update_data_docs", [SITE])]
        and dict(stored.result_format or {}) == RESULT_FORMAT
    )


def _datasource(context: Any, batches: Path) -> Any:
    try:
        source = context.data_sources.get(DATASOURCE)
    except (KeyError, ValueError, LookupError):
        source = None
    if source is None or Path(str(source.base_directory)) != batches:
        source = context.data_sources.add_or_update_pandas_filesystem(name=DATASOURCE, base_directory=batches)
    return source


def _validation_definition(context: Any, source: Any, name: str) -> Any:
    """The dataset's CSV asset, daily batch definition, suite and Validation Definition."""
    import great_expectations as gx

    if name not in {a.name for a in source.assets}:
        asset = source.add_csv_asset(name=name, dtype=_read_dtypes(name))
        asset.add_batch_definition_daily(
            BATCH_DEFINITION, regex=rf"{name}/(?P<year>\d{{4}})-(?P<month>\d{{2}})-(?P<day>\d{{2}})\.csv"
        )
    batch_definition = source.get_asset(name).get_batch_definition(BATCH_DEFINITION)
    suite = _suite(context, name)
    definition_name = f"carefabric.{name}.nightly"
    try:
        return context.validation_definitions.get(definition_name)
    except Exception:  # GX raises its own DataContextError subclasses for "not found"
        return context.validation_definitions.add(
            gx.ValidationDefinition(name=definition_name, data=batch_definition, suite=suite)
        )


def _suite(context: Any, name: str) -> Any:
    """The dataset's suite, rewritten from ``expectations.SUITES`` when the specs changed."""
    import great_expectations as gx

    wanted = [_to_gx(s) for s in suite_for(name)]
    suite_name = f"carefabric.{name}"
    try:
        suite = context.suites.get(suite_name)
    except Exception:  # not stored yet
        return context.suites.add(gx.ExpectationSuite(name=suite_name, expectations=wanted))
    if _signature(suite.expectations) != _signature(wanted):
        for expectation in list(suite.expectations):
            suite.delete_expectation(expectation)
        for expectation in wanted:
            suite.add_expectation(expectation)
        suite.save()
    return suite


def _signature(expectations: Any) -> list[str]:
    return sorted(f"{e.expectation_type}|{sorted(e.configuration.kwargs.items())!r}" for e in expectations)


def run_nightly_checkpoint(frames: Mapping[str, pandas.DataFrame], day: dt.date, *, keep_days: int | None = None) -> NightlyDocs:
    """Validate the day's frames (one per dataset in ``SUITES``) and rebuild the Data Docs.

    ``keep_days``: results and pages of nights older than that are removed first, so the
    index (rebuilt from every stored result) stays as small as the retention says.
    """
    import time

    import great_expectations as gx

    started = time.perf_counter()
    missing = sorted(set(SUITES) - set(frames))
    if missing:
        raise ValueError(f"the nightly checkpoint needs a frame for every dataset; missing {missing}")
    context = nightly_context()
    if keep_days is not None:
        prune(day - dt.timedelta(days=keep_days))
    staged = [_stage(name, frames[name], day) for name in SUITES]
    run_name = f"nightly-{day.isoformat()}"
    try:
        result = context.checkpoints.get(CHECKPOINT).run(
            batch_parameters={"year": day.year, "month": day.month, "day": day.day},
            run_id=gx.RunIdentifier(run_name=run_name, run_time=dt.datetime.now(dt.UTC)),
        )
    finally:
        for path in staged:  # the staged copy of the day's records is not kept
            path.unlink(missing_ok=True)
    datasets = [_dataset_docs(identifier, validation, frames) for identifier, validation in result.run_results.items()]
    datasets.sort(key=lambda d: list(SUITES).index(d.dataset))
    docs = NightlyDocs(business_date=day.isoformat(), success=bool(result.success), run_name=run_name,
                       datasets=datasets, day_page=docs_site.day_page(day),
                       duration_ms=round((time.perf_counter() - started) * 1000))
    _write_day_page(docs)
    return docs


def _stage(name: str, frame: pandas.DataFrame, day: dt.date) -> Path:
    path = _batches_dir() / name / f"{day.isoformat()}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path


def _dataset_docs(identifier: Any, validation: Any, frames: Mapping[str, Any]) -> DatasetDocs:
    suite_name = str(validation.suite_name)
    dataset = suite_name.removeprefix("carefabric.")
    failures = [
        f"{r.expectation_config.type}({r.expectation_config.kwargs.get('column')})"
        for r in validation.results if not r.success
    ]
    stats = validation.statistics
    return DatasetDocs(
        dataset=dataset, success=bool(validation.success), evaluated=int(stats["evaluated_expectations"]),
        failed=int(stats["unsuccessful_expectations"]), rows=len(frames[dataset]),
        page="validations/" + "/".join(str(p) for p in identifier.to_tuple()) + ".html", failures=failures,
    )


def _write_day_page(docs: NightlyDocs) -> None:
    """``days/<date>.html``: the night's datasets, each linked to its GX result page."""
    rows = "\n".join(
        f'<tr class="{"ok" if d.success else "failed"}"><td><a href="../{html.escape(d.page)}">{html.escape(d.dataset)}</a></td>'
        f'<td class="num">{d.rows}</td><td>{"passed" if d.success else "FAILED"}</td>'
        f'<td class="num">{d.evaluated - d.failed} of {d.evaluated}</td>'
        f"<td>{html.escape(', '.join(d.failures))}</td></tr>"
        for d in docs.datasets
    )
    state = "Every dataset passed." if docs.success else "Some expectations failed: see the datasets marked FAILED."
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Data quality {docs.business_date}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px}}
.num{{text-align:right}}.failed td{{background:#fde8e8}}.ok td{{background:#eef8ee}}</style></head>
<body><h1>Data quality for {docs.business_date}</h1>
<p id="state">{state}</p>
<table id="datasets"><tr><th>Dataset</th><th class="num">Rows</th><th>Result</th><th class="num">Expectations met</th><th>Failed expectations</th></tr>
{rows}
</table>
<p>Checkpoint run <code>{html.escape(docs.run_name)}</code>. <a href="../index.html">All nights and suites</a>.</p>
<p>Counts only: no value from the data is stored or shown here.</p>
</body></html>
"""
    path = docs_site.site_dir() / docs.day_page
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page)


def prune(before: dt.date) -> int:
    """Remove stored results, their pages and day pages of nights before ``before``; how many nights."""
    root = docs_site.gx_root()
    removed: set[str] = set()
    for base in (root / "uncommitted" / "validations", docs_site.site_dir() / "validations"):
        for run_dir in base.glob("*/*/nightly-*"):
            night = run_dir.name.removeprefix("nightly-")
            try:
                old = dt.date.fromisoformat(night) < before
            except ValueError:
                continue
            if old:
                shutil.rmtree(run_dir, ignore_errors=True)
                removed.add(night)
    for page in (docs_site.site_dir() / "days").glob("*.html"):
        try:
            if dt.date.fromisoformat(page.stem) < before:
                page.unlink()
                removed.add(page.stem)
        except ValueError:
            continue
    return len(removed)
