"""Split a binary X12 stream into segment strings, one chunk at a time.

Why by hand: the X12 libraries at hand (pyx12's ``RawX12File``, ``x12-parser``'s readers)
either read the whole file, assume one interchange per file with one set of delimiters, or
yield segments with surrounding whitespace left in; the reader needs bounded memory, the
delimiters re-read at every ISA, and whitespace of any kind around segments dropped (it is not
data: pretty-printed files put every segment on its own line, indented, with blank lines).

Memory: the file is read in ``chunk_size`` byte chunks and split on the segment terminator
(a single byte, taken from the ISA), so only the current chunk is held.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

from carefabric.x12.envelope import ISA_LENGTH, Delimiters, detect_delimiters, skip_preamble
from carefabric.x12.errors import X12Error

CHUNK_SIZE = 1 << 16
MAX_SEGMENT_BYTES = 1 << 20  # no real segment comes near this; beyond it the terminator is wrong
_ISA_HEAD = 400  # bytes enough to read any ISA's delimiters
_TAIL_JUNK = b" \r\n\t\x0b\x0c\x00\x1a"  # NUL padding and DOS end-of-file after the last segment


class SegmentStream:
    """Segments of a binary X12 stream, whitespace around them removed.

    ``notes`` collects findings raised while splitting (non-UTF-8 bytes, a last segment without
    terminator); the parser drains it after each segment so each finding lands on the
    transaction that holds the segment. ``position`` is the 1-based number of the last segment
    yielded, counted over the whole file. ``delimiters`` are those of the current interchange:
    an ISA that follows an IEA may declare others (files concatenated from several senders),
    and the stream switches to them at that ISA.
    """

    def __init__(self, stream: BinaryIO, *, chunk_size: int = CHUNK_SIZE) -> None:
        self._stream = stream
        self._chunk_size = chunk_size
        head = self._read_at_least(stream.read(max(chunk_size, ISA_LENGTH + 64)), ISA_LENGTH + 64)
        self._head = head[skip_preamble(head) :]
        self.delimiters: Delimiters = detect_delimiters(self._head)
        self._next = self.delimiters
        self.notes: list[str] = []
        self.position = 0

    def _read_at_least(self, data: bytes, size: int) -> bytes:
        while len(data) < size:  # a short read from a pipe
            more = self._stream.read(self._chunk_size)
            if not more:
                break
            data += more
        return data

    def _decode_each(self, block: bytes) -> tuple[list[str], list[str | None]]:
        """Slow path for a block that is not UTF-8: decode segment by segment, latin-1 on failure.

        Returns the segments and, in parallel, a note for each one that needed latin-1.
        """
        parts: list[str] = []
        notes: list[str | None] = []
        for raw in block.split(self.delimiters.segment_byte):
            try:
                parts.append(raw.decode("utf-8"))
                notes.append(None)
            except UnicodeDecodeError as exc:
                parts.append(raw.decode("latin-1"))
                offset = exc.start - (len(raw) - len(raw.lstrip(_TAIL_JUNK)))
                notes.append(
                    f"byte 0x{raw[exc.start]:02x} at offset {offset} is not UTF-8; segment decoded as latin-1"
                )
        return parts, notes

    def _split_at_interchange(self, block: bytes, buf: bytes) -> tuple[bytes, bytes, Delimiters]:
        """Cut ``block`` after an IEA whose next ISA declares other delimiters.

        Returns (the block up to that IEA, the buffer from the new ISA on, the new delimiters);
        when every interchange in the block keeps the current delimiters, the block whole, the
        buffer (possibly read further to see the next ISA) and the current delimiters. Only runs
        on blocks holding ``IEA``, so the normal path pays nothing for it.
        """
        buf = self._read_at_least(buf, _ISA_HEAD)
        d = self.delimiters
        marker = b"IEA" + d.element.encode("latin-1")
        before = {d.segment_byte[0], *map(ord, d.whitespace)}
        start = 0
        while (idx := block.find(marker, start)) >= 0:
            start = idx + 3
            if idx and block[idx - 1] not in before:
                continue  # "IEA*" inside an element value, not a segment
            end = block.find(d.segment_byte, idx)
            kept, rest = (block[:end], block[end + 1 :] + d.segment_byte + buf) if end >= 0 else (block, buf)
            head = rest[skip_preamble(rest) :]
            if not head.startswith(b"ISA"):
                continue
            try:
                new = detect_delimiters(head)
            except X12Error:
                continue  # the reader names the broken ISA when it reaches it
            if (new.element, new.component, new.segment) != (d.element, d.component, d.segment):
                return kept, rest, new
        return block, buf, d

    def __iter__(self) -> Iterator[str]:
        buf = self._head
        self._head = b""
        iea = b"IEA"
        while True:
            term_byte, term, ws = self.delimiters.segment_byte, self.delimiters.segment, self.delimiters.whitespace
            cut = buf.rfind(term_byte)
            if cut >= 0:
                block, buf = buf[:cut], buf[cut + 1 :]
                if iea in block:  # an interchange ends here: the next one may declare other delimiters
                    block, buf, self._next = self._split_at_interchange(block, buf)
                notes: list[str | None] | None = None
                try:
                    parts = block.decode("utf-8").split(term)
                except UnicodeDecodeError:
                    parts, notes = self._decode_each(block)
                for index, part in enumerate(parts):  # inline, not a nested generator: this is per segment
                    segment = part.strip(ws)
                    if not segment:  # blank between terminators (e.g. "~\n  \n~"): not a segment
                        continue
                    self.position += 1
                    if notes is not None and notes[index]:
                        self.notes.append(f"segment {self.position}: {notes[index]}")
                    yield segment
                if self._next is not self.delimiters:
                    self.delimiters = self._next
                    continue
            elif len(buf) > MAX_SEGMENT_BYTES:
                raise X12Error(
                    f"no segment terminator {self.delimiters.segment!r} within {MAX_SEGMENT_BYTES} bytes after "
                    f"segment {self.position}: wrong terminator or not X12"
                )
            chunk = self._stream.read(self._chunk_size)
            if not chunk:
                break
            buf += chunk
        yield from self._tail(buf)

    def _tail(self, buf: bytes) -> Iterator[str]:
        tail = buf.strip(_TAIL_JUNK)
        if tail:
            self.position += 1
            self.notes.append(f"segment {self.position}: last segment has no terminator {self.delimiters.segment!r}")
            parts, notes = self._decode_each(tail)
            if notes[0]:
                self.notes.append(f"segment {self.position}: {notes[0]}")
            yield parts[0].strip(self.delimiters.whitespace)
