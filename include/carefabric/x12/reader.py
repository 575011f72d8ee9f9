"""Streaming X12 835 reader: bytes in, one ``Remittance`` per transaction set (ST..SE) out.

Why a hand-written reader and not pyx12: pyx12 walks every segment through its TR3 map tree
and keeps an error tree for the whole file; ``X12ContextReader`` reads roughly 200 (real files,
with error handling) to 1,000 (``python -m carefabric_bench.x12_reader``) claims per second, so a 50 MB
Medicare file takes minutes to the better part of an hour. The money only needs positional reads of a dozen segment types, which a flat state
machine does two orders of magnitude faster in bounded memory. pyx12 stays where it is good:
full TR3 syntax validation and the 999 (``carefabric.x12.validate``), run on normal-sized files.
The tests cross-check this reader against pyx12 on every real sample.

Memory: the file is read in ``chunk_size`` byte chunks and split on the segment terminator
(``carefabric.x12.stream``: whitespace and line breaks around segments, a UTF-8 BOM, several
interchanges with their own delimiters), so only the current chunk and the transaction being
built are held. A transaction is yielded whole (it is one ``Remittance``), so one huge ST..SE is held
whole too; payers split big remittances into many STs (one per check or EFT), which stream.

Errors: a file that is not a readable interchange (empty, UTF-16, no ISA, a broken ISA, no
segment terminator) raises ``X12Error``. Anything inside a transaction the reader cannot place
(an invalid segment id such as ``CAS_CO``, a segment that is not part of an 835, a second BPR,
a BPR without its amount, an amount that is not an X12 number, a transaction cut off before
its SE) makes *that transaction* unreadable: the reader skips to its SE and yields an
``X12Error`` value carrying ISA13/GS06/ST02 and a one-line reason, then goes on with the next
transaction. Deviations that do not touch money (impossible dates, SE count mismatch, bytes that
are not UTF-8, SVC01 written with a foreign component separator) become ``findings`` on the
``Remittance`` (or on the file: GE01/IEA01 counts, an ISA not padded to 106 characters).
Anything outside ST..SE that is not envelope (a stray or mangled segment, segments in other
delimiters than the ISA declares) is yielded as an envelope ``X12Error``: it may be a
transaction the reader could not see, so the file cannot be accepted. Callers that want lists use
:func:`read_file`. "segment N" in messages counts segments from the start of the file (ISA = 1),
so an operator can find it with any editor that shows one segment per line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from carefabric.canonical import Remittance
from carefabric.x12.envelope import ISA_LENGTH, Delimiters
from carefabric.x12.errors import X12Error
from carefabric.x12.segments import SEGMENTS_835, Bad, TxState, apply_segment, get, normalize_composite
from carefabric.x12.stream import CHUNK_SIZE, MAX_SEGMENT_BYTES, SegmentStream

__all__ = [
    "CHUNK_SIZE", "MAX_SEGMENT_BYTES", "FileResult", "SegmentStream", "iter_transactions", "normalize_composite",
    "read_file",
]

_SEG_ID = re.compile(r"[A-Z][A-Z0-9]{1,2}\Z")
_ENVELOPE = frozenset({"ISA", "IEA", "GS", "GE"})
_KNOWN = _ENVELOPE | SEGMENTS_835 | {"ST", "SE"}


def _bad_id(text: str, position: int, sep: str) -> tuple[str, bool]:
    """Why segment ``text`` has no valid id, without quoting it (it may hold a name); and whether
    the cause is a separator other than the one the ISA declares (a known id followed by a
    punctuation character, ``GS|HP|..`` or ``CAS_CO``)."""
    for size in (3, 2):
        head, after = text[:size], text[size : size + 1]
        if head in _KNOWN and after and not after.isalnum() and after != sep:
            return (f"segment {position}: segment id {head} is followed by {after!r} instead of the element "
                    f"separator {sep!r} the ISA declares"), True
    return f"segment {position}: not a valid X12 segment id (2-3 capital letters/digits)", False


class _Envelope:
    """ISA/GS state of the file being read, and its envelope errors and findings."""

    def __init__(self, notes: list[str]) -> None:
        self.notes = notes
        self.isa13: str | None = None
        self.isa06 = ""
        self.gs06: str | None = None
        self.gs08 = ""
        self.groups = 0
        self.st_in_gs = 0
        self.strays = 0
        self.cause: str | None = None  # what explains a missing trailer better than "truncated"

    def error(self, reason: str, position: int) -> X12Error:
        return X12Error(reason, interchange_control=self.isa13, group_control=self.gs06, segment_position=position)

    def stray(self, reason: str, position: int, delimiters: bool = False) -> Iterator[X12Error]:
        """A segment outside ST..SE that is not envelope: the first one is an error (the file cannot
        be accepted), the others are counted into the end-of-file message."""
        self.strays += 1
        if self.strays == 1:
            self.cause = "segments in other delimiters than the ISA declares" if delimiters else "stray segments"
            yield self.error(f"{reason}, outside any transaction set", position)

    def outside(self, sid: str, text: str, e: list[str], position: int, delims: Delimiters) -> Iterator[X12Error]:
        """A segment outside ST..SE: envelope, or a stray one."""
        if sid == "ISA":
            yield from self.isa(text, e, position, delims)
        elif sid == "GS":
            yield from self.gs(e, position)
        elif sid == "GE":
            self.ge(e, position)
        elif sid == "IEA":
            yield from self.iea(e, position)
        else:
            yield from self.stray(f"segment {position} {sid}", position)

    def start(self, e: list[str], position: int) -> TxState:
        self.st_in_gs += 1
        st02 = get(e, 2) or ""
        tx = TxState(isa13=self.isa13 or "", gs06=self.gs06 or "", st02=st02, version=self.gs08,
                     sender=self.isa06, start_position=position)
        if self.isa13 is None or self.gs06 is None:
            tx.fail(f"segment {position} ST outside an ISA/GS envelope", position)
        elif get(e, 1) != "835":
            tx.fail("ST01 is not 835 (not a health care claim payment/advice)", position)
        elif not st02:
            tx.fail("ST02 control number missing", position)
        return tx

    def isa(self, text: str, e: list[str], position: int, delims: Delimiters) -> Iterator[X12Error]:
        if self.isa13 is not None:
            yield self.error(f"no IEA for interchange {self.isa13} before the next ISA (segment {position})", position)
        if len(text) < 4 or text[3] != delims.element or len(e) != 17:
            raise X12Error(f"segment {position} ISA is not readable: its delimiters cannot be read "
                           f"(it has {len(e) - 1} elements split by {delims.element!r}, an ISA has 16)")
        self.isa13, self.isa06 = e[13], e[6].strip()
        self.groups = 0
        self.gs06 = None
        if len(text) + 1 != ISA_LENGTH:
            self.notes.append(f"segment {position} ISA is {len(text) + 1} characters, not the fixed {ISA_LENGTH} "
                              "(elements not padded to their widths); read by its separators")

    def gs(self, e: list[str], position: int) -> Iterator[X12Error]:
        if self.isa13 is None:
            raise X12Error(f"segment {position} GS outside an interchange (no ISA before it)")
        if self.gs06 is not None:
            yield self.error(f"no GE for group {self.gs06} before the next GS (segment {position})", position)
        if len(e) > 9:
            self.cause = "a segment terminator other than the one the ISA declares"
            yield self.error(f"segment {position} GS has {len(e) - 1} elements where 8 are allowed: the file's "
                             "segment terminator is probably not the one its ISA declares", position)
        self.gs06, self.gs08 = get(e, 6) or "", get(e, 8) or ""
        self.groups += 1
        self.st_in_gs = 0
        if get(e, 1) != "HP":
            self.notes.append(f"segment {position} GS01 is not HP (health care claim payment/advice)")

    def ge(self, e: list[str], position: int) -> None:
        if self.gs06 is None:
            self.notes.append(f"segment {position} GE without GS; ignored")
            return
        if get(e, 1) != str(self.st_in_gs):
            self.notes.append(f"GE01 says {get(e, 1)} transactions but group {self.gs06} has {self.st_in_gs}")
        if get(e, 2) != self.gs06:
            self.notes.append(f"GE02 does not match GS06 {self.gs06!r}")
        self.gs06 = None

    def iea(self, e: list[str], position: int) -> Iterator[X12Error]:
        if self.isa13 is None:
            self.notes.append(f"segment {position} IEA without ISA; ignored")
            return
        if self.gs06 is not None:
            yield self.error(f"no GE for group {self.gs06} before IEA (segment {position})", position)
            self.gs06 = None
        if get(e, 1) != str(self.groups):
            self.notes.append(f"IEA01 says {get(e, 1)} groups but interchange {self.isa13} has {self.groups}")
        if get(e, 2) != self.isa13:
            self.notes.append(f"IEA02 does not match ISA13 {self.isa13!r}")
        self.isa13 = None

    def end(self, tx: TxState | None, last: int) -> Iterator[X12Error]:
        why = f"({self.cause}, see above)" if self.cause else "(truncated)"
        if self.strays > 1:
            yield self.error(f"{self.strays} segments outside any transaction set in all", last)
        if tx is not None:
            yield tx.to_error(f"file ends after segment {last} with no SE {why}")
        if self.gs06 is not None:
            yield self.error(f"file ends after segment {last} with no GE for group {self.gs06} {why}", last)
        if self.isa13 is not None:
            yield self.error(f"file ends after segment {last} with no IEA for interchange {self.isa13} {why}", last)


def _close(tx: TxState, e: list[str]) -> Remittance | X12Error:
    """SE: counts checked (a finding), the last claim balanced, the transaction yielded."""
    tx.segments += 1
    if tx.error is None:
        se01 = get(e, 1)
        if se01 != str(tx.segments):
            tx.findings.append(f"SE01 says {se01} segments but transaction ST02={tx.st02} has {tx.segments}")
        if get(e, 2) != tx.st02:
            tx.findings.append(f"SE02 does not match ST02 {tx.st02!r}")
        tx.close_claim()
        if not tx.bpr_seen:
            tx.fail("no BPR segment (payment amount unknown)", tx.start_position)
        elif tx.trace_number is None:
            tx.fail("no TRN segment (trace number unknown)", tx.start_position)
    return tx.to_error() if tx.error is not None else tx.to_remittance()


def iter_transactions(
    source: BinaryIO | Path | str,
    *,
    file_findings: list[str] | None = None,
    chunk_size: int = CHUNK_SIZE,
) -> Iterator[Remittance | X12Error]:
    """Yield each 835 transaction set of ``source`` as a ``Remittance``, or as an ``X12Error`` value.

    ``source`` is a path or a binary stream (left open). The file is read in ``chunk_size``
    chunks; memory holds one transaction at a time. Raises ``X12Error`` when the file itself is
    unreadable (before anything is yielded: empty, no ISA, broken ISA; or later: no terminator).
    Yields an ``X12Error`` (not raised) for one unreadable transaction, with ISA13/GS06/ST02, and
    for envelope faults that make the file incomplete or doubtful (no IEA, stray segments).
    Findings outside any transaction (GE/IEA counts, an unpadded ISA) are appended to
    ``file_findings`` when given.
    """
    if isinstance(source, (str, Path)):
        with open(source, "rb") as stream:
            yield from iter_transactions(stream, file_findings=file_findings, chunk_size=chunk_size)
        return

    notes_out: list[str] = file_findings if file_findings is not None else []
    segments = SegmentStream(source, chunk_size=chunk_size)
    sep, component = segments.delimiters.element, segments.delimiters.component
    env = _Envelope(notes_out)
    valid_ids: set[str] = set()
    tx: TxState | None = None
    stream_notes = segments.notes  # one list for the whole file, drained in place
    for text in segments:
        position = segments.position
        if stream_notes:
            (tx.findings if tx is not None else notes_out).extend(stream_notes)
            stream_notes.clear()
        e = text.split(sep)
        sid = e[0]
        if sid not in valid_ids:
            if text[:3] == "ISA" and segments.delimiters.element != sep:  # an interchange in other delimiters
                sep = segments.delimiters.element
                e = text.split(sep)
                sid = e[0]
            if not _SEG_ID.match(sid):
                reason, delimiters = _bad_id(text, position, sep)
                if tx is not None:
                    tx.segments += 1
                    tx.fail(reason, position)
                else:
                    yield from env.stray(reason, position, delimiters)
                continue
            valid_ids.add(sid)

        if tx is not None:
            if sid == "SE":
                yield _close(tx, e)
                tx = None
                continue
            if sid not in _ENVELOPE and sid != "ST":
                tx.segments += 1
                if tx.error is None:
                    try:
                        apply_segment(tx, sid, e, position, component)
                    except Bad as bad:
                        tx.fail(str(bad), position)
                continue
            yield tx.to_error(f"no SE before segment {position} {sid} (transaction cut off)")
            tx = None  # the envelope segment is handled below

        if sid == "ST":
            tx = env.start(e, position)
            continue
        if sid == "ISA":  # a new interchange may declare another component separator
            component = segments.delimiters.component
        yield from env.outside(sid, text, e, position, segments.delimiters)

    if segments.notes:
        notes_out.extend(segments.notes)
    yield from env.end(tx, segments.position)


@dataclass(slots=True)
class FileResult:
    """Everything :func:`read_file` found in one file."""

    remittances: list[Remittance]
    errors: list[X12Error]
    findings: list[str]  # outside any transaction; a transaction's own are on its Remittance

    @property
    def ok(self) -> bool:
        """Every transaction readable and the envelope complete (balancing is separate)."""
        return not self.errors

    @property
    def balanced(self) -> bool:
        return self.ok and all(r.balanced for r in self.remittances)

    @property
    def transaction_count(self) -> int:
        """Transaction sets in the file, readable or not (envelope errors are not transactions)."""
        return len(self.remittances) + sum(1 for e in self.errors if e.transaction_control is not None)


def read_file(source: BinaryIO | Path | str, *, chunk_size: int = CHUNK_SIZE) -> FileResult:
    """Read a whole file into lists (for files of normal size; stream big ones with iter_transactions).

    Raises ``X12Error`` when the file is not a readable interchange at all.
    """
    findings: list[str] = []
    remittances: list[Remittance] = []
    errors: list[X12Error] = []
    for item in iter_transactions(source, file_findings=findings, chunk_size=chunk_size):
        if isinstance(item, X12Error):
            errors.append(item)
        else:
            remittances.append(item)
    return FileResult(remittances=remittances, errors=errors, findings=findings)
