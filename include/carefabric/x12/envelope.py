"""Interchange envelope: find the delimiters an X12 file declares in its ISA segment.

X12 never hard-codes its separators: the ISA segment is fixed width (106 characters including
its terminator), the element separator is its 4th character, ISA16 (position 105) is the
component separator and the character right after ISA16 ends every segment. ISA11 is the
repetition separator from version 00501 on (in 00401 it is the standards id ``U``).
Everything downstream splits with these, never with ``*``, ``:`` or ``~`` literals.
"""

from __future__ import annotations

from dataclasses import dataclass

from carefabric.x12.errors import X12Error

ISA_LENGTH = 106  # "ISA" + 16 elements + 16 separators + terminator, fixed width by the standard
_ISA16_INDEX = 104
_BOM = b"\xef\xbb\xbf"
_WHITESPACE = (b" ", b"\r", b"\n", b"\t", b"\x0b", b"\x0c")
_ISA_SEARCH = 400  # an unpadded ISA is shorter than 106; a wildly padded one is not an ISA


@dataclass(frozen=True, slots=True)
class Delimiters:
    """The separators one interchange uses (all single characters).

    ``isa_length`` is the length of the ISA as written, terminator included: 106 when it is
    fixed width as the standard requires, another number for an ISA whose fields were not
    padded (read by its separators; the reader records a finding).
    """

    element: str
    component: str
    segment: str
    repetition: str | None = None
    isa_length: int = ISA_LENGTH

    @property
    def segment_byte(self) -> bytes:
        """The terminator as the single byte the stream is split on."""
        return self.segment.encode("latin-1")

    @property
    def whitespace(self) -> str:
        """Characters stripped around every segment: whitespace that is not one of the delimiters."""
        return "".join(ch for ch in " \t\r\n\x0b\x0c" if ch not in (self.element, self.component, self.segment))


def _bad_delimiter(ch: str) -> bool:
    return ch.isalnum() or ch == " "


def skip_preamble(head: bytes) -> int:
    """Offset of ``ISA`` after a UTF-8 byte order mark and leading whitespace (both seen in the wild)."""
    offset = len(_BOM) if head.startswith(_BOM) else 0
    while offset < len(head) and head[offset : offset + 1] in _WHITESPACE:
        offset += 1
    return offset


def _isa16_index(text: str, element: str) -> int:
    """Index of ISA16 in ``text``: fixed (104) when the ISA is padded, else after the 16th separator.

    Raises ``X12Error`` naming what is wrong when there are not 16 separators before a plausible
    end of the ISA.
    """
    seps = [i for i, ch in enumerate(text[:_ISA16_INDEX]) if ch == element]
    if len(seps) == 16 and seps[-1] == _ISA16_INDEX - 1:
        return _ISA16_INDEX
    all_seps = [i for i, ch in enumerate(text[:_ISA_SEARCH]) if ch == element]
    if len(all_seps) < 16:
        raise X12Error(
            f"ISA segment has {len(all_seps)} element separators {element!r} where 16 are required"
        )
    return all_seps[15] + 1


def _looks_like(head: bytes) -> str:
    """What a file that is not X12 seems to be, without quoting its content (it may hold PHI)."""
    for prefix, kind in ((b"ST*", "starts with an ST segment: a transaction set without its ISA/GS envelope"),
                         (b"GS*", "starts with a GS segment: a functional group without its ISA envelope"),
                         (b"MSH", "looks like HL7 v2"), (b"FHS", "looks like an HL7 v2 batch"),
                         (b"BHS", "looks like an HL7 v2 batch"), (b"{", "looks like JSON"),
                         (b"<", "looks like XML or HTML"), (b"PK", "looks like a ZIP archive"),
                         (b"%PDF", "looks like a PDF"), (b"\x00", "starts with a NUL byte")):
        if head.startswith(prefix):
            return kind
    first = head[:1].decode("latin-1")
    return "starts with other text" if first.isascii() and first.isprintable() else "starts with binary data"


def detect_delimiters(head: bytes) -> Delimiters:
    """Read the delimiters from the first bytes of an interchange (``head`` starts at ``ISA``).

    An ISA whose fields are not padded to their fixed widths (seen in the wild) is read by its
    separators: ISA16 follows the 16th element separator and the terminator follows ISA16;
    ``Delimiters.isa_length`` then says how long it really is. Raises ``X12Error`` with a
    one-line reason when the bytes are not a usable ISA: that is a file-level failure (a real
    receiver answers it with a TA1, not a 999).
    """
    if not head:
        raise X12Error("empty file: no ISA segment")
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00\x00\x00" in (head[1:6:2], head[0:5:2]):
        raise X12Error("file is UTF-16 encoded: X12 is 8-bit text (re-save it as ASCII or UTF-8)")
    if not head.startswith(b"ISA"):
        raise X12Error(f"not an X12 interchange: file does not start with ISA ({_looks_like(head)})")
    text = head[:_ISA_SEARCH].decode("latin-1")
    element = text[3] if len(text) > 3 else ""
    if not element or _bad_delimiter(element):
        raise X12Error(f"ISA declares an invalid element separator {element!r} (4th character)")
    isa16 = _isa16_index(text, element)
    if len(text) < isa16 + 2:
        raise X12Error(
            f"ISA segment too short: file has {len(head)} characters, a fixed-width ISA needs {ISA_LENGTH}"
        )
    component = text[isa16]
    segment = text[isa16 + 1]
    if _bad_delimiter(component) or component == element:
        raise X12Error(f"ISA16 declares an invalid component separator {component!r}")
    if _bad_delimiter(segment) or segment in (element, component):
        raise X12Error(f"ISA declares an invalid segment terminator {segment!r} (character after ISA16)")
    isa11 = text[:isa16].split(element)[11]
    usable = len(isa11) == 1 and not _bad_delimiter(isa11) and isa11 not in (element, component, segment)
    repetition = isa11 if usable else None  # 00401 has the standards id "U" here, not a separator
    return Delimiters(element, component, segment, repetition, isa_length=isa16 + 2)
