"""Errors of the X12 layer.

One exception type, ``X12Error``, serves two roles on purpose:

* raised, it means the *file* cannot be read at all (empty, not an interchange, a broken ISA):
  nothing in it can be trusted, so there is nothing to yield;
* yielded by :func:`carefabric.x12.reader.iter_transactions` (as a value, not raised), it means
  one transaction set (ST..SE) is unreadable while the rest of the file goes on. It then carries
  the control numbers (ISA13/GS06/ST02) so the exception queue can name exactly what failed and
  the duplicate detector can still recognise the transaction on replay.

``reason`` is always one line, free of PHI (it quotes segment ids, positions, control numbers and
amounts, never names or member ids), so it can go into logs, exception summaries and emails.
"""

from __future__ import annotations


class X12Error(Exception):
    """An X12 file or one of its transactions could not be read; ``reason`` says why, in one line."""

    def __init__(
        self,
        reason: str,
        *,
        interchange_control: str | None = None,
        group_control: str | None = None,
        transaction_control: str | None = None,
        segment_position: int | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.interchange_control = interchange_control  # ISA13
        self.group_control = group_control  # GS06
        self.transaction_control = transaction_control  # ST02
        self.segment_position = segment_position  # 1-based segment number in the file

    def __repr__(self) -> str:
        return (
            f"X12Error({self.reason!r}, interchange_control={self.interchange_control!r}, "
            f"group_control={self.group_control!r}, transaction_control={self.transaction_control!r})"
        )

    def to_dict(self) -> dict[str, object]:
        """JSON-able form for the operator CLI and the exception store."""
        return {
            "reason": self.reason,
            "interchange_control": self.interchange_control,
            "group_control": self.group_control,
            "transaction_control": self.transaction_control,
            "segment_position": self.segment_position,
        }


# A yielded (not raised) X12Error: one unreadable ST..SE. Same class, a name that reads well at call sites.
TransactionError = X12Error
