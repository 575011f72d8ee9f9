"""Set-based writes: INSERT ... ON CONFLICT on SQLite and PostgreSQL, in batches.

A flow that lands 50,000 charge lines does it in a handful of statements, and a re-run of the
same file inserts nothing: ``insert_ignore`` skips rows whose natural key already exists and
says how many were new. Never one query per record:

- PostgreSQL (psycopg2 or psycopg 3): the rows are streamed with ``COPY`` straight into the
  table under a savepoint; when a key already exists, back to the savepoint, ``COPY`` into a
  temporary staging table, then one ``INSERT ... SELECT ... ON CONFLICT DO NOTHING`` moves the
  new ones (in input order) into the table;
- SQLite: one ``executemany`` of ``INSERT ... ON CONFLICT DO NOTHING`` on the driver cursor;
- anything else (or a column default that is a SQL expression): Core ``executemany`` with
  SQLAlchemy's insertmanyvalues batching and ``RETURNING``.

The fast paths bind values exactly as SQLAlchemy would (each column type's bind processor,
Python-side column defaults for the columns a row omits) and run in the caller's transaction;
they only skip SQLAlchemy's per-row statement machinery, which dominated the ingest profile.
"""

from __future__ import annotations

import datetime as dt
import io
import itertools
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from decimal import Decimal
from operator import itemgetter
from typing import Any

from sqlalchemy import Table
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session
from sqlalchemy.sql.schema import CallableColumnDefault, ColumnDefault, ScalarElementColumnDefault

from carefabric.store.types import UTCDateTime

BATCH_SIZE = 5000


class UnsupportedDialect(ValueError):
    """The store runs on SQLite or PostgreSQL; bulk writes know no other dialect."""


def table_of(table: Any) -> Table:
    """The Core ``Table`` of a Core ``Table`` or an ORM model class (for executemany UPDATEs).

    The ORM types ``__table__`` as any ``FromClause``; every model here maps one ``Table``."""
    found = table if isinstance(table, Table) else table.__table__
    if not isinstance(found, Table):
        raise TypeError(f"{table!r} is not mapped to a single table")
    return found


def _insert_for(bind: Session | Connection, table: Table) -> Any:
    dialect = bind.get_bind().dialect.name if isinstance(bind, Session) else bind.dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise UnsupportedDialect(f"insert_ignore/upsert support SQLite and PostgreSQL, not {dialect}")


def _chunks(rows: Sequence[dict[str, Any]], size: int) -> Iterator[Sequence[dict[str, Any]]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def _prepare(rows: Iterable[dict[str, Any]], key_columns: Sequence[str]) -> list[list[dict[str, Any]]]:
    """De-duplicate by key (last row wins) and group rows that name the same columns.

    ``executemany`` needs one column list per statement; grouping keeps a row that omits a
    column from overwriting its default with NULL. Rows built by one function name their
    columns in one order, so the group is found by the tuple of names (one hash of cached
    string hashes) and only a new tuple pays for the set that decides the group.
    """
    key_of: Callable[[dict[str, Any]], Any] = itemgetter(*key_columns) if key_columns else (lambda row: ())
    by_key: dict[Any, dict[str, Any]] = {}
    for row in rows:
        try:
            by_key[key_of(row)] = row
        except KeyError:
            raise KeyError(f"row lacks key column(s) {[c for c in key_columns if c not in row]}") from None
    groups: dict[frozenset[str], list[dict[str, Any]]] = {}
    named: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in by_key.values():
        names = tuple(row)
        group = named.get(names)
        if group is None:
            group = named[names] = groups.setdefault(frozenset(names), [])
        group.append(row)
    return list(groups.values())


def _execute(bind: Session | Connection, stmt: Any, rows: Sequence[dict[str, Any]]) -> int:
    result = bind.execute(stmt, list(rows))
    return len(result.all())


# --------------------------------------------------------------------------- fast paths

_stage_ids = itertools.count(1)


def _connection(bind: Session | Connection) -> Connection:
    return bind.connection() if isinstance(bind, Session) else bind


def _plan(conn: Connection, tbl: Table, named: Iterable[str]) -> tuple[list[str], list[Any], list[Callable[[Any], Any] | None]] | None:
    """Columns to write, fill-in values for omitted columns with a Python default, bind processors.

    None when a column the rows omit has a default the fast path cannot evaluate (SQL
    expression, sequence): the caller then uses the Core path.
    """
    dialect = conn.dialect
    named = set(named)
    unknown = named - set(tbl.columns.keys())
    if unknown:
        return None  # let Core raise its usual error
    columns: list[str] = []
    fills: list[Any] = []
    for col in tbl.columns:
        if col.key in named:
            columns.append(col.key)
            fills.append(_GIVEN)
            continue
        default = col.default
        if default is None:
            continue
        if isinstance(default, ScalarElementColumnDefault):
            fills.append(default.arg)
        elif isinstance(default, CallableColumnDefault):
            # once per call: e.g. created_at = now for the batch. SQLAlchemy wraps a zero-argument
            # default to take the execution context, which it ignores; there is none on this path.
            fills.append(default.arg(None))  # type: ignore[arg-type]
        else:
            return None
        columns.append(col.key)
    processors: list[Callable[[Any], Any] | None] = [
        tbl.columns[c].type.dialect_impl(dialect).bind_processor(dialect) for c in columns
    ]
    return columns, fills, processors


_GIVEN = object()


def _values(rows: Sequence[dict[str, Any]], columns: list[str], fills: list[Any], processors: list[Any]) -> Iterator[list[Any]]:
    pairs = list(zip(columns, fills, processors, strict=True))
    for row in rows:
        out = []
        for name, fill, proc in pairs:
            value = row[name] if fill is _GIVEN else fill
            if proc is not None and value is not None:
                value = proc(value)
            out.append(value)
        yield out


class _NotCopyable(Exception):
    """A value COPY text cannot carry (a NUL character): the Core path handles the chunk."""


def _copy_text(value: Any) -> str:
    """One value in PostgreSQL COPY text format."""
    if value is None:
        return "\\N"
    if isinstance(value, str):
        if "\x00" in value:
            raise _NotCopyable
        if "\\" in value:
            value = value.replace("\\", "\\\\")
        if "\t" in value or "\n" in value or "\r" in value:
            value = value.replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
        return value
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dict | list):
        return _copy_text(json.dumps(value))
    if isinstance(value, bytes | bytearray | memoryview):
        return "\\\\x" + bytes(value).hex()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return _copy_text(str(value))


