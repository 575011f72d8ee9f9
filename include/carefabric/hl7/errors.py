"""The one error the HL7 v2 reader raises for a message it cannot use.

A single exception type with a one-line ``reason`` keeps the ingestion loop simple: it catches
``HL7ParseError``, stores the message with reason code ``HL7_PARSE_ERROR`` and the reason text,
and goes on with the rest of the file. ``control_id`` is MSH-10 when it could be read, so an
operator can find the message in the EHR.
"""

from __future__ import annotations


class HL7ParseError(ValueError):
    """A message that cannot be framed, parsed or turned into canonical records."""

    def __init__(self, reason: str, control_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.control_id = control_id

    def __str__(self) -> str:
        if self.control_id:
            return f"{self.reason} (MSH-10 {self.control_id})"
        return self.reason

    def __reduce__(self) -> tuple[type[HL7ParseError], tuple[str, str | None]]:
        # Keeps the reason and control id when the error crosses a process boundary (workers).
        return (type(self), (self.reason, self.control_id))
