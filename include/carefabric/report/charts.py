"""The one chart of the nightly finance email, rendered to PNG bytes with matplotlib's Agg canvas.

Why ``Figure`` + ``FigureCanvasAgg`` and not ``pyplot``: pyplot keeps global state and picks a
backend for the whole process; a worker may render reports for several runs, and an Airflow
worker has no display. An explicit Agg canvas needs neither, and never touches the backend
other code chose. matplotlib is imported inside the function: DAGs import this package at parse
time and must not pay for it.

The PNG carries no "Software" metadata, so the same numbers give the same bytes (handy for
tests and for deduplicating archived reports).
"""

from __future__ import annotations

import io
from collections.abc import Mapping

# Reconciliation outcomes in reading order; green for agreement, amber for timing (expected to
# clear inside the tolerance window), reds for what finance must look at.
STATUS_COLORS: dict[str, str] = {
    "matched": "#2e7d32",
    "timing": "#f9a825",
    "amount_mismatch": "#c62828",
    "duplicate": "#6a1b9a",
}
_MISSING_COLORS = ("#ef6c00", "#d84315", "#8d6e63", "#ad1457", "#5d4037")
_OTHER_COLOR = "#546e7a"


def status_order(statuses: list[str] | set[str]) -> list[str]:
    """Matched first, then timing, mismatch, the missing_* kinds, duplicates, anything else."""
    head = [s for s in ("matched", "timing", "amount_mismatch") if s in statuses]
    missing = sorted(s for s in statuses if s.startswith("missing"))
    tail = [s for s in ("duplicate",) if s in statuses]
    rest = sorted(s for s in statuses if s not in STATUS_COLORS and not s.startswith("missing"))
    return head + missing + tail + rest


def _color(status: str, missing_index: dict[str, int]) -> str:
    if status in STATUS_COLORS:
        return STATUS_COLORS[status]
    if status in missing_index:
        return _MISSING_COLORS[missing_index[status] % len(_MISSING_COLORS)]
    return _OTHER_COLOR


def reconciliation_chart(
    items_by_check: Mapping[str, Mapping[str, int]],
    exceptions_by_reason: Mapping[str, int],
    *,
    title: str | None = None,
) -> bytes:
    """PNG bytes: reconciliation items per check stacked by status, and exceptions by reason.

    ``items_by_check`` is ``{"charges": {"matched": 40, "amount_mismatch": 1}, ...}``;
    ``exceptions_by_reason`` is ``{"UNKNOWN_CDM": 2, ...}``. Either may be empty: the panel then
    says so instead of drawing empty axes (an empty panel reads like a rendering bug).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(9.0, 3.6), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2, width_ratios=[1.25, 1.0])
    if title:
        fig.suptitle(title, fontsize=11)

    checks = list(items_by_check)
    statuses = status_order({s for counts in items_by_check.values() for s in counts})
    missing_index = {s: i for i, s in enumerate(s for s in statuses if s.startswith("missing"))}
    if checks and statuses:
        bottoms = [0] * len(checks)
        for status in statuses:
            heights = [int(items_by_check[c].get(status, 0)) for c in checks]
            left.bar(checks, heights, bottom=bottoms, label=status, color=_color(status, missing_index))
            bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
        left.legend(fontsize=7, loc="upper right", frameon=False)
        left.set_ylim(0, max(bottoms) * 1.25 or 1)
        left.yaxis.set_major_locator(MaxNLocator(integer=True))
    else:
        left.text(0.5, 0.5, "no reconciliation items", ha="center", va="center", transform=left.transAxes)
        left.set_xticks([])
        left.set_yticks([])
    left.set_title("Reconciliation items by check and status", fontsize=9)
    left.set_ylabel("items", fontsize=8)
    left.tick_params(labelsize=8)

    reasons = sorted(exceptions_by_reason.items(), key=lambda kv: (-kv[1], kv[0]))
    if reasons:
        labels = [r for r, _ in reasons][::-1]
        counts = [int(n) for _, n in reasons][::-1]
        bars = right.barh(labels, counts, color="#c62828")
        right.bar_label(bars, fontsize=7, padding=2)
        right.set_xlim(0, max(counts) * 1.2 or 1)
        right.set_xlabel("exceptions", fontsize=8)
        right.xaxis.set_major_locator(MaxNLocator(integer=True))
    else:
        right.text(0.5, 0.5, "no exceptions opened", ha="center", va="center", transform=right.transAxes)
        right.set_xticks([])
        right.set_yticks([])
    right.set_title("Exceptions opened by reason", fontsize=9)
    right.tick_params(labelsize=7)

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()
