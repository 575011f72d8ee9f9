"""``carefabric`` command line: look inside feed files the way the pipeline reads them.

``carefabric hl7 FILE`` prints the canonical JSON of every message of an HL7 v2 file (what
ingestion would store and route), ``carefabric 835 FILE`` the summary of an X12 835 file,
``carefabric fhir FILE`` the canonical JSON of a FHIR R4 NDJSON file or Bundle (``cli_fhir``).
PHI (names, MRNs, birth dates, member ids) is masked unless ``--show-phi`` is given, because
this output ends up in tickets and chat.

Exit codes, one convention for every reader (``EXIT_CODES``, also in ``carefabric --help``):
0 the file was read and everything in it is usable (skipped message types included); 1 the file
was read with problems: some messages or transactions are errors, an 835 transaction does not
balance or its envelope is incomplete (all in the JSON, with their reasons); 2 the file could not
be read at all (missing, not HL7 / not an X12 interchange, nothing in it); then stderr gets
exactly one line ``carefabric: <file>: <reason>`` and there is never a traceback. Subcommands live in ``_SUBCOMMANDS`` so more can be added
(``crosswalk``, ``exceptions``) without touching the others.

Operator commands against the integration store (``CAREFABRIC_DB_URL``, default the SQLite
store under ``data/``), JSON on stdout, the same views as the web console
(``carefabric.console``):

    carefabric db upgrade | db current
    carefabric crosswalk import DIR
    carefabric crosswalk set cdm CODE --revenue-account A [--erp-item I] [--procedure-code P]
                                      [--description D]
    carefabric crosswalk set department FACILITY DEPT --cost-center CC
    carefabric crosswalk set payer X12_ID --erp-payer P
    carefabric crosswalk show [TABLE]
    carefabric exceptions list [--status S|all] [--interface I] [--reason R] [--kind K] [--limit N]
    carefabric exceptions show ID | discard ID --note N | resolve ID [--note N]
    carefabric exceptions replay (ID... | --reason R | --interface I)

Who did it: every change is audited under ``cli:<account>``, the operating-system account of the
process's effective uid (``_actor``). There is no ``--actor``: a name typed on the command line,
or read from ``$USER``, is whatever the caller wants it to be; the uid is the kernel's answer, and
whoever can act as another account can also open the store as it. The ``cli:`` prefix keeps
these apart from Airflow logins, which the console audits under the bare login name.
    carefabric trace KEY
    carefabric health [--day YYYY-MM-DD]

A bad argument, an unknown id, a store that is not reachable or not migrated: one line on
stderr (``carefabric: <target>: <reason>``) and exit code 2.
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
from typing import Any, NoReturn, TextIO

from carefabric import cli_fhir, phi

__all__ = ["main", "build_parser", "CliError"]

_PHI_FIELDS = ("mrn_phi", "patient_name_phi", "birth_date_phi", "member_id_phi")

EXIT_CODES = """exit codes of the file readers (hl7, 835, fhir):
  0  read: everything in the file is usable
  1  read with problems: some messages or transactions are errors, an 835 transaction does not
     balance or its envelope is incomplete (details in the JSON)
  2  unreadable: missing file, not HL7 / not an X12 interchange / not FHIR JSON, nothing in it
     (one line on stderr: carefabric: FILE: REASON)