_PLAIN_TYPES = frozenset({int, float, Decimal, dt.date, dt.datetime, dt.time, type(None)})
_DATES = frozenset({dt.date, dt.datetime, type(None)})
_LONG = 128  # mean characters per value above which escaping value by value beats the joined column


def _copy_long(values: list[str]) -> list[str]:
    """Long texts (raw payloads) escaped one value at a time: each stays in the CPU cache for its
    few scans, where the joined column (megabytes) is read from memory once per scan (3x slower)."""
    out = []
    for v in values:
        if "\x00" in v:
            raise _NotCopyable
        if "\\" in v:
            v = v.replace("\\", "\\\\")
        if "\r" in v:
            v = v.replace("\r", "\\r")
        if "\n" in v:
            v = v.replace("\n", "\\n")
        if "\t" in v:
            v = v.replace("\t", "\\t")
        out.append(v)
    return out


def _copy_column(values: list[Any]) -> list[str]:
    """One column in COPY text format, escaped in bulk (C string operations, not per value)."""
    kinds = set(map(type, values))
    if kinds == {str} and sum(map(len, values)) > _LONG * len(values):
        return _copy_long(values)
    if kinds <= {str, type(None)}:
        nulls = values.count(None) if type(None) in kinds else 0
        joined = "\x00".join(["\x01" if v is None else v for v in values] if nulls else values)
        if joined.count("\x01") == nulls and joined.count("\x00") == len(values) - 1:
            if "\\" in joined:
                joined = joined.replace("\\", "\\\\")
            if "\t" in joined or "\n" in joined or "\r" in joined:
                joined = joined.replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
            if nulls:
                joined = joined.replace("\x01", "\\N")
            return joined.split("\x00")
    elif kinds <= _DATES:
        return _by_value(values, lambda v: "\\N" if v is None else str(v))
    elif kinds <= _PLAIN_TYPES and bool not in kinds:
        if type(None) in kinds:
            return ["\\N" if v is None else str(v) for v in values]
        return list(map(str, values))
    return list(map(_copy_text, values))


def _utc_copy_column(values: list[Any]) -> list[str] | None:
    """A ``UTCDateTime`` column as COPY text without the bind processor's two calls per value.

    The processor makes a naive value UTC and converts an aware one to UTC; ``timestamptz``
    input with an explicit offset is the same instant, so a naive value gets ``+00`` and an
    aware one keeps its own offset. None when a value is not a plain datetime (the processor
    then runs, and raises for a wrong type as before).
    """
    if not set(map(type, values)) <= {dt.datetime, type(None)}:
        return None
    return _by_value(values, lambda v: "\\N" if v is None else str(v) if v.tzinfo is not None else f"{v}+00")


