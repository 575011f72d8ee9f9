"""Shared helpers for the interface tests: a real store at head, a small generated day, its
crosswalks and ERP master data, REST clients for the sandbox peers, and store queries.

Not a conftest: test modules import what they need (``import scenario``). The fixtures most
interface modules share (the day, the peers, the seeded store) are in ``conftest.py``, built
from these helpers; a module that needs another day or store overrides the fixture's name.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
import sqlalchemy as sa
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from carefabric.clients.billing import BillingClient
from carefabric.clients.erp import ErpClient
from carefabric.clients.rest import RestClient
from carefabric.interfaces.erp_master_data import TABLES, _rows
from carefabric.store import db
from carefabric.store.bulk import upsert
from carefabric.store.crosswalks import import_csv_dir
from carefabric.store.db import session_scope
from carefabric.store.models import ExceptionRecord
from sandbox import BILLING_TOKEN, ERP_TOKEN
from sandbox.generator import generate

BUSINESS_DATE = dt.date(2024, 3, 5)
SEED = 7
# erp_master.json section -> the ERP list name ``erp_master_data`` replicates it from
MASTER_SECTIONS = {
    "companies": "companies", "cost_centers": "cost-centers", "gl_accounts": "gl-accounts", "items": "items",
    "locations": "locations", "payers": "payers", "periods": "periods",
}


# --------------------------------------------------------------------------- store


@contextmanager
def migrated_store(store_url: str) -> Iterator[Engine]:
    """An empty store of its own migrated to head: the test's SQLite file, or a fresh PostgreSQL
    schema inside the session's scratch database (dropped afterwards)."""
    schema = None
    url = store_url
    if not store_url.startswith("sqlite"):
        schema = f"t_{uuid.uuid4().hex[:12]}"
        admin = sa.create_engine(store_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        admin.dispose()
        url = f"{store_url}?options=-csearch_path%3D{schema}"
    db.upgrade(url)
    engine = db.get_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()
        if schema is not None:
            admin = sa.create_engine(store_url, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()


# --------------------------------------------------------------------------- scenario


def generate_day(out: Path, *, encounters: int = 12, facilities: int = 3, seed: int = SEED,
                 day: dt.date = BUSINESS_DATE) -> dict[str, Any]:
    """Generate one business day into ``out``; return its ground truth."""
    generate(out, seed=seed, encounters=encounters, days=1, facilities=facilities, start_date=day)
    return json.loads((out / "ground_truth.json").read_text())


def erp_master(scenario_dir: Path) -> dict[str, Any]:
    return json.loads((scenario_dir / "erp_master.json").read_text())


def import_crosswalks(engine: Engine, scenario_dir: Path) -> dict[str, dict[str, int]]:
    with session_scope(engine) as session:
        return import_csv_dir(session, scenario_dir / "crosswalks", actor="test")


def load_master_rows(engine: Engine, master: dict[str, Any]) -> dict[str, int]:
    """Store the ERP master rows the way ``erp_master_data.replicate`` does (same row shaping,
    same upsert), without an ERP in between."""
    counts: dict[str, int] = {}
    with session_scope(engine) as session:
        for section, kind in MASTER_SECTIONS.items():
            model, keys = TABLES[kind]
            columns = {c.name for c in model.__table__.columns}
            rows = [{k: v for k, v in r.items() if k in columns} for r in _rows(kind, master.get(section, []))]
            upsert(session, model, rows, keys)
            counts[kind] = len(rows)
    return counts


def seed_store(engine: Engine, scenario_dir: Path) -> None:
    """Crosswalks and ERP master of the scenario in the store: what a day starts from."""
    import_crosswalks(engine, scenario_dir)
    load_master_rows(engine, erp_master(scenario_dir))


# --------------------------------------------------------------------------- peers


def erp_client(url: str, **kwargs: Any) -> ErpClient:
    return ErpClient(RestClient.with_token(f"{url}/api/v1", ERP_TOKEN, **kwargs))


def billing_client(url: str, **kwargs: Any) -> BillingClient:
    return BillingClient(RestClient.with_token(f"{url}/api/v1", BILLING_TOKEN, idempotent_posts=True, **kwargs))


def admin(url: str, action: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """``POST /_sandbox/<action>`` on an HTTP peer (load, reset, faults)."""
    response = requests.post(f"{url}/_sandbox/{action}", json=body or {}, timeout=10)
    assert response.status_code in (200, 201), response.text
    return response.json()


def peer_state(url: str) -> dict[str, Any]:
    response = requests.get(f"{url}/_sandbox/state", timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def peer_list(url: str, token: str, path: str, params: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Every item of a paginated list, read with plain HTTP (the peer's own records)."""
    items: list[dict[str, Any]] = []
    query = dict(params or {}, limit="500")
    while True:
        response = requests.get(f"{url}/api/v1{path}", params=query, headers={"Authorization": f"Bearer {token}"},
                                timeout=10)
        assert response.status_code == 200, response.text
        body = response.json()
        items.extend(body["data"])
        if not body.get("next_cursor"):
            return items
        query["cursor"] = body["next_cursor"]


def erp_journals(url: str, day: dt.date = BUSINESS_DATE, source: str | None = None) -> list[dict[str, Any]]:
    params = {"journal_date": day.isoformat()} | ({"source": source} if source else {})
    return peer_list(url, ERP_TOKEN, "/journal-batches", params)


def billing_charges(url: str, day: dt.date = BUSINESS_DATE) -> list[dict[str, Any]]:
    return peer_list(url, BILLING_TOKEN, "/charges", {"service_date": day.isoformat()})


# --------------------------------------------------------------------------- store queries


def count(engine: Engine, model: Any, *where: Any) -> int:
    with session_scope(engine) as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def rows(engine: Engine, model: Any, *where: Any, order_by: Any = None) -> list[Any]:
    with session_scope(engine) as session:
        query = select(model).where(*where)
        if order_by is not None:
            query = query.order_by(order_by)
        return list(session.scalars(query))


def exceptions(engine: Engine, *where: Any) -> list[ExceptionRecord]:
    return rows(engine, ExceptionRecord, *where, order_by=ExceptionRecord.id)


# --------------------------------------------------------------------------- HL7 files


def hl7_messages(batch: bytes) -> list[bytes]:
    """The MSH..end messages of a generated FHS/BHS batch (envelope segments dropped)."""
    body = batch.split(b"\rBTS|")[0]
    return [b"MSH|" + part.rstrip(b"\r") + b"\r" for part in body.split(b"MSH|")[1:]]


def with_control_id(message: bytes, control_id: str) -> bytes:
    fields = message.split(b"|", 10)
    fields[9] = control_id.encode()
    return b"|".join(fields)


def write_big_hl7(path: Path, messages: list[bytes], target_bytes: int) -> int:
    """Stream copies of ``messages`` (control ids made unique) until the file reaches
    ``target_bytes``; returns the number of messages written. Never holds the file in memory."""
    written = size = 0
    with path.open("wb") as out:
        while size < target_bytes:
            for message in messages:
                data = with_control_id(message, f"BIG{written:010d}")
                out.write(data)
                size += len(data)
                written += 1
    return written


def ingest_day(engine: Engine, day_dir: Path, billing_url: str, *, day: dt.date = BUSINESS_DATE) -> int:
    """The day's HL7 extracts and 835s into the store, charges routed to billing; routed lines."""
    from carefabric.interfaces import ehr_ingest, payer_remittance

    for path in sorted((day_dir / "ehr").glob("*.hl7")):
        ehr_ingest.ingest_file(path, engine, business_date=day, validate=False)
    for path in sorted((day_dir / "sftp").glob("*/*.835")):
        payer_remittance.process_file(path, engine, payer_folder=path.parent.name, business_date=day)
    return int(ehr_ingest.route_charges(engine, billing_client(billing_url))["routed"])


def reset_peers(servers: Any, day_dir: Path, *, deduplicate: bool = True,
                extra_accounts: list[dict[str, Any]] | None = None) -> Any:
    """Both HTTP peers emptied, the ERP loaded with the day's master data (plus any accounts a
    test's chart needs) and its external-id de-duplication as asked."""
    for url in (servers.billing_url, servers.erp_url):
        admin(url, "reset")
    master = erp_master(day_dir)
    admin(servers.erp_url, "load", {**master, "gl_accounts": [*master["gl_accounts"], *(extra_accounts or [])]})
    if not deduplicate:
        assert admin(servers.erp_url, "settings", {"deduplicate": False})["settings"]["deduplicate"] is False
    return servers
