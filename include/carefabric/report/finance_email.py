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
makes the ``EmailMessage`` and ``send`` delivers it with ``smtplib``.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import io
import logging
import smtplib
import ssl
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from carefabric.money import format_cents, from_cents
from carefabric.phi import mask
from carefabric.quality.validate import QualityResult, is_phi_column

if TYPE_CHECKING:  # pragma: no cover - typing only; pandas is imported lazily
    import jinja2
    import pandas

log = logging.getLogger(__name__)

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
HTML_TEMPLATE = "finance_report.html.j2"

UNMATCHED_HTML_CAP = 200  # an email is no place for 10,000 rows: the CSV has them all
TEXT_UNMATCHED_CAP = 50

CHECK_ORDER: tuple[str, ...] = ("charges", "claims", "cash", "bank", "ledger", "integrity", "rollforward")
CHECK_LABELS: dict[str, str] = {
    "charges": "Charges",
    "claims": "Claims",
    "cash": "Cash",
    "ledger": "Ledger",
    "integrity": "ERP documents",
    "bank": "Bank",
    "rollforward": "AR roll-forward",
}
CHECK_RULES: dict[str, str] = {
    "charges": "EHR charges = billing accepted charges = GL gross revenue, per cost center and day",
    "claims": "Billing claim payments = 835 CLP04 paid, per claim (CLP01) and payer (AR relief is checked in the ledger)",
    "cash": "835 BPR02 per EFT trace of the posted remittances = the ERP's cash receipt",
    "ledger": "carefabric's postings = the ERP ledger read back, per account, cost center, facility and day (debits shown)",
    "bank": "every 835 payment received = the bank statement's deposit, per EFT trace",
    "rollforward": "opening AR (ERP) + what carefabric posted = closing AR (ERP), per facility",
    "integrity": "each document carefabric posted is in the ERP unchanged and once; nothing else posted for the day",
}
# reconciliation_items columns (carefabric.store.models.recon) -> the names used here.
STORE_COLUMN_ALIASES: dict[str, str] = {"check_name": "check", "item_key": "key"}
SIDE_ORDER: tuple[str, ...] = ("ehr", "billing", "remit", "bank", "carefabric", "gl", "receipt")
SIDE_LABELS: dict[str, str] = {"ehr": "EHR", "billing": "Billing", "remit": "835 remit", "bank": "Bank",
                               "carefabric": "carefabric posted", "gl": "GL (ERP)", "receipt": "ERP receipt"}

# What each exception reason means for finance and what fixes it (CONTRACTS.md reason codes).
REASON_HELP: dict[str, str] = {
    "HL7_PARSE_ERROR": "EHR message could not be parsed; the rest of its file was processed",
    "UNKNOWN_CDM": "charge code not in the CDM crosswalk; add it (crosswalk set cdm) and replay",
    "UNKNOWN_DEPARTMENT": "department not in the department crosswalk; map it and replay",
    "INACTIVE_COST_CENTER": "department maps to an inactive ERP cost center; remap or reactivate, replay",
    "UNKNOWN_PAYER": "835 from a payer not in the payer crosswalk; nothing from the file posted",
    "UNKNOWN_FACILITY": "facility or payee NPI not in the facility crosswalk",
    "DUPLICATE_INTERCHANGE": "835 already received under another name; not posted twice",
    "DUPLICATE_PAYMENT": "payment (payer, trace, amount) already received under other envelope numbers; not posted twice",
    "TRACE_REUSED": "a known payer trace number carries another amount or date; held until someone decides",
    "REMIT_UNBALANCED": "835 totals do not balance; nothing from it posted",
    "X12_UNREADABLE": "835 envelope unreadable",
    "FHIR_PARSE_ERROR": "FHIR resource could not be parsed",
    "FHIR_CHARGE_STATUS": "ChargeItem with a status that is not a charge decision (unknown); ask the EHR team",
    "FHIR_INVALID_PRICE": "ChargeItem price in another currency or beyond belief; nothing from it posts",
    "FHIR_UNPRICED_CHARGE": "ChargeItem without a price and no chargemaster price; set the CDM price and replay",
    "FHIR_REVERSAL_UNMATCHED": "ChargeItem entered-in-error with no posted charge to reverse; review and discard",
    "FHIR_MISSING_PAYOR": "Coverage without a payor; the encounter's payer is unknown",
    "ERP_REJECTED": "ERP rejected a posting (see the exception for the ERP error code)",
    "ERP_UNCONFIRMED": "the ERP was unavailable; the document is looked up and sent by the next run",
    "GX_VALIDATION_FAILED": "a data set failed its quality checks (see Data quality)",
    "ERP_UNAVAILABLE": "ERP did not answer after retries; will post on replay",
    "BILLING_UNAVAILABLE": "billing platform did not answer after retries",
    "SFTP_UNAVAILABLE": "payer SFTP did not answer after retries",
}


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