def _by_value(values: list[Any], text: Callable[[Any], str]) -> list[str]:
    """``text`` once per distinct value: a day's feed repeats its dates and times (hashing a date
    or datetime is C, formatting it is not)."""
    memo: dict[Any, str | None] = dict.fromkeys(values)
    for value in memo:
        memo[value] = text(value)
    return list(map(memo.__getitem__, values))  # type: ignore[arg-type]


def _copy_data(rows: Sequence[dict[str, Any]], columns: list[str], fills: list[Any], processors: list[Any],
               utc: frozenset[str] = frozenset(), ordinal: bool = True) -> str:
    """The rows, plus an ordinal column (unless ``ordinal`` is false), as one COPY text payload.

    Column by column: one C-level pass picks a column out of every row, and a value every row
    shares (a Python-side default such as ``created_at``) is converted once. ``utc`` names the
    ``UTCDateTime`` columns (``_utc_copy_column``).
    """
    n = len(rows)
    out: list[list[str]] = []
    for name, fill, proc in zip(columns, fills, processors, strict=True):
        if fill is not _GIVEN:
            value = fill if proc is None or fill is None else proc(fill)
            out.append(_copy_column([value]) * n)
            continue
        values = list(map(itemgetter(name), rows))
        text = _utc_copy_column(values) if name in utc else None
        if text is None:
            if proc is not None:
                values = [None if v is None else proc(v) for v in values]
            text = _copy_column(values)
        out.append(text)
    if ordinal:
        out.append(list(map(str, range(n))))
    return "\n".join(map("\t".join, zip(*out, strict=True))) + "\n"


def _copy_in(cur: Any, driver: str, sql: str, data: str) -> None:
    if driver == "psycopg2":
        cur.copy_expert(sql, io.StringIO(data), size=1 << 20)
    else:
        with cur.copy(sql) as copy:
            copy.write(data)


def _is_unique_violation(exc: Exception) -> bool:
    return "23505" in (getattr(exc, "pgcode", None), getattr(exc, "sqlstate", None))


