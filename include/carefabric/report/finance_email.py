"""The nightly finance email: control totals, what did not match and why, exceptions, data quality.

Finance reads this the morning after the claims-to-ledger reconciliation (DOMAIN.md). It must
answer, without opening Airflow: did the three ledgers agree, which items did not and why, what
went to the exception queue, and did the inbound data pass its quality checks. The unmatched
items also go as a CSV, since finance works them in a spreadsheet.

The module is library-level (no Airflow): the DAG builds the inputs from the store, calls
``build_finance_report`` and then ``send`` with its SMTP connection's values.

Inputs
------
``summary`` (control totals; every amount is integer cents)::

    {
      "business_date": "2026-11-23",      # optional; the business_date argument wins
      "run_id": "scheduled__...",         # optional; shown in the footer
      "charges": {                        # EHR charges = billing accepted = GL gross revenue
        "ehr_cents": 1234500, "billing_cents": 1234500, "gl_cents": 1232000,
        "variance_cents": 2500,           # optional; default max(side totals) - min(side totals)
        "items_by_status": {"matched": 40, "amount_mismatch": 1},
      },
      "claims": {                         # billing claim payments = 835 CLP04 = GL AR relief
        "billing_cents": ..., "remit_cents": ..., "gl_cents": ..., "items_by_status": {...},
      },
      "cash": {                           # BPR02 per EFT trace = GL cash clearing
        "remit_cents": ..., "gl_cents": ..., "items_by_status": {...},
      },
      "journals_posted": 3,               # journal batches posted to the ERP for the date
      "debits_cents": 4567800,            # sum of their debits ...
      "credits_cents": 4567800,           # ... and credits (they must be equal)
      "exceptions_open": 7,               # optional: open exceptions of every date
    }

A check is any key whose value is a mapping; its sides are its ``<side>_cents`` keys (known
sides ``ehr``, ``billing``, ``remit``, ``gl`` in that order, others after). ``items_by_status``
is optional: when absent the counts are taken from ``items``. Other scalar keys are shown in a
small "other totals" table (``*_cents`` keys formatted as money).

``items`` (one row per reconciliation item, a pandas DataFrame; the store's
``reconciliation_items`` rows work as they are: ``check_name``/``item_key`` are read as
``check``/``key``, ``detail["reason"]`` as ``reason``, and ``detail``, ``id``, ``run_id`` are
dropped): ``check``, ``key`` (cost
center and day, claim id = CLP01, or EFT trace), ``status`` (``matched``, ``missing_in_<side>``,
``amount_mismatch``, ``duplicate``, ``timing``), ``<side>_cents`` per side (null when that side
has no record), ``variance_cents``, ``reason``. Any other column is carried into the CSV, and
masked with ``carefabric.phi.mask`` when its name looks like PHI (items should carry none;
masking is the defence if one slips in).

``quality``: ``QualityResult`` objects or their stored dicts. ``exceptions_by_reason``: the
exceptions opened for the date, ``{reason_code: count}``.

Output
------
``FinanceReport``: ``subject``, ``html`` (Jinja2 with autoescape), ``text`` (plain-text
alternative), ``attachments`` (``unmatched_<date>.csv`` and ``reconciliation_<date>.png``) and
``inline`` (the same PNG as a related part; the HTML shows it through ``cid:``). ``to_mime``
makes the ``EmailMessage`` and ``send`` delivers it over an open SMTP connection (in Airflow the
smtp provider's ``SmtpHook`` opens it: ``carefabric_airflow.email``).
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from carefabric.quality.validate import QualityResult
from carefabric.report.shaping import (
    _business_date,
    _cents,
    _check_names,
    _controls,
    _csv_bytes,
    _held_rows,
    _items_frame,
    _sides,
    _text,
    _unmatched_records,
    format_money,
)
from carefabric.report.vocabulary import REASON_HELP, SIDE_LABELS

if TYPE_CHECKING:  # pragma: no cover - typing only; pandas is imported lazily
    import jinja2
    import pandas

log = logging.getLogger(__name__)

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
HTML_TEMPLATE = "finance_report.html.j2"

UNMATCHED_HTML_CAP = 200  # an email is no place for 10,000 rows: the CSV has them all
TEXT_UNMATCHED_CAP = 50

@dataclass(slots=True)
class FinanceReport:
    """A rendered report, independent of how it is delivered (email, archive, UI)."""

    subject: str
    html: str
    text: str
    attachments: list[tuple[str, bytes, str]] = field(default_factory=list)  # (filename, data, mime)
    inline: list[tuple[str, str, bytes, str]] = field(default_factory=list)  # (cid, filename, data, mime)
    business_date: str = ""
    unmatched_count: int = 0
    exceptions_count: int = 0
    quality_failures: int = 0

    @property
    def needs_action(self) -> bool:
        return bool(self.unmatched_count or self.exceptions_count or self.quality_failures)


# --------------------------------------------------------------------------- rendering


@functools.cache
def _environment() -> jinja2.Environment:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,  # every value in the report is data: escape all of it
        undefined=jinja2.StrictUndefined,  # a typo in the template fails the test, not the email
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["money"] = format_money
    return env


def _subject(date: str, unmatched: int, exceptions: int, quality_failures: int) -> str:
    problems = []
    if unmatched:
        problems.append(f"{unmatched} unmatched")
    if exceptions:
        problems.append(f"{exceptions} exception{'s' if exceptions != 1 else ''}")
    if quality_failures:
        problems.append(f"{quality_failures} data quality failure{'s' if quality_failures != 1 else ''}")
    status = "action needed: " + ", ".join(problems) if problems else "all matched"
    return f"[carefabric] Reconciliation {date}: {status}"


def _text_actions(ctx: Mapping[str, Any]) -> list[str]:
    """What finance must act on first: an empty day, missing feeds, money held, the roll-forward."""
    lines: list[str] = []
    if ctx["empty_day"]:
        lines += [f"NO ACTIVITY recorded for {ctx['business_date']}: check that the day's feeds arrived.", ""]
    lines += [f"MISSING FEED: {w}" for w in ctx["warnings"]]
    if ctx["held_rows"]:
        lines.append(f"MONEY THAT DID NOT POST: {format_money(ctx['held_cents'])}")
        lines += [f"  {r['what']} {r['reason']}: {r['count']}, {format_money(r['cents'])}" for r in ctx["held_rows"]]
        lines.append("")
    if ctx["rollforward"]:
        lines.append("AR ROLL-FORWARD (opening + charges - payments - adjustments +/- PLB = closing)")
        for r in ctx["rollforward"]:
            lines.append(f"  {r['facility']}: opening {format_money(r['opening_cents'])}, closing "
                         f"{format_money(r['closing_cents'])}, difference {format_money(r['difference_cents'])}")
            lines += [f"    {p['payer_id']}: payments {format_money(p.get('payment_cents'))}, adjustments "
                      f"{format_money((p.get('contractual_cents') or 0) + (p.get('denial_cents') or 0))}, "
                      f"PLB {format_money(p.get('plb_cents'))}" for p in r.get("payers") or [] if p["payer_id"] != "(charges)"]
        lines.append("")
    return lines


def _plain_text(ctx: Mapping[str, Any]) -> str:
    """The text/plain alternative: the same facts, for clients that do not show HTML."""
    sides: list[str] = ctx["sides"]
    lines = [ctx["subject"], "", *_text_actions(ctx)]
    lines.append("CONTROL TOTALS")
    for row in ctx["controls"]:
        amounts = ", ".join(
            f"{SIDE_LABELS.get(s, s)} {format_money(row['totals'][s])}"
            for s in sides
            if row["totals"][s] is not None
        )
        statuses = ", ".join(f"{s} {n}" for s, n in row["items_by_status"]) or "no items"
        lines.append(
            f"  {row['label']}: {'OK' if row['ok'] else 'CHECK'}; {amounts}; "
            f"variance {format_money(row['variance_cents'])}; items: {statuses}"
        )
    posting = ctx["posting"]
    if posting:
        lines.append(
            f"  Journals posted: {posting['journals_posted']}; debits {format_money(posting['debits_cents'])}, "
            f"credits {format_money(posting['credits_cents'])}"
        )
    lines += ["", f"NOT MATCHED ({ctx['unmatched_total']})"]
    for r in ctx["unmatched"][:TEXT_UNMATCHED_CAP]:
        lines.append(
            f"  {r['check']} {r['key']} {r['status']} variance {format_money(r['variance_cents'])}"
            + (f": {r['reason']}" if r["reason"] else "")
        )
    if ctx["unmatched_total"] > TEXT_UNMATCHED_CAP:
        lines.append(f"  ... and {ctx['unmatched_total'] - TEXT_UNMATCHED_CAP} more in the attached CSV")
    elif not ctx["unmatched_total"]:
        lines.append("  none")
    lines += ["", f"EXCEPTIONS OPENED ({ctx['exceptions_total']})"]
    lines += [
        f"  {e['reason']}: {e['count']}  ({e['help']})" if e["help"] else f"  {e['reason']}: {e['count']}"
        for e in ctx["exceptions"]
    ] or ["  none"]
    lines += ["", "DATA QUALITY"]
    for q in ctx["quality"]:
        state = "passed" if q.success else f"FAILED {q.failed} of {q.evaluated}"
        lines.append(f"  {q.dataset} ({q.rows} rows): {state}")
        lines += [
            f"    - {f.label}"
            + (f": {f.unexpected_count} unexpected" if f.unexpected_count else "")
            + (f" ({f.error})" if f.error else "")
            for f in q.failures
        ]
    if not ctx["quality"]:
        lines.append("  no data sets validated")
    if ctx["data_docs_url"]:
        lines.append(f"  Data Docs (every expectation, the whole day): {ctx['data_docs_url']}")
    lines += ["", f"Attached: {', '.join(ctx['attachment_names'])}."]
    return "\n".join(lines) + "\n"


def build_finance_report(
    summary: Mapping[str, Any],
    items: pandas.DataFrame | None,
    quality: Sequence[QualityResult | Mapping[str, Any]],
    exceptions_by_reason: Mapping[str, int],
    *,
    business_date: dt.date | str,
    max_rows: int = UNMATCHED_HTML_CAP,
    chart: bool = True,
    held: Mapping[str, Any] | None = None,
    warnings: Sequence[str] = (),
    rollforward: Sequence[Mapping[str, Any]] = (),
    no_activity: bool | None = None,
    data_docs_url: str | None = None,
) -> FinanceReport:
    """Render the nightly finance report (HTML, text, CSV of unmatched items, chart).

    Pure: reads nothing and sends nothing, so the same inputs give the same report (the DAG can
    archive it, a test can read it). See the module docstring for the input shapes. ``held``:
    money of the date that did not post (``close_facts.money_held``), shown first with its
    reasons in dollars and as lines of the control totals; ``warnings``: missing feeds and the
    like, each a sentence; ``rollforward``: the AR roll-forward rows per facility, each with its
    payers (``reconciliation.rollforward``); ``no_activity``: nothing arrived or posted for the
    date (None: no items and nothing held); ``data_docs_url``: the night's Data Docs page
    (``carefabric.quality.docs_site.data_docs_url``), linked under data quality.
    """
    date = _business_date(business_date)
    held_rows = _held_rows(held or {})
    frame = _items_frame(items)
    checks = _check_names(summary, frame["check"].astype(str).unique().tolist())
    side_keys = list(frame.columns)
    for check in checks:
        entry = summary.get(check)
        if isinstance(entry, Mapping):
            side_keys += list(entry)
    sides = _sides(side_keys)
    controls = _controls(summary, frame, checks, sides)
    unmatched = _unmatched_records(frame, checks, sides)
    results = [QualityResult.coerce(q) for q in quality]
    exceptions = _exception_rows(exceptions_by_reason)
    exceptions_total = sum(e["count"] for e in exceptions)
    quality_failures = sum(1 for q in results if not q.success)
    csv_name = f"unmatched_{date}.csv"
    attachments: list[tuple[str, bytes, str]] = [(csv_name, _csv_bytes(unmatched, sides), "text/csv")]
    inline = _chart_parts(date, controls, exceptions) if chart else []
    attachments += [(name, png, mime) for _, name, png, mime in inline]
    held_cents = sum(r["cents"] for r in held_rows)
    empty_day = (frame.empty and not held_rows) if no_activity is None else no_activity
    subject = _subject_with_actions(_subject(date, len(unmatched), exceptions_total, quality_failures),
                                    date, held_cents, warnings, empty_day)
    ctx: dict[str, Any] = {
        "subject": subject, "business_date": date, "run_id": _text(summary.get("run_id")), "sides": sides,
        "side_labels": {s: SIDE_LABELS.get(s, s) for s in sides}, "controls": controls,
        "posting": _posting(summary), "other_totals": _other_totals(summary, checks), "unmatched": unmatched,
        "unmatched_shown": unmatched[: max(max_rows, 0)], "unmatched_total": len(unmatched),
        "exceptions": exceptions, "exceptions_total": exceptions_total, "quality": results,
        "quality_failures": quality_failures, "chart_cid": inline[0][0] if inline else None, "csv_name": csv_name,
        "attachment_names": [a[0] for a in attachments],
        "needs_action": bool(unmatched or exceptions_total or quality_failures or held_cents or warnings or empty_day),
        "held_rows": held_rows, "rollforward": [dict(r) for r in rollforward], "held_cents": held_cents,
        "warnings": list(warnings), "empty_day": empty_day, "data_docs_url": data_docs_url,
    }
    html = _environment().get_template(HTML_TEMPLATE).render(**ctx)
    return FinanceReport(subject=subject, html=html, text=_plain_text(ctx), attachments=attachments, inline=inline,
                         business_date=date, unmatched_count=len(unmatched), exceptions_count=exceptions_total,
                         quality_failures=quality_failures)


def _exception_rows(exceptions_by_reason: Mapping[str, int]) -> list[dict[str, Any]]:
    return [
        {"reason": reason, "count": int(count), "help": REASON_HELP.get(reason, "")}
        for reason, count in sorted(exceptions_by_reason.items(), key=lambda kv: (-int(kv[1]), kv[0]))
        if int(count)
    ]


def _posting(summary: Mapping[str, Any]) -> dict[str, Any]:
    """Journals posted for the date and whether their debits equal their credits."""
    if not any(k in summary for k in ("journals_posted", "debits_cents", "credits_cents")):
        return {}
    debits, credits = _cents(summary.get("debits_cents")), _cents(summary.get("credits_cents"))
    return {"journals_posted": int(summary.get("journals_posted") or 0), "debits_cents": debits,
            "credits_cents": credits, "balanced": debits == credits}


def _other_totals(summary: Mapping[str, Any], checks: list[str]) -> list[tuple[str, str]]:
    shown = {"business_date", "run_id", "journals_posted", "debits_cents", "credits_cents", *checks}
    return [
        (k.removesuffix("_cents").replace("_", " ").capitalize(),
         format_money(_cents(v)) if k.endswith("_cents") else _text(v))
        for k, v in summary.items()
        if k not in shown and not isinstance(v, Mapping | list | tuple | dict)
    ]


def _chart_parts(date: str, controls: list[dict[str, Any]],
                 exceptions: list[dict[str, Any]]) -> list[tuple[str, str, bytes, str]]:
    """The chart as an inline part (cid, filename, png, mime); the cid is stable for the same inputs."""
    from carefabric.report.charts import reconciliation_chart

    png = reconciliation_chart(
        {row["check"]: dict(row["items_by_status"]) for row in controls},
        {e["reason"]: e["count"] for e in exceptions},
        title=f"Reconciliation {date}",
    )
    return [(f"reconciliation-chart-{date}@carefabric", f"reconciliation_{date}.png", png, "image/png")]


def _subject_with_actions(subject: str, date: str, held_cents: int, warnings: Sequence[str], empty_day: bool) -> str:
    """The subject names money not posted, missing feeds and an empty day: never "all matched" then."""
    if not (held_cents or warnings or empty_day):
        return subject
    extra = ([f"{format_money(held_cents)} not posted"] if held_cents else []) + (
        [f"{len(warnings)} missing feed warning{'s' if len(warnings) != 1 else ''}"] if warnings else [])
    if empty_day:
        extra.append("no activity recorded")
    status = subject.split(": ", 1)[1]
    joined = ", ".join(extra)
    return (f"[carefabric] Reconciliation {date}: action needed: {joined}" if status == "all matched"
            else f"{subject}, {joined}")


from carefabric.report.delivery import send, to_mime  # noqa: E402 - re-exported: one import path

__all__ = ["UNMATCHED_HTML_CAP", "FinanceReport", "build_finance_report", "format_money", "send", "to_mime"]
