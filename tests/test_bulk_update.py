"""``store.bulk_update.update_by_key``: per-row and shared values by natural key, set-based on PostgreSQL.

Routing a day's ~300,000 charge lines marks each one routed with billing's id for it; the
helper does that in a statement per batch on PostgreSQL (``UPDATE ... FROM (VALUES ...)``) and
with the driver's ``executemany`` on SQLite. Both must write exactly the rows named, each its own
value, across batch boundaries, and leave every other row alone.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from carefabric.store.bulk_update import update_by_key


@pytest.fixture
def engine(store_url: str) -> Iterator[sa.Engine]:
    if store_url.startswith("sqlite"):
        eng = sa.create_engine(store_url)
        yield eng
        eng.dispose()
        return
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(store_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    eng = sa.create_engine(f"{store_url}?options=-csearch_path%3D{schema}")
    try:
        yield eng
    finally:
        eng.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def test_update_by_key_writes_each_named_row_its_own_value_and_nothing_else(engine: sa.Engine) -> None:
    meta = sa.MetaData()
    lines = sa.Table("lines", meta, sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("line_key", sa.String(64), unique=True), sa.Column("status", sa.String(16)),
                     sa.Column("billing_id", sa.String(32)), sa.Column("amount", sa.Integer))
    meta.create_all(engine)
    keys = [f"EHR|MSG{n}|1" for n in range(5)]
    with engine.begin() as conn:
        conn.execute(lines.insert(), [{"line_key": k, "status": "mapped", "billing_id": None, "amount": n}
                                      for n, k in enumerate(keys)])
        update_by_key(conn, lines, "line_key",
                      [{"line_key": keys[0], "billing_id": "B-0"}, {"line_key": keys[2], "billing_id": "B-2"},
                       {"line_key": keys[3], "billing_id": "B-3"}, {"line_key": "EHR|UNKNOWN|1", "billing_id": "B-9"}],
                      ["billing_id"], {"status": "routed"}, batch_size=2)
        got = {r.line_key: (r.status, r.billing_id, r.amount) for r in conn.execute(sa.select(lines))}
    assert got == {
        keys[0]: ("routed", "B-0", 0),
        keys[1]: ("mapped", None, 1),
        keys[2]: ("routed", "B-2", 2),
        keys[3]: ("routed", "B-3", 3),
        keys[4]: ("mapped", None, 4),
    }