store commands exit 0, or 2 with one line on stderr."""


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
    problems = not summary.get("readable", True) or not summary.get("balanced", True)
    return 1 if problems else 0


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# --------------------------------------------------------------------------- store commands


def _store_target() -> str:
    """The store URL without its password (for error lines)."""
    from sqlalchemy.engine import make_url

    from carefabric import config

    try:
        return make_url(config.db_url()).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL is reported as it is
        return "store"


def _print_json(out: TextIO, value: Any) -> None:
    out.write(json.dumps(_jsonable(value), indent=2, ensure_ascii=False) + "\n")


def _with_store(fn: Callable[[Any, argparse.Namespace, TextIO], int]) -> _Handler:
    """Run ``fn(engine, args, out)``; store and input failures become one-line errors."""

    def handler(args: argparse.Namespace, out: TextIO) -> int:
        from sqlalchemy.exc import SQLAlchemyError

        from carefabric.console.actions import ActionError
        from carefabric.store.db import get_engine

        target = _store_target()
        try:
            engine = get_engine()
        except Exception as exc:  # noqa: BLE001 - bad URL, missing driver
            raise CliError(target, _one_line(exc)) from None
        try:
            return fn(engine, args, out)
        except LookupError as exc:
            raise CliError(getattr(args, "target", None) or target, str(exc).strip("'\"")) from None
        except ActionError as exc:
            raise CliError(getattr(args, "target", None) or target, str(exc)) from None
        except SQLAlchemyError as exc:
            reason = _one_line(getattr(exc, "orig", None) or exc)
            if "no such table" in reason or "does not exist" in reason:
                reason += " (run `carefabric db upgrade`)"
            raise CliError(target, reason) from None
        finally:
            engine.dispose()

    return handler


def _session(engine: Any) -> Any:
    from carefabric.store.db import session_scope

    return session_scope(engine)


def _cmd_db_upgrade(args: argparse.Namespace, out: TextIO) -> int:
    from carefabric import config
    from carefabric.store import db

    url = config.db_url()
    target = _store_target()
    try:
        before = db.current_revision(url)
        db.upgrade(url)
        after = db.current_revision(url)
    except Exception as exc:  # noqa: BLE001 - any migration failure is one line
        raise CliError(target, _one_line(getattr(exc, "orig", None) or exc)) from None
    _print_json(out, {"store": target, "from": before, "revision": after, "head": db.head_revision()})
    return 0


def _cmd_db_current(args: argparse.Namespace, out: TextIO) -> int:
    from carefabric import config
    from carefabric.store import db

    target = _store_target()
    try:
        revision = db.current_revision(config.db_url())
    except Exception as exc:  # noqa: BLE001
        raise CliError(target, _one_line(getattr(exc, "orig", None) or exc)) from None
    head = db.head_revision()
    _print_json(out, {"store": target, "revision": revision, "head": head, "up_to_date": revision == head})
    return 0


def _crosswalk_import(engine: Any, args: argparse.Namespace, out: TextIO) -> int:
    from carefabric.store.crosswalks import CrosswalkError, import_csv_dir

    folder = Path(args.dir)
    args.target = str(folder)
    if not folder.is_dir():
        raise CliError(str(folder), "no such directory" if not folder.exists() else "not a directory")
    actor = _actor()
    try:
        with _session(engine) as s:
            result = import_csv_dir(s, folder, actor)
    except (CrosswalkError, OSError, UnicodeDecodeError) as exc:
        raise CliError(str(folder), _one_line(exc)) from None
    if not result:
        raise CliError(str(folder), "no crosswalk CSV (departments.csv, cdm.csv, payers.csv, facilities.csv)")
    _print_json(out, {"imported": result, "actor": actor})
    return 0


def _actor() -> str:
    """``cli:<account>`` of the effective uid (see the module docstring: never a typed name)."""
    import pwd

    uid = os.geteuid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:  # a uid without a passwd entry (containers run with --user 1234)
        name = f"uid{uid}"
    return f"cli:{name}"


def _crosswalk_set(engine: Any, args: argparse.Namespace, out: TextIO) -> int:
    from carefabric.console import actions

    actor = _actor()
    with _session(engine) as s:
        if args.table == "cdm":
            args.target = f"cdm {args.code}"
            row = actions.set_cdm(
                s, args.code, revenue_account=args.revenue_account, erp_item=args.erp_item,
                procedure_code=args.procedure_code, description=args.description, actor=actor,
            )
        elif args.table == "department":
            args.target = f"department {args.facility}/{args.department}"
            row = actions.set_department(s, args.facility, args.department, cost_center=args.cost_center, actor=actor)
        else:
            args.target = f"payer {args.x12_payer_id}"
            row = actions.set_payer(s, args.x12_payer_id, erp_payer_id=args.erp_payer, actor=actor)
    _print_json(out, row)
    return 0


def _crosswalk_show(engine: Any, args: argparse.Namespace, out: TextIO) -> int:
    from carefabric.console import queries
    from carefabric.store.crosswalks import SPECS

    tables = [args.table] if args.table else list(SPECS)
    with _session(engine) as s:
        result = {name: queries.crosswalk_rows(s, name)["rows"] for name in tables}
    _print_json(out, result if not args.table else {"table": args.table, "rows": result[args.table]})
    return 0


def _exceptions_list(engine: Any, args: argparse.Namespace, out: TextIO) -> int:
    from carefabric.console import queries

    with _session(engine) as s:
        page = queries.list_exceptions(
            s, status=None if args.status == "all" else args.status, interface=args.interface,
            reason_code=args.reason, kind=args.kind, page=1, page_size=args.limit,
        )
    _print_json(out, {"total": page["total"], "shown": len(page["items"]), "filters": page["filters"],
                      "items": page["items"]})
    return 0


def _exceptions_show(engine: Any, args: argparse.Namespace, out: TextIO) -> int:
    from carefabric.console import queries

    args.target = f"exception {args.id}"
    with _session(engine) as s:
        _print_json(out, queries.exception_detail(s, args.id))
    return 0


def _exceptions_discard(engine: Any, args: argparse.Namespace, out: TextIO) -> int:
    from carefabric.console import actions

    args.target = f"exception {args.id}"
    actor = _actor()
    with _session(engine) as s:
        _print_json(out, actions.discard(s, args.id, actor=actor, note=args.note))
    return 0


def _exceptions_resolve(engine: Any, args: argparse.Namespace, out: TextIO) -> int:
    from carefabric.console import actions

    args.target = f"exception {args.id}"
    actor = _actor()
    with _session(engine) as s:
        _print_json(out, actions.resolve(s, args.id, actor=actor, note=args.note))
    return 0


def _exceptions_replay(engine: Any, args: argparse.Namespace, out: TextIO) -> int:
    """Without billing/ERP clients the CLI does what the console does: check and print the DAG command."""
    from carefabric.console import actions

    args.target = "replay"
    actor = _actor()
    _print_json(out, actions.replay(engine, exception_ids=args.ids or None, reason_code=args.reason,
                                    interface=args.interface, actor=actor))
    return 0


def _cmd_trace_store(engine: Any, args: argparse.Namespace, out: TextIO) -> int:
    from carefabric.console import queries

    args.target = args.key
    with _session(engine) as s:
        try:
            result = queries.trace(s, args.key)
        except ValueError as exc:
            raise CliError(repr(args.key), str(exc)) from None
    if not result["found"]:
        raise CliError(args.key, "nothing in the store matches (line key, control id, claim id, trace number, file)")
    _print_json(out, result)
    return 0


def _cmd_health_store(engine: Any, args: argparse.Namespace, out: TextIO) -> int:
    from carefabric.console import queries

    with _session(engine) as s:
        _print_json(out, queries.health(s, args.day))
    return 0


def _date_arg(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {value}")
    return value


def _add_store_commands(sub: Any) -> None:
    from carefabric.store.crosswalks import SPECS
    from carefabric.store.models import EXCEPTION_KINDS, EXCEPTION_STATUSES

    db = sub.add_parser("db", help="integration store migrations").add_subparsers(
        dest="db_command", metavar="ACTION", required=True
    )
    db.add_parser("upgrade", help="apply the Alembic migrations up to head").set_defaults(handler=_cmd_db_upgrade)
    db.add_parser("current", help="print the store's revision and the head").set_defaults(handler=_cmd_db_current)

    cw = sub.add_parser("crosswalk", help="governed crosswalks: import, set, show").add_subparsers(
        dest="cw_command", metavar="ACTION", required=True
    )
    p = cw.add_parser("import", help="load departments/cdm/payers/facilities CSV files from DIR")
    p.add_argument("dir", metavar="DIR")
    p.set_defaults(handler=_with_store(_crosswalk_import))
    setp = cw.add_parser("set", help="add or change one mapping (versioned, audited)").add_subparsers(
        dest="table", metavar="TABLE", required=True
    )
    p = setp.add_parser("cdm", help="chargemaster code -> revenue account, ERP item, procedure code")
    p.add_argument("code", metavar="CODE")
    p.add_argument("--revenue-account", required=True)
    p.add_argument("--erp-item")
    p.add_argument("--procedure-code")
    p.add_argument("--description")
    p.set_defaults(handler=_with_store(_crosswalk_set))
    p = setp.add_parser("department", help="(facility, department) -> cost center")
    p.add_argument("facility", metavar="FACILITY")
    p.add_argument("department", metavar="DEPARTMENT")
    p.add_argument("--cost-center", required=True)
    p.set_defaults(handler=_with_store(_crosswalk_set))
    p = setp.add_parser("payer", help="X12 payer id -> ERP payer id")
    p.add_argument("x12_payer_id", metavar="X12_PAYER_ID")
    p.add_argument("--erp-payer", required=True)
    p.set_defaults(handler=_with_store(_crosswalk_set))
    p = cw.add_parser("show", help="print a crosswalk (or all) with versions")
    p.add_argument("table", metavar="TABLE", nargs="?", choices=list(SPECS))
    p.set_defaults(handler=_with_store(_crosswalk_show))

    ex = sub.add_parser("exceptions", help="the exception queue: list, show, discard, resolve, replay").add_subparsers(
        dest="ex_command", metavar="ACTION", required=True
    )
    p = ex.add_parser("list", help="exceptions, newest first (open ones unless --status says otherwise)")
    p.add_argument("--status", default="open", choices=[*EXCEPTION_STATUSES, "all"])
    p.add_argument("--interface")
    p.add_argument("--reason", help="reason code, e.g. UNKNOWN_CDM")
    p.add_argument("--kind", choices=list(EXCEPTION_KINDS))
    p.add_argument("--limit", type=_positive, default=100)
    p.set_defaults(handler=_with_store(_exceptions_list))
    p = ex.add_parser("show", help="one exception with its history")
    p.add_argument("id", metavar="ID", type=_positive)
    p.set_defaults(handler=_with_store(_exceptions_show))
    p = ex.add_parser("discard", help="discard an open exception (note required; audited)")
    p.add_argument("id", metavar="ID", type=_positive)
    p.add_argument("--note", required=True)
    p.set_defaults(handler=_with_store(_exceptions_discard))
    p = ex.add_parser("resolve", help="mark an open exception resolved (audited)")
    p.add_argument("id", metavar="ID", type=_positive)
    p.add_argument("--note")
    p.set_defaults(handler=_with_store(_exceptions_resolve))
    p = ex.add_parser("replay", help="check which would map now and print the exception_replay DAG command")
    p.add_argument("ids", metavar="ID", type=_positive, nargs="*")
    p.add_argument("--reason")
    p.add_argument("--interface")
    p.set_defaults(handler=_with_store(_exceptions_replay))

    p = sub.add_parser("trace", help="a record's path: file, message, charges, exceptions, postings, reconciliation")
    p.add_argument("key", metavar="KEY", help="line key, message control id, claim id, trace number, file sha256 or name")
    p.set_defaults(handler=_with_store(_cmd_trace_store))
    p = sub.add_parser("health", help="interface health as JSON (files, exceptions, postings, reconciliation)")
    p.add_argument("--day", type=_date_arg, help="the day to count files for (UTC); default today")
    p.set_defaults(handler=_with_store(_cmd_health_store))


# --------------------------------------------------------------------------- main

_Handler = Callable[[argparse.Namespace, TextIO], int]
_SUBCOMMANDS: dict[str, _Handler] = {"hl7": _cmd_hl7, "835": _cmd_835, "fhir": cli_fhir.cmd_fhir}


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree; later subcommands register on ``parser._subparsers`` the same way."""
    parser = _Parser(
        prog="carefabric",
        description="Healthcare integration fabric: inspect feed files, run the store, work the exception queue.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    p = sub.add_parser("hl7", help="print canonical JSON of every message of an HL7 v2 file",
                       epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", metavar="FILE")
    p.add_argument("--show-phi", action="store_true", help="print names, MRNs and birth dates in clear")
    p.set_defaults(handler=_cmd_hl7)
    p = sub.add_parser("835", help="print the summary of an X12 835 remittance file",
                       epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", metavar="FILE")
    p.add_argument("--show-phi", action="store_true", help="print patient names and member ids in clear")
    p.set_defaults(handler=_cmd_835)
    cli_fhir.add_parser(sub, EXIT_CODES)
    _add_store_commands(sub)
    return parser


class _Parser(argparse.ArgumentParser):
    """Usage errors are one line (``carefabric exceptions show: argument ID: ...``), exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message}\n")


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