def _pg_insert_ignore(conn: Connection, tbl: Table, rows: Sequence[dict[str, Any]], key_columns: Sequence[str]) -> int | None:
    """COPY straight into the table under a savepoint; when a key already exists (a re-send, a
    re-run), back to the savepoint and through a staging table with ``ON CONFLICT DO NOTHING``.

    The direct COPY inserts exactly what the staging path would when no key exists (the rows are
    already unique by key, in input order), for ~30% less server CPU than staging + INSERT SELECT.
    """
    plan = _plan(conn, tbl, rows[0].keys())
    if plan is None:
        return None
    columns, fills, processors = plan
    raw = conn.connection.driver_connection
    driver = conn.dialect.driver
    if raw is None or driver not in ("psycopg2", "psycopg"):
        return None
    prep = conn.dialect.identifier_preparer
    target = prep.format_table(tbl)
    cols = ", ".join(prep.quote(tbl.columns[c].name) for c in columns)
    utc = frozenset(c for c in columns if isinstance(tbl.columns[c].type, UTCDateTime))
    try:
        data = _copy_data(rows, columns, fills, processors, utc, ordinal=False)
    except _NotCopyable:
        return None
    with raw.cursor() as cur:
        cur.execute("SAVEPOINT _cf_copy")
        try:
            _copy_in(cur, driver, f"COPY {target} ({cols}) FROM STDIN", data)
        except Exception as exc:
            if not _is_unique_violation(exc):
                raise
            cur.execute("ROLLBACK TO SAVEPOINT _cf_copy")
        else:
            cur.execute("RELEASE SAVEPOINT _cf_copy")
            return len(rows)
        cur.execute("RELEASE SAVEPOINT _cf_copy")
        stage = f"_cf_stage_{next(_stage_ids)}"
        keys = ", ".join(prep.quote(tbl.columns[c].name) for c in key_columns)
        cur.execute(f"CREATE TEMP TABLE {stage} ON COMMIT DROP AS SELECT {cols}, 0::bigint AS _cf_ord FROM {target} WITH NO DATA")
        _copy_in(cur, driver, f"COPY {stage} ({cols}, _cf_ord) FROM STDIN", _copy_data(rows, columns, fills, processors, utc))
        cur.execute(f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {stage} ORDER BY _cf_ord ON CONFLICT ({keys}) DO NOTHING")
        inserted = cur.rowcount
        cur.execute(f"DROP TABLE {stage}")
    return int(inserted)


def _sqlite_insert_ignore(conn: Connection, tbl: Table, rows: Sequence[dict[str, Any]], key_columns: Sequence[str]) -> int | None:
    plan = _plan(conn, tbl, rows[0].keys())
    if plan is None:
        return None
    columns, fills, processors = plan
    prep = conn.dialect.identifier_preparer
    cols = ", ".join(prep.quote(tbl.columns[c].name) for c in columns)
    keys = ", ".join(prep.quote(tbl.columns[c].name) for c in key_columns)
    marks = ", ".join("?" for _ in columns)
    sql = f"INSERT INTO {prep.format_table(tbl)} ({cols}) VALUES ({marks}) ON CONFLICT ({keys}) DO NOTHING"
    raw = conn.connection.driver_connection
    if raw is None:
        return None
    cur = raw.cursor()
    try:
        cur.executemany(sql, _values(rows, columns, fills, processors))
        return cur.rowcount
    finally:
        cur.close()


def _fast_insert_ignore(bind: Session | Connection, tbl: Table, rows: Sequence[dict[str, Any]], key_columns: Sequence[str]) -> int | None:
    """Rows inserted by the dialect's fast path, or None when it does not apply."""
    conn = _connection(bind)
    name = conn.dialect.name
    fast = {"postgresql": _pg_insert_ignore, "sqlite": _sqlite_insert_ignore}.get(name)
    if fast is None:
        return None
    dbapi = conn.dialect.loaded_dbapi
    try:
        return fast(conn, tbl, rows, key_columns)
    except dbapi.Error as exc:  # the same exception classes as the Core path (IntegrityError ...)
        raise sa_exc.DBAPIError.instance(f"insert_ignore into {tbl.name}", None, exc, dbapi.Error) from exc


# --------------------------------------------------------------------------- API


def insert_ignore(
    bind: Session | Connection,
    table: Any,
    rows: Iterable[dict[str, Any]],
    key_columns: Sequence[str],
    *,
    batch_size: int = BATCH_SIZE,
) -> int:
    """Insert ``rows`` whose ``key_columns`` do not exist yet; return how many were new.

    ``key_columns`` must be a unique constraint (or the primary key) of ``table``. Duplicates
    inside ``rows`` count once. Runs in the caller's transaction.
    """
    tbl = table_of(table)
    pk = list(tbl.primary_key.columns)
    total = 0
    for group in _prepare(rows, key_columns):
        stmt = _insert_for(bind, tbl).on_conflict_do_nothing(index_elements=list(key_columns)).returning(*pk)
        for chunk in _chunks(group, batch_size):
            fast = _fast_insert_ignore(bind, tbl, chunk, key_columns)
            total += _execute(bind, stmt, chunk) if fast is None else fast
    return total


def upsert(
    bind: Session | Connection,
    table: Any,
    rows: Iterable[dict[str, Any]],
    key_columns: Sequence[str],
    update_columns: Sequence[str] | None = None,
    *,
    batch_size: int = BATCH_SIZE,
) -> int:
    """Insert ``rows``, or update ``update_columns`` of the row with the same key; return rows written.

    ``update_columns`` defaults to every column the row names except the key. Columns with an
    ``onupdate`` (``updated_at``, ``synced_at``) are refreshed too.
    """
    tbl = table_of(table)
    pk = list(tbl.primary_key.columns)
    keys = set(key_columns)
    total = 0
    for group in _prepare(rows, key_columns):
        named = group[0].keys()
        columns = [c for c in (update_columns if update_columns is not None else named) if c not in keys]
        ins = _insert_for(bind, tbl)
        set_ = {c: ins.excluded[c] for c in columns if c in named}
        for col in tbl.columns:
            if isinstance(col.onupdate, ColumnDefault) and col.name not in set_ and col.name not in keys:
                # a Python callable runs once for the batch; a scalar or SQL expression goes as is
                onupdate = col.onupdate
                if isinstance(onupdate, CallableColumnDefault):
                    set_[col.name] = onupdate.arg(None)  # type: ignore[arg-type]  # no context here, as in _plan
                else:
                    set_[col.name] = onupdate.arg
        if set_:
            stmt = ins.on_conflict_do_update(index_elements=list(key_columns), set_=set_)
        else:
            stmt = ins.on_conflict_do_nothing(index_elements=list(key_columns))
        for chunk in _chunks(group, batch_size):
            total += _execute(bind, stmt.returning(*pk), chunk)
    return total

