"""HL7 v2 escape sequences (v2.5 chapter 2.7), decoded only when a value is read.

Most fields of a message are never read, and most values that are read contain no escape
character, so the reader keeps raw text and calls :func:`unescape` on the few values it hands
out; the common case costs one ``in`` test.

Decisions (differences from python-hl7's ``unescape``):

* ``\\Xhh..\\`` hex bytes are decoded in the message's character set (UTF-8 by default, latin-1
  if those bytes are not valid in it), so ``\\XC3A9\\`` is ``é`` in a UTF-8 message; python-hl7
  maps each byte to one code point.
* ``\\.br\\``, ``\\.sp\\`` and ``\\.ce\\`` become ``\\n`` (python-hl7 gives ``\\r``, which is the
  segment terminator and breaks logs and CSV exports); the other formatting commands and the
  highlight markers ``\\H\\``/``\\N\\`` carry no text and are dropped.
* Sequences we do not understand (``\\Zxx\\`` locally defined, ``\\C..\\``/``\\M..\\`` charset
  switches) and a lone escape character without its closing partner are kept verbatim: real
  feeds put Windows paths in free text, and silently eating characters would corrupt them.
"""

from __future__ import annotations

from typing import NamedTuple


class Delimiters(NamedTuple):
    """MSH-1 and MSH-2 of one message (never assumed: a feed may use ``#`` or anything else)."""

    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"
    truncation: str | None = None  # MSH-2 fifth character (v2.7+), informational only


DEFAULT_DELIMITERS = Delimiters()

_FORMATTING = {".br": "\n", ".sp": "\n", ".ce": "\n", "H": "", "N": ""}


def unescape(value: str, delims: Delimiters = DEFAULT_DELIMITERS, encoding: str = "utf-8") -> str:
    """Decode the escape sequences of one primitive value (a component or sub-component).

    Call it after splitting on the separators: ``\\S\\`` decodes to ``^``, which must not split.
    """
    esc = delims.escape
    if not esc or esc not in value:
        return value
    parts = value.split(esc)
    # parts alternate text, sequence, text, ...; an even count means a lone trailing escape.
    out = [parts[0]]
    n = len(parts)
    i = 1
    while i < n:
        if i + 1 >= n:  # unterminated: keep the escape character and the rest verbatim
            out.append(esc + parts[i])
            break
        seq = parts[i]
        out.append(_decode_sequence(seq, delims, encoding))
        out.append(parts[i + 1])
        i += 2
    return "".join(out)


def _decode_sequence(seq: str, d: Delimiters, encoding: str) -> str:
    if seq == "F":
        return d.field
    if seq == "S":
        return d.component
    if seq == "T":
        return d.subcomponent
    if seq == "R":
        return d.repetition
    if seq == "E":
        return d.escape
    if seq[:1] == "X" and len(seq) > 1 and len(seq) % 2 == 1:
        try:
            raw = bytes.fromhex(seq[1:])
        except ValueError:
            return d.escape + seq + d.escape
        try:
            return raw.decode(encoding)
        except (UnicodeDecodeError, LookupError):
            return raw.decode("latin-1")
    if seq in _FORMATTING:
        return _FORMATTING[seq]
    if seq[:1] == "." and seq[1:3].isalpha():
        base = seq[:3]
        if base in _FORMATTING:  # \.sp2\ : two line breaks
            count = seq[3:]
            return _FORMATTING[base] * (int(count) if count.isdigit() else 1)
        return ""  # .fi .nf .in .ti .sk: layout only
    return d.escape + seq + d.escape


def escape(value: str, delims: Delimiters = DEFAULT_DELIMITERS) -> str:
    """The inverse of :func:`unescape` for the delimiter characters (used by builders and tests)."""
    e = delims.escape
    out = value.replace(e, f"{e}E{e}")
    out = out.replace(delims.field, f"{e}F{e}").replace(delims.component, f"{e}S{e}")
    out = out.replace(delims.subcomponent, f"{e}T{e}").replace(delims.repetition, f"{e}R{e}")
    return out.replace("\n", f"{e}.br{e}")
