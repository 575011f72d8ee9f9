"""Streaming split of an HL7 v2 byte stream into messages.

EHR extracts are large (a busy hospital writes hundreds of MB a day) and arrive in every
framing that exists: ``\\r``, ``\\n`` or ``\\r\\n`` segment ends, MLLP bytes left over from a
capture (``0x0B`` before a message, ``0x1C 0x0D`` after it), ``FHS/BHS ... BTS/FTS`` batch
envelopes, or one bare message. :func:`iter_messages` reads fixed-size chunks, so memory stays
at about two chunks plus one message whatever the file size; neither hl7apy nor python-hl7 can
do this (both take one message string).

Boundaries are found on bytes, before decoding: a new unit starts where ``MSH``, ``FHS``,
``BHS``, ``BTS`` or ``FTS`` begins a line. Each message is then decoded on its own, in the
character set its MSH-18 names (UTF-8 when absent), so one badly encoded message cannot spoil
its neighbours.

Decisions:

* Bytes that are not valid in the declared (or default UTF-8) character set do not fail the
  message: it is decoded as cp1252 (latin-1 for the five bytes cp1252 leaves undefined) and the
  message carries a warning. Only structurally unusable bytes (NUL bytes: UTF-16 or binary
  data) or an unsupported multi-byte MSH-18 such as UTF-16 make ``RawMessage.error``.
* Truncation: the last segment of a file may lack its terminator (interface engines and
  hand-edited files often omit the final ``\r``), so a bare file's last message without one is
  accepted with a warning, whether the file holds one message or many. Inside an open batch
  envelope it is an ``error``: the file was cut, since its BTS/FTS trailer is missing too (a
  cut FT1 amount ``12`` of ``125.00`` must never post). A batch that ends after a terminated
  segment without BTS/FTS gets a warning; an MLLP start byte with no end byte is an error.
* PHI: problems, warnings and errors name positions, byte offsets and segment ids, never text
  from the file (a shifted field can hold a patient's name anywhere).
* File-level findings (empty file, junk before the first segment, BTS/FTS counts that do not
  match) go to the optional :class:`FileReport`.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

__all__ = ["Envelope", "FileReport", "RawMessage", "iter_messages", "DEFAULT_MAX_MESSAGE_BYTES"]

DEFAULT_MAX_MESSAGE_BYTES = 16 << 20

# A unit begins where one of these ids starts a line (or the buffer), followed by a delimiter.
_TAGS = (b"MSH", b"FHS", b"BHS", b"BTS", b"FTS")
_LINE_START = frozenset(b"\r\n\x0b\x1c")
_NOT_DELIMITER = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789\r\n")


def _boundaries(buf: bytes) -> list[int]:
    """Offsets in ``buf`` where a unit (message or envelope segment) starts.

    A unit starts at its MLLP start byte when it has one, so that byte travels with its message.

    ``bytes.find`` per tag rather than one regex: the search is a C memchr/two-way scan, about
    ten times faster than a regex with a look-behind tried at every position, and the envelope
    tags are usually absent, which costs one fast scan each.
    """
    out: list[int] = []
    find = buf.find
    end = len(buf) - 3  # the byte after the tag must be present (it is the field separator)
    for tag in _TAGS:
        i = find(tag)
        while 0 <= i < end:
            if (i == 0 or buf[i - 1] in _LINE_START) and buf[i + 3] not in _NOT_DELIMITER:
                out.append(i - 1 if i and buf[i - 1] == 0x0B else i)
            i = find(tag, i + 3)
        if tag == b"MSH":
            found_msh = len(out)
    if len(out) != found_msh:
        out.sort()
    return out


# HL7 table 0211 names -> Python codecs. None: UTF-8 with the cp1252 fallback.
_CHARSETS: dict[str, str | None] = {
    "": None,
    "ASCII": None,  # ASCII is a subset of UTF-8; liars get the fallback and a warning
    "ISO IR6": None,
    "UNICODE UTF-8": "utf-8",
    "UNICODE": "utf-8",
    "ISO IR192": "utf-8",
    "UTF-8": "utf-8",
    "8859/1": "latin-1",
    "ISO IR100": "latin-1",
    "8859/2": "iso8859-2",
    "ISO IR101": "iso8859-2",
    "8859/3": "iso8859-3",
    "ISO IR109": "iso8859-3",
    "8859/4": "iso8859-4",
    "ISO IR110": "iso8859-4",
    "8859/5": "iso8859-5",
    "ISO IR144": "iso8859-5",
    "8859/6": "iso8859-6",
    "ISO IR127": "iso8859-6",
    "8859/7": "iso8859-7",
    "ISO IR126": "iso8859-7",
    "8859/8": "iso8859-8",
    "ISO IR138": "iso8859-8",
    "8859/9": "iso8859-9",
    "ISO IR148": "iso8859-9",
    "8859/15": "iso8859-15",
    "GB 18030-2000": "gb18030",
    "KS X 1001": "euc-kr",
    "BIG-5": "big5",
    "ISO IR87": "iso2022-jp",
    "ISO 2022-1994": "iso2022-jp",
    "ISO IR13": "shift-jis",
    "ISO IR14": "shift-jis",
    "WINDOWS-1252": "cp1252",
    "CP1252": "cp1252",
}
_UNUSABLE_CHARSETS = ("UNICODE UTF-16", "UNICODE UTF-32", "UTF-16", "UTF-32")


@dataclass(frozen=True, slots=True)
class Envelope:
    """The batch header a message arrived under (FHS file header, BHS batch header)."""

    file_sending_application: str | None = None  # FHS-3
    file_sending_facility: str | None = None  # FHS-4
    file_time: str | None = None  # FHS-7
    file_name: str | None = None  # FHS-9 (file name/id)
    file_comment: str | None = None  # FHS-10
    file_control_id: str | None = None  # FHS-11
    batch_sending_application: str | None = None  # BHS-3
    batch_sending_facility: str | None = None  # BHS-4
    batch_time: str | None = None  # BHS-7
    batch_name: str | None = None  # BHS-9
    batch_comment: str | None = None  # BHS-10
    batch_control_id: str | None = None  # BHS-11


@dataclass(slots=True)
class RawMessage:
    """One message as framed from the file, decoded to text, segments joined by ``\\r``."""

    text: str
    index: int  # 0-based position among the messages of the file
    offset: int  # byte offset of the MSH (after any MLLP start byte) in the file
    envelope: Envelope | None = None
    encoding: str = "utf-8"
    warnings: list[str] = field(default_factory=list)
    error: str | None = None  # framing or decoding made the message unusable


@dataclass(slots=True)
class FileReport:
    """What iter_messages saw in the file as a whole (fill by passing ``report=``)."""

    bytes_read: int = 0
    messages: int = 0
    batches: int = 0
    envelopes: list[Envelope] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def empty_reason(self) -> str | None:
        """Why the file gave no message, or None when it gave at least one."""
        if self.messages:
            return None
        if self.problems:
            return self.problems[0]
        return "no HL7 message in file"


def _fields(segment: bytes) -> list[str]:
    """Envelope segment fields (``out[n]`` is SEG-n), decoded leniently: they are ids, not data."""
    text = segment.decode("utf-8", "replace")
    sep = text[3:4] or "|"
    parts = text.split(sep)
    return parts


def _opt(parts: list[str], n: int, component: str = "^") -> str | None:
    if n < len(parts):
        value = parts[n].split(component, 1)[0]
        return value or None
    return None


class _Framer:
    """State of one pass over a file; separate from the generator for readability."""

    def __init__(self, report: FileReport, max_message_bytes: int) -> None:
        self.report = report
        self.max_message_bytes = max_message_bytes
        self.envelope: Envelope | None = None
        self.file_envelope: Envelope | None = None
        self.file_open = False
        self.batch_open = False
        self.batch_messages = 0
        self.batches_in_file = 0
        self.index = 0
        self.prev_message: RawMessage | None = None

    # ------------------------------------------------------------------ envelope segments

    def envelope_unit(self, tag: bytes, data: bytes) -> None:
        segment = data.replace(b"\x0b", b"").replace(b"\x1c", b"").replace(b"\n", b"\r").strip(b"\r")
        first, _, rest = segment.partition(b"\r")
        if rest.strip(b"\r \t"):
            self.report.problems.append(
                f"{len(rest)} bytes after the {tag.decode()} segment, before the next MSH, were ignored"
            )
        p = _fields(first)
        if tag in (b"FHS", b"BHS"):
            # FHS-1/BHS-1 is the separator itself (split drops it): afterwards p[n] is SEG-n
            p.insert(1, p[0][3:4])
            comp = p[2][:1] if len(p) > 2 and p[2] else "^"
        else:
            comp = "^"
        report = self.report
        if tag == b"FHS":
            if self.file_open:
                report.problems.append("FHS before the previous file's FTS")
            self.file_open = True
            self.batches_in_file = 0
            self.envelope = Envelope(
                file_sending_application=_opt(p, 3, comp),
                file_sending_facility=_opt(p, 4, comp),
                file_time=_opt(p, 7, comp),
                file_name=_opt(p, 9, comp),
                file_comment=_opt(p, 10, comp),
                file_control_id=_opt(p, 11, comp),
            )
            self.file_envelope = self.envelope
            report.envelopes.append(self.envelope)
        elif tag == b"BHS":
            if self.batch_open:
                report.problems.append("BHS before the previous batch's BTS")
            self.batch_open = True
            self.batch_messages = 0
            self.batches_in_file += 1
            report.batches += 1
            base = self.envelope if self.envelope is not None and self.file_open else Envelope()
            self.envelope = Envelope(
                file_sending_application=base.file_sending_application,
                file_sending_facility=base.file_sending_facility,
                file_time=base.file_time,
                file_name=base.file_name,
                file_comment=base.file_comment,
                file_control_id=base.file_control_id,
                batch_sending_application=_opt(p, 3, comp),
                batch_sending_facility=_opt(p, 4, comp),
                batch_time=_opt(p, 7, comp),
                batch_name=_opt(p, 9, comp),
                batch_comment=_opt(p, 10, comp),
                batch_control_id=_opt(p, 11, comp),
            )
            report.envelopes.append(self.envelope)
        elif tag == b"BTS":
            count = _opt(p, 1, comp)
            if not self.batch_open:
                report.problems.append("BTS without BHS")
            elif count is not None and count.isdigit() and int(count) != self.batch_messages:
                report.problems.append(
                    f"BTS-1 says {int(count)} messages, batch {self.batches_in_file} holds {self.batch_messages}"
                )
            self.batch_open = False
            self.batch_messages = 0
            self.envelope = self.file_envelope if self.file_open else None
        else:  # FTS
            count = _opt(p, 1, comp)
            if not self.file_open:
                report.problems.append("FTS without FHS")
            elif count is not None and count.isdigit() and int(count) != self.batches_in_file:
                report.problems.append(
                    f"FTS-1 says {int(count)} batches, the file holds {self.batches_in_file}"
                )
            self.file_open = False
            self.batch_open = False
            self.envelope = self.file_envelope = None

    # ------------------------------------------------------------------ messages

    def message_unit(self, data: bytes, offset: int, at_eof: bool) -> RawMessage:
        warnings: list[str] = []
        error: str | None = None
        ended_cleanly = not at_eof or data.rstrip(b" \t")[-1:] in (b"\r", b"\n", b"\x1c")
        if b"\x0b" in data or b"\x1c" in data:
            if at_eof and b"\x0b" in data and b"\x1c" not in data:
                error = "MLLP start byte without end byte: message cut at end of file"
            data = data.replace(b"\x0b", b"").replace(b"\x1c", b"")
        if b"\n" in data:
            data = data.replace(b"\r\n", b"\r").replace(b"\n", b"\r")
        data = data.rstrip(b"\r")
        if b"\r\r" in data:
            data = b"\r".join(s for s in data.split(b"\r") if s)
        if len(data) > self.max_message_bytes:
            error = f"message of {len(data)} bytes exceeds the {self.max_message_bytes}-byte limit"
            data = data[:4096]
        if at_eof:
            if not ended_cleanly:
                if not (self.batch_open or self.file_open):
                    warnings.append("last segment has no terminator (accepted: no batch envelope left open)")
                elif error is None:
                    error = "file ends mid-segment inside a batch without BTS/FTS: message truncated"
            elif self.batch_open or self.file_open:
                warnings.append("file ends without BTS/FTS: this last message may be incomplete")
        encoding = "utf-8"
        if b"\x00" in data:
            error = error or "message contains NUL bytes: binary or UTF-16 data, not HL7 text"
            text = data.decode("latin-1")
        else:
            codec, warn = _declared_codec(data)
            if warn:
                if warn.startswith("!"):
                    error = error or warn[1:]
                else:
                    warnings.append(warn)
            try:
                text = data.decode(codec or "utf-8")
                encoding = codec or "utf-8"
            except UnicodeDecodeError as exc:
                bad = data[exc.start]
                try:
                    text = data.decode("cp1252")
                    encoding = "cp1252"
                except UnicodeDecodeError:
                    text = data.decode("latin-1")
                    encoding = "latin-1"
                declared = codec or "UTF-8"
                warnings.append(
                    f"bytes not valid {declared} (first 0x{bad:02X} at byte {exc.start} of the message); "
                    f"decoded as {encoding}"
                )
        raw = RawMessage(text, self.index, offset, self.envelope, encoding, warnings, error)
        self.index += 1
        self.batch_messages += 1
        self.report.messages += 1
        return raw


_CODEC_CACHE: dict[tuple[bytes, bytes], tuple[str | None, str | None]] = {}


def _declared_codec(data: bytes) -> tuple[str | None, str | None]:
    """The codec MSH-18 names (None: default UTF-8) and a warning; '!' marks an error."""
    end = data.find(b"\r")
    msh = data if end < 0 else data[:end]
    sep = msh[3:4]
    if not sep:
        return None, None
    parts = msh.split(sep, 18)
    if len(parts) < 18:
        return None, None
    key = (parts[1], parts[17])
    hit = _CODEC_CACHE.get(key)
    if hit is None:
        hit = _lookup_codec(*key)
        if len(_CODEC_CACHE) < 256:
            _CODEC_CACHE[key] = hit
    return hit


def _lookup_codec(enc: bytes, value: bytes) -> tuple[str | None, str | None]:
    for ch in enc[:2]:  # first repetition, first component
        value = value.split(bytes((ch,)), 1)[0]
    name = value.decode("ascii", "replace").strip().upper()
    if name in _CHARSETS:
        return _CHARSETS[name], None
    if name in _UNUSABLE_CHARSETS:
        return (
            None,
            f"!MSH-18 {name} is not supported: segments cannot be framed on bytes in a 16/32-bit encoding",
        )
    try:
        codec = codecs.lookup(name).name
    except LookupError:
        return None, "MSH-18 character set unknown; decoded as UTF-8"
    return codec, None


def iter_messages(
    source: BinaryIO | Path | str,
    *,
    chunk_size: int = 1 << 20,
    report: FileReport | None = None,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> Iterator[RawMessage]:
    """Yield the messages of an HL7 v2 file or binary stream, in order, in bounded memory.

    ``source`` is a path (opened and closed here) or an open binary file. Batch envelope
    segments are not messages: their ids end up in ``RawMessage.envelope`` and in
    ``report.envelopes``. ``report`` (a :class:`FileReport`) collects file-level problems,
    including why a file gave no message at all.
    """
    if isinstance(source, (str, Path)):
        with open(source, "rb") as fh:
            yield from iter_messages(
                fh, chunk_size=chunk_size, report=report, max_message_bytes=max_message_bytes
            )
        return
    if report is None:
        report = FileReport()
    chunk_size = max(chunk_size, 64)
    framer = _Framer(report, max_message_bytes)
    read = source.read
    buf = b""
    base = 0  # file offset of buf[0]
    started = False  # buf begins at a unit boundary
    resyncing = False  # skipping the rest of an oversized unit
    head = b""  # the first bytes of the file, to explain a file with no message
    message_unit = framer.message_unit
    while True:
        chunk = read(chunk_size)
        at_eof = not chunk
        if chunk:
            if not report.bytes_read:
                head = chunk[:64]
                if chunk.startswith(b"\xef\xbb\xbf"):  # UTF-8 byte order mark
                    chunk = chunk[3:]
                    base = 3
            report.bytes_read += len(chunk)
            buf = buf + chunk if buf else chunk
        starts = _boundaries(buf)
        if not started:
            if not starts:
                if at_eof:
                    if not report.messages and not report.envelopes:
                        _no_boundary(head, buf, report)
                    return
                if len(buf) > 65536:  # junk: drop it, keep a tail that may hold half a tag
                    base += len(buf) - 8
                    buf = buf[-8:]
                continue
            lead = buf[: starts[0]]
            if not resyncing and (base > 3 or lead.strip(b"\r\n\x0b\x1c \t")):
                report.problems.append(f"{base + len(lead)} bytes before the first segment were ignored")
            base += starts[0]
            buf = buf[starts[0] :]
            starts = [x - starts[0] for x in starts]
            started = True
            resyncing = False
        elif not starts or starts[0] != 0:  # "MSH" at the very end of buf, lookahead not yet possible
            starts.insert(0, 0)
        complete = len(starts) if at_eof else len(starts) - 1
        for k in range(complete):
            s = starts[k]
            e = starts[k + 1] if k + 1 < len(starts) else len(buf)
            t = s + 1 if buf[s] == 0x0B else s  # the unit includes its MLLP start byte
            tag = buf[t : t + 3]
            if tag == b"MSH":
                yield message_unit(buf[s:e], base + t, at_eof and k + 1 == len(starts))
            else:
                framer.envelope_unit(tag, buf[s:e])
        if at_eof:
            if framer.batch_open or framer.file_open:
                report.problems.append("file ends without BTS/FTS: the file may be truncated")
            if not report.messages:
                report.problems.append(
                    "batch envelope holds no message" if report.envelopes else "no MSH segment in file"
                )
            return
        keep = starts[-1]
        if len(buf) - keep > max_message_bytes:
            # one unit larger than any sane message: report it, then skip to the next boundary
            report.problems.append(
                f"unit at byte {base + keep} exceeds {max_message_bytes} bytes; skipped to the next segment boundary"
            )
            yield message_unit(buf[keep : keep + max_message_bytes + 1], base + keep, False)
            base += len(buf) - 8
            buf = buf[-8:]
            started = False
            resyncing = True
            continue
        base += keep
        buf = buf[keep:]


def _no_boundary(head: bytes, buf: bytes, report: FileReport) -> None:
    if report.bytes_read == 0:
        report.problems.append("empty file (0 bytes)")
    elif b"\x00" in head:
        report.problems.append("no MSH segment: the file has NUL bytes (UTF-16 or binary, not HL7 v2 text)")
    elif report.bytes_read <= len(buf) and not buf.strip(b"\r\n\x0b\x1c \t"):
        report.problems.append(f"no MSH segment: the file holds only {report.bytes_read} bytes of whitespace")
    else:
        head = head.lstrip(b"\xef\xbb\xbf")[:3]
        what = f"with {head.decode()}" if head.isalnum() and head.isupper() else "with text that is no segment id"
        report.problems.append(f"no MSH segment: the file starts {what}, not an HL7 v2 file")