# --------------------------------------------------------------------------- formatting


def format_money(cents: int | None) -> str:
    """``123456`` -> ``$1,234.56``; negative ``-$12.05``; None (side has no record) -> ``—``."""
    if cents is None:
        return "—"
    value = from_cents(int(cents))
    sign = "-" if value < 0 else ""
    return f"{sign}${abs(value):,.2f}"


def _cents(value: Any) -> int | None:
    """A cents cell from a DataFrame as int, or None for a missing side (NaN, NA, None)."""
    if value is None:
        return None
    try:
        if value != value:  # NaN
            return None
    except (TypeError, ValueError):  # pandas.NA refuses to be truth-tested
        return None
    if isinstance(value, str):
        value = value.strip()
        if not value:
            return None
        return int(Decimal(value))
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"cents must be whole numbers, got {value!r}")
        return int(value)
    return int(value)


def _text(value: Any) -> str:
    """A cell as text; missing values as the empty string."""
    if value is None:
        return ""
    try:
        if value != value:
            return ""
    except (TypeError, ValueError):
        return ""
    return str(value)


def _business_date(value: dt.date | dt.datetime | str) -> str:
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return dt.date.fromisoformat(str(value)[:10]).isoformat()


# --------------------------------------------------------------------------- shaping the inputs


def _sides(columns: Iterable[str]) -> list[str]:
    found = {c[: -len("_cents")] for c in columns if c.endswith("_cents") and c != "variance_cents"}
    return [s for s in SIDE_ORDER if s in found] + sorted(found - set(SIDE_ORDER))


def _check_names(summary: Mapping[str, Any], item_checks: Iterable[str]) -> list[str]:
    names = [k for k, v in summary.items() if isinstance(v, Mapping)]
    names += [c for c in item_checks if c not in names]
    return [c for c in CHECK_ORDER if c in names] + [c for c in names if c not in CHECK_ORDER]


def _items_frame(items: pandas.DataFrame | None) -> pandas.DataFrame:
    import pandas as pd

    frame = pd.DataFrame() if items is None else items
    # Rows read straight from the store's reconciliation_items use its column names.
    renames = {a: b for a, b in STORE_COLUMN_ALIASES.items() if a in frame.columns and b not in frame.columns}
    if renames:
        frame = frame.rename(columns=renames)
    if "detail" in frame.columns:
        # The store's JSON detail may hold anything; only its "reason" goes out.
        if "reason" not in frame.columns:
            frame = frame.assign(
                reason=[d.get("reason", "") if isinstance(d, Mapping) else "" for d in frame["detail"]]
            )
        frame = frame.drop(columns=["detail"])
    frame = frame.drop(columns=[c for c in ("id", "run_id") if c in frame.columns])
    if len(frame.columns) == 0:
        return pd.DataFrame(columns=["check", "key", "status", "variance_cents", "reason"])
    missing = {"check", "key", "status"} - set(frame.columns)
    if missing:
        raise ValueError(f"reconciliation items lack columns {sorted(missing)}")
    return frame


