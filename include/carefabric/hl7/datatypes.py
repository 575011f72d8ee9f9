"""Strict readers for the HL7 v2 primitives the canonical mapping turns into Python values.

Dates and amounts decide which ledger day and how many cents get posted, so they are parsed
strictly: a value that does not match the standard's format is an error, never a guess.

Error texts never quote the value: a wrong field may hold a patient's name (a sender that
shifted PID-5 into FT1-10), and the reason travels to the exception queue, its history, logs
and the console. The caller prefixes the field name (``FT1-10 quantity: ...``).
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

__all__ = ["parse_datetime", "parse_date", "parse_number", "is_hl7_date"]

# YYYYMMDD[HHMM[SS[.S[S[S[S]]]]]][+/-ZZZZ]
_TS = re.compile(r"(\d{4})(\d\d)(\d\d)(?:(\d\d)(\d\d)(?:(\d\d)(?:\.(\d{1,4}))?)?)?(?:([+-])(\d\d)(\d\d))?")
# NM: optional sign, digits, optional decimal point (no exponent, no grouping, no spaces inside)
_NM = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)")

_TS_CACHE: dict[str, dt.datetime] = {}
_NM_CACHE: dict[str, Decimal] = {}
_CACHE_MAX = 8192


def parse_datetime(text: str) -> dt.datetime:
    """An HL7 TS/DTM value as a datetime; ``ValueError`` with the reason when it is not one.

    Without an offset the result is naive (the sender's local time, as HL7 defines it); with
    ``+/-ZZZZ`` it is aware. Results are cached: a feed repeats the same dates all day long.
    """
    hit = _TS_CACHE.get(text)
    if hit is not None:
        return hit
    m = _TS.fullmatch(text)
    if m is None:
        raise ValueError(f"is not an HL7 date/time (YYYYMMDD[HHMM[SS[.S]]][+/-ZZZZ]; {len(text)} characters)")
    year, month, day, hour, minute, second, frac, sign, oh, om = m.groups()
    tz = None
    if sign:
        if int(oh) > 14 or int(om) > 59:
            raise ValueError("has an impossible UTC offset")
        delta = dt.timedelta(hours=int(oh), minutes=int(om))
        tz = dt.timezone(-delta if sign == "-" else delta)
    try:
        value = dt.datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((frac or "0").ljust(6, "0")),
            tzinfo=tz,
        )
    except ValueError as exc:
        raise ValueError("is not a valid date/time (a field out of range, e.g. month 13 or day 31 in a 30-day month)") from exc
    if len(_TS_CACHE) >= _CACHE_MAX:
        _TS_CACHE.clear()
    _TS_CACHE[text] = value
    return value


def parse_date(text: str) -> dt.date:
    """The calendar date of an HL7 TS/DTM value as written (no time-zone conversion)."""
    return parse_datetime(text).date()


def is_hl7_date(text: str) -> bool:
    """True when ``text`` is a valid HL7 date/time (used for values kept as text, e.g. PID-7)."""
    try:
        parse_datetime(text)
    except ValueError:
        return False
    return True


def parse_number(text: str) -> Decimal:
    """An HL7 NM value as Decimal; ``ValueError`` for ``1e3``, ``1,234.50``, ``NaN`` and the like."""
    hit = _NM_CACHE.get(text)
    if hit is not None:
        return hit
    if _NM.fullmatch(text) is None:
        raise ValueError(f"is not an HL7 number ({len(text)} characters; digits, one optional sign and decimal point)")
    value = Decimal(text)
    if len(_NM_CACHE) >= _CACHE_MAX:
        _NM_CACHE.clear()
    _NM_CACHE[text] = value
    return value
