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
_TERMINATOR_INDEX = 105
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class Delimiters:
    """The separators one interchange uses (all single characters)."""

    element: str
    component: str
    segment: str
    repetition: str | None = None

    @property
    def segment_byte(self) -> bytes:
        """The terminator as the single byte the stream is split on."""
        return self.segment.encode("latin-1")


def _bad_delimiter(ch: str) -> bool:
    return ch.isalnum() or ch == " "


def skip_preamble(head: bytes) -> int:
    """Offset of ``ISA`` after a UTF-8 byte order mark and leading whitespace (both seen in the wild)."""
    offset = len(_BOM) if head.startswith(_BOM) else 0
    while offset < len(head) and head[offset : offset + 1] in (b" ", b"\r", b"\n", b"\t"):
        offset += 1
    return offset


def detect_delimiters(head: bytes) -> Delimiters:
    """Read the delimiters from the first bytes of an interchange (``head`` starts at ``ISA``).

    Raises ``X12Error`` with a one-line reason when the bytes are not a usable ISA: that is a
    file-level failure (a real receiver answers it with a TA1, not a 999).
    """
    if not head:
        raise X12Error("empty file: no ISA segment")
    if not head.startswith(b"ISA"):
        shown = head[:20].decode("latin-1").encode("unicode_escape").decode("ascii")
        raise X12Error(f"not an X12 interchange: file does not start with ISA (starts with {shown!r})")
    if len(head) < ISA_LENGTH:
        raise X12Error(
            f"ISA segment too short: file has {len(head)} characters, a fixed-width ISA needs {ISA_LENGTH}"
        )
    text = head[:ISA_LENGTH].decode("latin-1")
    element = text[3]
    if _bad_delimiter(element):
        raise X12Error(f"ISA declares an invalid element separator {element!r} (4th character)")
    seps = [i for i, ch in enumerate(text[:_ISA16_INDEX]) if ch == element]
    if len(seps) != 16 or seps[-1] != _ISA16_INDEX - 1:
        # Say where the 16th separator really is, the usual fault (an unpadded ISA06/ISA08).
        full = head[:400].decode("latin-1")
        all_seps = [i for i, ch in enumerate(full) if ch == element]
        if len(all_seps) >= 16:
            actual = all_seps[15] + 3  # ISA16 + terminator after the 16th separator
            raise X12Error(
                f"ISA segment is {actual} characters, not the fixed {ISA_LENGTH} "
                f"(ISA16 must be at position {_ISA16_INDEX + 1})"
            )
        raise X12Error(
            f"ISA segment has {len(all_seps)} element separators {element!r} where 16 are required"
        )
    component = text[_ISA16_INDEX]
    segment = text[_TERMINATOR_INDEX]
    if _bad_delimiter(component) or component == element:
        raise X12Error(f"ISA16 declares an invalid component separator {component!r}")
    if _bad_delimiter(segment) or segment in (element, component):
        raise X12Error(f"ISA declares an invalid segment terminator {segment!r} (character after ISA16)")
    isa11 = text.split(element)[11]
    usable = len(isa11) == 1 and not _bad_delimiter(isa11) and isa11 not in (element, component, segment)
    repetition = isa11 if usable else None  # 00401 has the standards id "U" here, not a separator
    return Delimiters(element=element, component=component, segment=segment, repetition=repetition)