def _unmatched_records(frame: pandas.DataFrame, checks: list[str], sides: list[str]) -> list[dict[str, Any]]:
    """Unmatched items as dicts (cents as int or None), ordered by check, status, key."""
    base = {"check", "key", "status", "variance_cents", "reason"} | {f"{s}_cents" for s in sides}
    extras = [c for c in frame.columns if c not in base]
    rank = {c: i for i, c in enumerate(checks)}
    records = []
    for row in frame[frame["status"].astype(str) != "matched"].to_dict("records"):
        sides_cents = {s: _cents(row.get(f"{s}_cents")) for s in sides}
        variance = _cents(row.get("variance_cents"))
        if variance is None:
            present = [v for v in sides_cents.values() if v is not None]
            variance = (max(present) - min(present)) if len(present) > 1 else (present[0] if present else 0)
        records.append(
            {
                "check": _text(row["check"]),
                "key": _text(row["key"]),
                "status": _text(row["status"]),
                "sides": sides_cents,
                "variance_cents": variance,
                "reason": _text(row.get("reason")),
                # Defence in depth: items should carry no PHI, but if a column that looks like
                # PHI slipped in, its values go out masked.
                "extras": {
                    c: (mask(_text(row.get(c))) if is_phi_column(c) else _text(row.get(c))) for c in extras
                },
            }
        )
    records.sort(key=lambda r: (rank.get(r["check"], len(rank)), r["status"], r["key"]))
    return records


def _controls(
    summary: Mapping[str, Any], frame: pandas.DataFrame, checks: list[str], sides: list[str]
) -> list[dict[str, Any]]:
    from carefabric.report.charts import status_order

    counted: dict[str, Counter[str]] = {c: Counter() for c in checks}
    for check, status in zip(frame["check"].astype(str), frame["status"].astype(str), strict=True):
        counted.setdefault(check, Counter())[status] += 1
    rows = []
    for check in checks:
        entry = summary.get(check) if isinstance(summary.get(check), Mapping) else {}
        totals = {s: _cents(entry.get(f"{s}_cents")) for s in sides}
        present = [v for v in totals.values() if v is not None]
        variance = _cents(entry.get("variance_cents"))
        if variance is None:
            variance = max(present) - min(present) if present else 0
        by_status = dict(entry.get("items_by_status") or counted.get(check, {}))
        ordered = [(s, int(by_status[s])) for s in status_order(set(by_status))]
        unmatched = sum(n for s, n in ordered if s != "matched")
        rows.append(
            {
                "check": check,
                "label": CHECK_LABELS.get(check, check.replace("_", " ").capitalize()),
                "rule": CHECK_RULES.get(check, ""),
                "totals": totals,
                "variance_cents": variance,
                "items_by_status": ordered,
                "items_total": sum(n for _, n in ordered),
                "unmatched": unmatched,
                "ok": variance == 0 and unmatched == 0,
            }
        )
    return rows


