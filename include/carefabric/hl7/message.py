"""A parsed HL7 v2 message: segments split into fields, everything below that on demand.

Why hand-written rather than hl7apy or python-hl7: measured with ``python -m
carefabric_bench.hl7_reader`` on the project machine, hl7apy 1.3.5 takes 7 to 12 ms to parse a
seven-segment DFT^P03 (it builds and validates an object per field, component and
sub-component against the version's structure definitions; the lead measured 34 ms on other
messages) and python-hl7 0.27 ms (it splits every field down to sub-components up front),
while this reader frames, parses and maps the same message to canonical records in about
25 microseconds (~40,000 messages/s on one core). A day's EHR extract holds hundreds of
thousands of messages, of which the pipeline reads perhaps twenty fields each, so this reader
does one ``str.split`` per segment at parse time and splits components, repetitions and
sub-components, and decodes escapes, only for the values actually read. Neither library
streams a file either (both take one message string). Both are still used in the tests as
references: every field the canonical mapping reads is cross-checked against them.

Field numbering follows the standard everywhere: ``segment.fields[n]`` is SEG-n, including MSH,
where ``fields[1]`` is MSH-1 (the field separator itself) and ``fields[2]`` MSH-2.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from carefabric.hl7.errors import HL7ParseError
from carefabric.hl7.escapes import Delimiters, unescape

if TYPE_CHECKING:
    from carefabric.hl7.framing import RawMessage

__all__ = ["Message", "Segment", "parse", "peek_control_id"]

_ENVELOPE = frozenset(("FHS", "BHS", "BTS", "FTS"))


class Segment:
    """One segment: ``name`` and ``fields`` (raw text, ``fields[n]`` is SEG-n)."""

    __slots__ = ("name", "fields", "delims", "encoding")

    def __init__(self, fields: list[str], delims: Delimiters, encoding: str = "utf-8") -> None:
        self.name = fields[0]
        self.fields = fields
        self.delims = delims
        self.encoding = encoding

    def __repr__(self) -> str:
        return f"Segment({self.delims.field.join(self.fields[:1] + self.fields[2 if self.name == 'MSH' else 1 :])!r})"

    def raw(self, n: int) -> str:
        """SEG-n as written (escapes, repetitions and components intact); '' when absent."""
        f = self.fields
        return f[n] if n < len(f) else ""

    def repetitions(self, n: int) -> list[str]:
        """The raw repetitions of SEG-n ([] when empty). MSH-2 never repeats."""
        value = self.raw(n)
        if not value:
            return []
        if self.name == "MSH" and n <= 2:
            return [value]
        return value.split(self.delims.repetition)

    def components(self, n: int, repetition: int = 1) -> list[str]:
        """Decoded components of one repetition of SEG-n (first sub-component of each)."""
        reps = self.repetitions(n)
        if repetition > len(reps):
            return []
        d = self.delims
        out = []
        for comp in reps[repetition - 1].split(d.component):
            sub = comp.split(d.subcomponent, 1)[0]
            out.append(unescape(sub, d, self.encoding))
        return out

    def get(self, n: int, component: int = 1, subcomponent: int = 1, repetition: int = 1) -> str:
        """One decoded primitive value, ``SEG-n[repetition].component.subcomponent``; '' when absent."""
        value = self.raw(n)
        if not value:
            return ""
        if self.name == "MSH" and n <= 2:
            return value if component == 1 and subcomponent == 1 and repetition == 1 else ""
        return extract(value, self.delims, component, subcomponent, repetition, self.encoding)


def extract(
    value: str,
    d: Delimiters,
    component: int = 1,
    subcomponent: int = 1,
    repetition: int = 1,
    encoding: str = "utf-8",
) -> str:
    """Pick one primitive out of a raw field value and decode its escapes."""
    if d.repetition in value:
        reps = value.split(d.repetition)
        if repetition > len(reps):
            return ""
        value = reps[repetition - 1]
    elif repetition != 1:
        return ""
    if d.component in value:
        comps = value.split(d.component)
        if component > len(comps):
            return ""
        value = comps[component - 1]
    elif component != 1:
        return ""
    if d.subcomponent in value:
        subs = value.split(d.subcomponent)
        if subcomponent > len(subs):
            return ""
        value = subs[subcomponent - 1]
    elif subcomponent != 1:
        return ""
    if d.escape in value:
        return unescape(value, d, encoding)
    return value


class Message:
    """A parsed message. ``segments[0]`` is MSH; ``warnings`` come from framing and decoding."""

    __slots__ = ("text", "segments", "delims", "encoding", "warnings", "index", "offset", "envelope")

    def __init__(
        self,
        text: str,
        segments: list[list[str]],
        delims: Delimiters,
        *,
        encoding: str = "utf-8",
        warnings: list[str] | None = None,
    ) -> None:
        self.text = text
        self.segments = segments
        self.delims = delims
        self.encoding = encoding
        self.warnings: list[str] = warnings if warnings is not None else []
        self.index: int | None = None
        self.offset: int | None = None
        self.envelope: object | None = None

    def __repr__(self) -> str:
        return (
            f"Message({self.message_type!r}, control_id={self.control_id!r}, segments={len(self.segments)})"
        )

    def __iter__(self) -> Iterator[Segment]:
        for fields in self.segments:
            yield Segment(fields, self.delims, self.encoding)

    @property
    def msh(self) -> Segment:
        return Segment(self.segments[0], self.delims, self.encoding)

    @property
    def control_id(self) -> str:
        """MSH-10, decoded."""
        return self.msh.get(10)

    @property
    def message_type(self) -> str:
        """MSH-9.1^MSH-9.2 (``DFT^P03``), or MSH-9.1 alone when there is no trigger event."""
        msh = self.msh
        code, event = msh.get(9, 1), msh.get(9, 2)
        return f"{code}^{event}" if event else code

    @property
    def version(self) -> str:
        """MSH-12.1 (``2.5``)."""
        return self.msh.get(12)

    def segment(self, name: str) -> Segment | None:
        """The first segment called ``name``, or None."""
        for fields in self.segments:
            if fields[0] == name:
                return Segment(fields, self.delims, self.encoding)
        return None

    def segments_named(self, name: str) -> list[Segment]:
        """Every segment called ``name``, in order."""
        return [Segment(f, self.delims, self.encoding) for f in self.segments if f[0] == name]

    def get(self, name: str, n: int, component: int = 1, subcomponent: int = 1, repetition: int = 1) -> str:
        """A decoded value of the first ``name`` segment ('' when the segment or value is absent)."""
        seg = self.segment(name)
        return seg.get(n, component, subcomponent, repetition) if seg is not None else ""


def peek_control_id(text: str) -> str | None:
    """MSH-10 read with no validation, for error reports about messages that do not parse."""
    if not text.startswith("MSH") or len(text) < 4:
        return None
    end = text.find("\r")
    first = text if end < 0 else text[:end]
    parts = first.split(text[3])
    if len(parts) > 9 and parts[9]:
        comp = parts[1][:1] or "^"
        return parts[9].split(comp, 1)[0] or None
    return None


_DELIMS_CACHE: dict[str, Delimiters] = {}


def _delimiters(msh: str) -> Delimiters:
    """MSH-1/MSH-2 validated once per distinct spelling (a feed uses one or two all day)."""
    key = msh[3:10]
    hit = _DELIMS_CACHE.get(key)
    if hit is not None:
        return hit
    d = _read_delimiters(msh)
    if len(_DELIMS_CACHE) < 256:
        _DELIMS_CACHE[key] = d
    return d


def _read_delimiters(msh: str) -> Delimiters:
    sep = msh[3]
    if sep.isalnum() or sep in "\r\n \t":
        raise HL7ParseError("MSH-1 field separator is a letter, digit or whitespace: not a usable delimiter")
    end = msh.find(sep, 4)
    enc = msh[4:] if end < 0 else msh[4:end]
    if len(enc) < 4 or len(enc) > 5:
        raise HL7ParseError(
            f"MSH-2 encoding characters invalid ({len(enc)} characters): need component, repetition, "
            "escape and sub-component characters (e.g. ^~\\&)"
        )
    if len(set(enc + sep)) != len(enc) + 1 or any(c.isalnum() or c in " \t" for c in enc):
        raise HL7ParseError("MSH-2 encoding characters repeat, are letters or digits, or clash with MSH-1")
    return Delimiters(sep, enc[0], enc[1], enc[2], enc[3], enc[4] if len(enc) == 5 else None)


def parse(raw: str | RawMessage) -> Message:
    """Parse one message (segments separated by ``\\r``; ``\\n`` and ``\\r\\n`` are accepted too).

    Only MSH is validated here (delimiters, MSH-9, MSH-10) plus the shape of every segment id;
    field contents are checked where they are used (:func:`carefabric.hl7.canonical.to_canonical`).
    A :class:`~carefabric.hl7.framing.RawMessage` carries its decoding warnings over, and one
    that framing already marked unusable raises its framing error.
    """
    warnings: list[str] | None = None
    encoding = "utf-8"
    index = offset = envelope = None
    if not isinstance(raw, str):
        if raw.error:
            raise HL7ParseError(raw.error, peek_control_id(raw.text))
        text = raw.text
        warnings = list(raw.warnings)
        encoding = raw.encoding
        index, offset, envelope = raw.index, raw.offset, raw.envelope
    else:
        text = raw.strip("\r\n\x0b\x1c\ufeff")
        if "\n" in text:
            text = text.replace("\r\n", "\r").replace("\n", "\r")
    if not text.strip():
        raise HL7ParseError("empty message")
    if not text.startswith("MSH"):
        raise HL7ParseError(f"no MSH segment: the message starts with {_segment_id(text)}")
    if len(text) < 8:
        raise HL7ParseError(f"MSH too short: {len(text)} characters")
    delims = _delimiters(text)
    sep = delims.field
    lines = text.split("\r")
    segments = [line.split(sep) for line in lines]
    msh = segments[0]
    control_id = msh[9] if len(msh) > 9 else ""
    msh.insert(1, sep)  # MSH-1 is the separator itself: fields[n] is MSH-n from here on
    if len(msh) < 11:
        raise HL7ParseError(
            f"MSH too short: {len(msh) - 1} fields, MSH-9 message type and MSH-10 control id are required",
            peek_control_id(text),
        )
    if not control_id:
        raise HL7ParseError("missing MSH-10 message control id")
    if not msh[9] or msh[9][0] == delims.component:
        raise HL7ParseError("missing MSH-9 message type", control_id)
    for fields in segments:
        name = fields[0]
        if len(name) != 3 or not name.isalnum() or name in _ENVELOPE:
            segments = _check_segments(segments, sep, control_id)
            break
    msg = Message(text, segments, delims, encoding=encoding, warnings=warnings)
    if index is not None:
        msg.index, msg.offset, msg.envelope = index, offset, envelope
    return msg


def _segment_id(text: str) -> str:
    """``segment PID`` when ``text`` starts with an upper-case segment id, else a neutral phrase.

    Reasons name the segment, never quote the line: a mangled line may be a patient's name.
    """
    head = text[:3]
    if len(head) == 3 and head.isalnum() and head.isupper():
        return f"segment id {head}"
    return "text that is not a segment id"


def _check_segments(segments: list[list[str]], sep: str, control_id: str) -> list[list[str]]:
    """Slow path: drop blank lines, explain the first bad segment id."""
    kept = []
    for i, fields in enumerate(segments):
        name = fields[0]
        if len(fields) == 1 and not name.strip():
            continue  # blank or whitespace-only line between segments
        if name in _ENVELOPE:
            raise HL7ParseError(
                f"segment {i + 1} is a batch envelope segment {name} inside a message", control_id
            )
        if len(name) == 3 and name.isalnum():
            kept.append(fields)
            continue
        if len(name) < 3:
            raise HL7ParseError(f"segment {i + 1} is truncated: its id has {len(name)} of 3 characters", control_id)
        if len(name) > 3 and name[:3].isalnum() and not name[3].isalnum():
            raise HL7ParseError(
                f"segment {i + 1} ({_segment_id(name)}): the character after the segment id is not the "
                "field separator declared in MSH-1 (wrong delimiters?)",
                control_id,
            )
        raise HL7ParseError(f"segment {i + 1} has an invalid segment id (not 3 letters or digits)", control_id)
    return kept
