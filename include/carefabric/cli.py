"""``carefabric`` command line: look inside feed files the way the pipeline reads them.

``carefabric hl7 FILE`` prints the canonical JSON of every message of an HL7 v2 file (what
ingestion would store and route), ``carefabric 835 FILE`` the summary of an X12 835 file.
PHI (names, MRNs, birth dates, member ids) is masked unless ``--show-phi`` is given, because
this output ends up in tickets and chat.

Exit codes: 0 every message was usable (skipped types included), 1 the file was read but some
messages are errors (they are in the JSON, with their reason), 2 the file could not be read or
holds nothing usable; then stderr gets exactly one line ``carefabric: <file>: <reason>`` and
there is never a traceback. Subcommands live in ``_SUBCOMMANDS`` so more can be added
(``crosswalk``, ``exceptions``) without touching the others.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import importlib
import json
import os
import sys
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

from carefabric import phi

__all__ = ["main", "build_parser", "CliError"]

_PHI_FIELDS = ("mrn_phi", "patient_name_phi", "birth_date_phi", "member_id_phi")


class CliError(Exception):
    """A failure reported as ``carefabric: <file>: <reason>`` with exit code 2."""

    def __init__(self, target: str, reason: str) -> None:
        super().__init__(f"{target}: {reason}")
        self.target = target
        self.reason = reason


def _jsonable(value: Any) -> Any:
    """Canonical records as JSON: amounts as strings (never floats), dates in ISO 8601."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _mask_phi(record: dict[str, Any]) -> dict[str, Any]:
    for key in _PHI_FIELDS:
        if key in record:
            record[key] = phi.mask(record[key])
    return record


# --------------------------------------------------------------------------- hl7


def _hl7_message_json(raw: Any, show_phi: bool) -> tuple[dict[str, Any], bool]:
    """One message as JSON; the flag says whether it is an error."""
    from carefabric.hl7 import HL7ParseError, parse, peek_control_id, to_canonical

    out: dict[str, Any] = {"index": raw.index, "offset": raw.offset}
    try:
        result = to_canonical(parse(raw))
    except HL7ParseError as exc:
        out.update(
            status="error",
            control_id=exc.control_id or peek_control_id(raw.text),
            error=exc.reason,
            warnings=list(raw.warnings),
        )
        return out, True
    encounter = _jsonable(result.encounter) if result.encounter is not None else None
    if encounter is not None and not show_phi:
        _mask_phi(encounter)
    out.update(
        status="skipped" if result.skipped_reason else "ok",
        message_type=result.message_type,
        control_id=result.control_id,
        sender=result.sender,
        version=result.version,
    )
    if result.skipped_reason:
        out["skipped_reason"] = result.skipped_reason
    else:
        out["encounter"] = encounter
        out["charges"] = [_jsonable(c) for c in result.charges]
    out["warnings"] = result.warnings
    if raw.envelope is not None and raw.envelope.batch_control_id:
        out["batch_control_id"] = raw.envelope.batch_control_id
    return out, False


def _cmd_hl7(args: argparse.Namespace, out: TextIO) -> int:
    """Stream the file: the JSON is written message by message, so any file size works."""
    from carefabric.hl7 import FileReport, iter_messages

    path = Path(args.file)
    report = FileReport()
    counts = {"ok": 0, "skipped": 0, "error": 0}
    started = False
    try:
        for raw in iter_messages(path, report=report):
            record, _is_error = _hl7_message_json(raw, args.show_phi)
            counts[record["status"]] += 1
            text = json.dumps(record, indent=2, ensure_ascii=False)
            if not started:
                out.write(
                    '{\n  "file": ' + json.dumps(str(path), ensure_ascii=False) + ',\n  "messages": [\n'
                )
                started = True
            else:
                out.write(",\n")
            out.write(_indent(text, 4))
    except OSError as exc:
        raise CliError(str(path), exc.strerror or str(exc)) from None
    if not started:
        raise CliError(str(path), report.empty_reason or "no HL7 message in file")
    summary = {
        "messages": report.messages,
        **counts,
        "batches": report.batches,
        "problems": report.problems,
    }
    out.write('\n  ],\n  "summary": ' + _indent(json.dumps(summary, indent=2), 2).lstrip() + "\n}\n")
    return 1 if counts["error"] else 0


def _indent(text: str, n: int) -> str:
    pad = " " * n
    return "\n".join(pad + line for line in text.splitlines())


# --------------------------------------------------------------------------- 835


def _cmd_835(args: argparse.Namespace, out: TextIO) -> int:
    path = Path(args.file)
    if not path.is_file():
        raise CliError(str(path), "no such file" if not path.exists() else "not a regular file")
    try:
        summary_mod = importlib.import_module("carefabric.x12.summary")
    except ImportError as exc:
        raise CliError(str(path), f"X12 835 support is not available ({exc})") from None
    try:
        summary = summary_mod.file_summary(path, show_phi=args.show_phi)
    except OSError as exc:
        raise CliError(str(path), exc.strerror or str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - a reader failure is a one-line error, never a traceback
        raise CliError(str(path), _one_line(exc)) from None
    out.write(json.dumps(_jsonable(summary), indent=2, ensure_ascii=False) + "\n")
    return 0


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# --------------------------------------------------------------------------- main

_Handler = Callable[[argparse.Namespace, TextIO], int]
_SUBCOMMANDS: dict[str, _Handler] = {"hl7": _cmd_hl7, "835": _cmd_835}


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree; later subcommands register on ``parser._subparsers`` the same way."""
    parser = argparse.ArgumentParser(
        prog="carefabric",
        description="Healthcare integration fabric: inspect feed files as the pipeline reads them.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    p = sub.add_parser("hl7", help="print canonical JSON of every message of an HL7 v2 file")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--show-phi", action="store_true", help="print names, MRNs and birth dates in clear")
    p.set_defaults(handler=_cmd_hl7)
    p = sub.add_parser("835", help="print the summary of an X12 835 remittance file")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--show-phi", action="store_true", help="print patient names and member ids in clear")
    p.set_defaults(handler=_cmd_835)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``carefabric`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args, sys.stdout)
    except CliError as exc:
        print(f"carefabric: {exc.target}: {exc.reason}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `carefabric hl7 big.hl7 | head`: stop quietly, no flush error at exit
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
