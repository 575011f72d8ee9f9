"""Hot-path HL7 v2 reader: streaming framing, lazy parsing, canonical mapping.

Typical use (what the EHR ingestion task and ``carefabric hl7`` do)::

    from carefabric.hl7 import FileReport, HL7ParseError, iter_messages, parse, to_canonical

    report = FileReport()
    for raw in iter_messages(path, report=report):
        try:
            result = to_canonical(parse(raw))
        except HL7ParseError as exc:
            ...  # exception HL7_PARSE_ERROR with exc.reason, exc.control_id; the file goes on
        else:
            ...  # result.skipped_reason, or result.encounter / result.charges

Hand-written instead of hl7apy or python-hl7 for speed (see ``message``) and streaming (see
``framing``); both libraries are the reference the tests compare every extracted field with.
"""

from carefabric.hl7.canonical import ADT_EVENTS, ROUTED_TYPES, CanonicalResult, canonicalize, to_canonical
from carefabric.hl7.datatypes import parse_date, parse_datetime, parse_number
from carefabric.hl7.errors import HL7ParseError
from carefabric.hl7.escapes import DEFAULT_DELIMITERS, Delimiters, escape, unescape
from carefabric.hl7.framing import Envelope, FileReport, RawMessage, iter_messages
from carefabric.hl7.message import Message, Segment, parse, peek_control_id

__all__ = [
    "ADT_EVENTS",
    "DEFAULT_DELIMITERS",
    "ROUTED_TYPES",
    "CanonicalResult",
    "Delimiters",
    "Envelope",
    "FileReport",
    "HL7ParseError",
    "Message",
    "RawMessage",
    "Segment",
    "canonicalize",
    "escape",
    "iter_messages",
    "parse",
    "parse_date",
    "parse_datetime",
    "parse_number",
    "peek_control_id",
    "to_canonical",
    "unescape",
]