def _held_rows(held: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Held charges and unposted 835 cash as rows (what, reason, count, cents), largest first."""
    rows = [
        {"what": "EHR charges held", "reason": reason, "count": int(v.get("lines", 0)), "cents": int(v.get("cents", 0)),
         "help": REASON_HELP.get(reason, "")}
        for reason, v in (held.get("charges") or {}).items()
    ]
    rows += [
        {"what": "835 cash not posted", "reason": status, "count": int(v.get("transactions", 0)),
         "cents": int(v.get("cents", 0)), "help": ""}
        for status, v in (held.get("remittances") or {}).items()
    ]
    rows += [
        {"what": "835 cash in suspense (2400 unapplied cash)", "reason": status,
         "count": int(v.get("transactions", 0)), "cents": int(v.get("cents", 0)),
         "help": "the bank received it; it clears when the 835 is fixed and applied"}
        for status, v in (held.get("suspense") or {}).items()
    ]
    return sorted(rows, key=lambda r: (-abs(r["cents"]), r["what"], r["reason"]))


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    """A CSV cell a spreadsheet cannot run: text starting like a formula gets a leading quote.

    Amounts (``-12.05``) stay numbers; only text that is not a plain number is neutralised.
    """
    text = _text(value)
    if text.startswith(_FORMULA_START):
        try:
            float(text)
        except ValueError:
            return "'" + text
    return text


def _csv_bytes(records: list[dict[str, Any]], sides: list[str]) -> bytes:
    """All unmatched items (not capped) with amounts as ERP-style decimal strings (``-12.05``)."""
    extras = list(records[0]["extras"]) if records else []
    header = ["check", "key", "status", *(f"{s}_amount" for s in sides), "variance", "reason", *extras]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    for r in records:
        writer.writerow(
            [
                _cell(v)
                for v in (
                    r["check"],
                    r["key"],
                    r["status"],
                    *("" if r["sides"][s] is None else format_cents(r["sides"][s]) for s in sides),
                    format_cents(r["variance_cents"]),
                    r["reason"],
                    *(r["extras"][c] for c in extras),
                )
            ]
        )
    return buffer.getvalue().encode("utf-8")


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


def _plain_text(ctx: Mapping[str, Any]) -> str:
    """The text/plain alternative: the same facts, for clients that do not show HTML."""
    sides: list[str] = ctx["sides"]
    lines = [ctx["subject"], ""]
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
        lines.append("")
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
) -> FinanceReport:
    """Render the nightly finance report (HTML, text, CSV of unmatched items, chart).

    Pure: reads nothing and sends nothing, so the same inputs give the same report (the DAG can
    archive it, a test can read it). See the module docstring for the input shapes. ``held``:
    money of the date that did not post (``claims_reconciliation.money_held``), shown first
    with its reasons in dollars; ``warnings``: missing feeds and the like, each a sentence;
    ``rollforward``: the AR roll-forward rows per facility (``reconciliation.rollforward``);
    ``no_activity``: nothing arrived or posted for the date (None: no items and nothing held).
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
    exceptions = [
        {"reason": reason, "count": int(count), "help": REASON_HELP.get(reason, "")}
        for reason, count in sorted(exceptions_by_reason.items(), key=lambda kv: (-int(kv[1]), kv[0]))
        if int(count)
    ]
    exceptions_total = sum(e["count"] for e in exceptions)
    quality_failures = sum(1 for q in results if not q.success)

    posting: dict[str, Any] = {}
    if any(k in summary for k in ("journals_posted", "debits_cents", "credits_cents")):
        debits, credits = _cents(summary.get("debits_cents")), _cents(summary.get("credits_cents"))
        posting = {
            "journals_posted": int(summary.get("journals_posted") or 0),
            "debits_cents": debits,
            "credits_cents": credits,
            "balanced": debits == credits,
        }
    shown = {"business_date", "run_id", "journals_posted", "debits_cents", "credits_cents", *checks}
    other_totals = [
        (
            k.removesuffix("_cents").replace("_", " ").capitalize(),
            format_money(_cents(v)) if k.endswith("_cents") else _text(v),
        )
        for k, v in summary.items()
        if k not in shown and not isinstance(v, Mapping | list | tuple | dict)
    ]

    csv_name = f"unmatched_{date}.csv"
    attachments: list[tuple[str, bytes, str]] = [(csv_name, _csv_bytes(unmatched, sides), "text/csv")]
    inline: list[tuple[str, str, bytes, str]] = []
    chart_cid = None
    if chart:
        from carefabric.report.charts import reconciliation_chart

        png = reconciliation_chart(
            {row["check"]: dict(row["items_by_status"]) for row in controls},
            {e["reason"]: e["count"] for e in exceptions},
            title=f"Reconciliation {date}",
        )
        png_name = f"reconciliation_{date}.png"
        chart_cid = f"reconciliation-chart-{date}@carefabric"  # stable: same inputs, same HTML
        inline.append((chart_cid, png_name, png, "image/png"))
        attachments.append((png_name, png, "image/png"))

    held_cents = sum(r["cents"] for r in held_rows)
    empty_day = (frame.empty and not held_rows) if no_activity is None else no_activity
    subject = _subject(date, len(unmatched), exceptions_total, quality_failures)
    if held_cents or warnings or empty_day:
        extra = ([f"{format_money(held_cents)} not posted"] if held_cents else []) + (
            [f"{len(warnings)} missing feed warning{'s' if len(warnings) != 1 else ''}"] if warnings else [])
        if empty_day:
            extra.append("no activity recorded")
        status = subject.split(": ", 1)[1]
        joined = ", ".join(extra)
        subject = (f"[carefabric] Reconciliation {date}: action needed: {joined}" if status == "all matched"
                   else f"{subject}, {joined}")
    ctx: dict[str, Any] = {
        "subject": subject,
        "business_date": date,
        "run_id": _text(summary.get("run_id")),
        "sides": sides,
        "side_labels": {s: SIDE_LABELS.get(s, s) for s in sides},
        "controls": controls,
        "posting": posting,
        "other_totals": other_totals,
        "unmatched": unmatched,
        "unmatched_shown": unmatched[: max(max_rows, 0)],
        "unmatched_total": len(unmatched),
        "exceptions": exceptions,
        "exceptions_total": exceptions_total,
        "quality": results,
        "quality_failures": quality_failures,
        "chart_cid": chart_cid,
        "csv_name": csv_name,
        "attachment_names": [a[0] for a in attachments],
        "needs_action": bool(unmatched or exceptions_total or quality_failures or held_cents or warnings or empty_day),
        "held_rows": held_rows,
        "rollforward": [dict(r) for r in rollforward],
        "held_cents": held_cents,
        "warnings": list(warnings),
        "empty_day": empty_day,
    }
    html = _environment().get_template(HTML_TEMPLATE).render(**ctx)
    return FinanceReport(
        subject=subject,
        html=html,
        text=_plain_text(ctx),
        attachments=attachments,
        inline=inline,
        business_date=date,
        unmatched_count=len(unmatched),
        exceptions_count=exceptions_total,
        quality_failures=quality_failures,
    )


# --------------------------------------------------------------------------- delivery


def _addresses(recipients: str | Sequence[str]) -> list[str]:
    if isinstance(recipients, str):
        recipients = recipients.replace(";", ",").split(",")
    found = [r.strip() for r in recipients if r and r.strip()]
    if not found:
        raise ValueError("no recipients")
    return found


def to_mime(report: FinanceReport, *, sender: str, recipients: str | Sequence[str]) -> EmailMessage:
    """The report as one message::

        multipart/mixed
          multipart/alternative
            text/plain                      report.text
            multipart/related
              text/html                     report.html (img src="cid:...")
              image/png  Content-ID <cid>   inline chart
          text/csv     attachment           unmatched_<date>.csv
          image/png    attachment           reconciliation_<date>.png

    The chart is both inline (so it shows in the body) and attached (so it survives clients
    that strip related parts and can be forwarded on its own).
    """
    to = _addresses(recipients)
    msg = EmailMessage()
    msg["Subject"] = report.subject
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Date"] = formatdate(localtime=True)
    domain = sender.rsplit("@", 1)[-1].strip("> ") if "@" in sender else "carefabric.local"
    msg["Message-ID"] = make_msgid(domain=domain)  # short: a folded Message-ID confuses some clients
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation auto-replies to a robot
    msg.set_content(report.text)
    msg.add_alternative(report.html, subtype="html")
    html_part = msg.get_payload()[1]
    for cid, filename, data, mime in report.inline:
        maintype, subtype = mime.split("/", 1)
        html_part.add_related(
            data, maintype=maintype, subtype=subtype, cid=f"<{cid}>", filename=filename, disposition="inline"
        )
    for filename, data, mime in report.attachments:
        maintype, subtype = mime.split("/", 1)
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return msg


def send(
    report: FinanceReport,
    *,
    host: str,
    port: int,
    sender: str,
    recipients: str | Sequence[str],
    username: str | None = None,
    password: str | None = None,
    use_tls: bool = False,
    use_ssl: bool = False,
    timeout: float = 30.0,
) -> str:
    """Send the report over SMTP and return its Message-ID.

    ``use_tls`` upgrades a plain connection with STARTTLS (port 587); ``use_ssl`` connects with
    implicit TLS (port 465). Both verify the server certificate. Recipients the server refuses
    while accepting others are logged, not raised: the message went out, and retrying the task
    would send it again to everyone who already has it. If every recipient is refused smtplib
    raises ``SMTPRecipientsRefused``.
    """
    to = _addresses(recipients)
    msg = to_mime(report, sender=sender, recipients=to)
    context = ssl.create_default_context() if (use_tls or use_ssl) else None
    client: smtplib.SMTP
    if use_ssl:
        client = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
    else:
        client = smtplib.SMTP(host, port, timeout=timeout)
    with client:
        if use_tls and not use_ssl:
            client.starttls(context=context)
        if username:
            client.login(username, password or "")
        refused = client.send_message(msg, from_addr=sender, to_addrs=to)
    if refused:
        log.warning("finance report %s refused for %s", msg["Message-ID"], sorted(refused))
    log.info("finance report for %s sent to %d recipient(s)", report.business_date, len(to) - len(refused))
    return str(msg["Message-ID"])
