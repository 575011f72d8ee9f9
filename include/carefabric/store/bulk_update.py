"""Set-based UPDATEs by natural key: a value per row, on PostgreSQL in a statement per batch.

Beside ``store.bulk`` (set-based INSERTs). An ``executemany`` UPDATE is one round trip per row
on PostgreSQL (psycopg2 batches INSERTs only): routing a day's 285,000 charge lines to billing
marked them one statement each, minutes of waiting for the server on a loaded machine.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, column, update, values
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from carefabric.store.bulk import BATCH_SIZE, table_of


def update_by_key(bind: Session | Connection, table: Any, key_column: str, rows: Sequence[dict[str, Any]],
                  per_row: Sequence[str], same: dict[str, Any], batch_size: int = BATCH_SIZE) -> None:
    """``UPDATE table SET <per_row from each row>, <same> WHERE key_column = row[key_column]`` for every row.

    PostgreSQL: one ``UPDATE ... FROM (VALUES ...)`` per ``batch_size`` rows; SQLite (in-process,
    no round trip to save): the driver's ``executemany``.
    """
    tbl = table_of(table)
    conn = bind.connection() if isinstance(bind, Session) else bind
    if conn.dialect.name != "postgresql":
        stmt = update(tbl).where(tbl.c[key_column] == bindparam("_k")).values(
            **{c: bindparam(f"_{c}") for c in per_row}, **same)
        if rows:
            conn.execute(stmt, [{"_k": r[key_column], **{f"_{c}": r[c] for c in per_row}} for r in rows])
        return
    names = [key_column, *per_row]
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        data = values(*(column(n, tbl.c[n].type) for n in names), name="by_key").data([tuple(r[n] for n in names) for r in chunk])
        conn.execute(update(tbl).where(tbl.c[key_column] == data.c[key_column])
                     .values(**{c: data.c[c] for c in per_row}, **same))
