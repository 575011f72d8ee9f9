"""Set-based writes: INSERT ... ON CONFLICT on SQLite and PostgreSQL, in batches.

A flow that lands 50,000 charge lines does it in a handful of statements, and a re-run of the
same file inserts nothing: ``insert_ignore`` skips rows whose natural key already exists and
says how many were new. Rows go through Core (``executemany`` with SQLAlchemy's
insertmanyvalues batching), never one query per record.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

BATCH_SIZE = 5000


def _table(table: Any) -> Table:
    """Accept a Core ``Table`` or an ORM model class."""
    return table if isinstance(table, Table) else table.__table__


def _insert_for(bind: Session | Connection, table: Table) -> Any:
    dialect = bind.get_bind().dialect.name if isinstance(bind, Session) else bind.dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"insert_ignore/upsert support SQLite and PostgreSQL, not {dialect}")


def _chunks(rows: Sequence[dict[str, Any]], size: int) -> Iterator[Sequence[dict[str, Any]]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def _prepare(rows: Iterable[dict[str, Any]], key_columns: Sequence[str]) -> list[list[dict[str, Any]]]:
    """De-duplicate by key (last row wins) and group rows that name the same columns.

    ``executemany`` needs one column list per statement; grouping keeps a row that omits a
    column from overwriting its default with NULL.
    """
    by_key: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        missing = [c for c in key_columns if c not in row]
        if missing:
            raise KeyError(f"row lacks key column(s) {missing}")
        by_key[tuple(row[c] for c in key_columns)] = row
    groups: dict[frozenset[str], list[dict[str, Any]]] = {}
    for row in by_key.values():
        groups.setdefault(frozenset(row), []).append(row)
    return list(groups.values())


def _execute(bind: Session | Connection, stmt: Any, rows: Sequence[dict[str, Any]]) -> int:
    result = bind.execute(stmt, list(rows))
    return len(result.all())


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
    tbl = _table(table)
    pk = list(tbl.primary_key.columns)
    total = 0
    for group in _prepare(rows, key_columns):
        stmt = _insert_for(bind, tbl).on_conflict_do_nothing(index_elements=list(key_columns)).returning(*pk)
        for chunk in _chunks(group, batch_size):
            total += _execute(bind, stmt, chunk)
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
    tbl = _table(table)
    pk = list(tbl.primary_key.columns)
    keys = set(key_columns)
    total = 0
    for group in _prepare(rows, key_columns):
        named = group[0].keys()
        columns = [c for c in (update_columns if update_columns is not None else named) if c not in keys]
        ins = _insert_for(bind, tbl)
        set_ = {c: ins.excluded[c] for c in columns if c in named}
        for col in tbl.columns:
            if col.onupdate is not None and col.name not in set_ and col.name not in keys:
                set_[col.name] = col.onupdate.arg(None) if callable(col.onupdate.arg) else col.onupdate.arg
        if set_:
            stmt = ins.on_conflict_do_update(index_elements=list(key_columns), set_=set_)
        else:
            stmt = ins.on_conflict_do_nothing(index_elements=list(key_columns))
        for chunk in _chunks(group, batch_size):
            total += _execute(bind, stmt.returning(*pk), chunk)
    return total
