"""Engines, sessions and migrations for the store.

``get_engine()`` points at ``config.db_url()`` (SQLite under ``data/`` by default, PostgreSQL
in a real installation). SQLite connections get WAL, foreign keys and a busy timeout, so the
scheduler's parallel tasks and the CLI can share one file. ``upgrade()`` runs the Alembic
migrations that live inside this package; no ``alembic.ini`` is needed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session

from carefabric import config

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _private_file(path: Path) -> None:
    """Create the SQLite store owner-only (0600) before SQLite does: it holds raw messages (PHI),
    and SQLite gives its journal and WAL files the database file's mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))


def get_engine(url: str | None = None, **kwargs: Any) -> Engine:
    """An engine for the store at ``url`` (default ``config.db_url()``). Callers dispose it."""
    url = url or config.db_url()
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            _private_file(Path(database))
        kwargs.setdefault("connect_args", {}).setdefault("timeout", SQLITE_BUSY_TIMEOUT_MS / 1000)
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


@contextmanager
def session_scope(engine: Engine | None = None) -> Iterator[Session]:
    """A session that commits when the block ends and rolls back if it raises.

    Objects stay readable after the commit (``expire_on_commit=False``). Without ``engine`` a
    new engine for ``config.db_url()`` is made and disposed at the end.
    """
    own = engine is None
    engine = engine or get_engine()
    session = Session(engine, expire_on_commit=False)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
        if own:
            engine.dispose()


def alembic_config(url: str | None = None) -> Any:
    """An Alembic ``Config`` for the packaged migrations, built in code (no ini file)."""
    from alembic.config import Config

    url = url or config.db_url()
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["url"] = url
    return cfg


def _run(url: str | None, fn: Any, *args: Any) -> None:
    cfg = alembic_config(url)
    engine = get_engine(cfg.attributes["url"])
    try:
        with engine.begin() as connection:
            cfg.attributes["connection"] = connection
            fn(cfg, *args)
    finally:
        engine.dispose()


def upgrade(url: str | None = None, revision: str = "head") -> None:
    """Migrate the store at ``url`` (default ``config.db_url()``) up to ``revision``."""
    from alembic import command

    _run(url, command.upgrade, revision)


def downgrade(url: str | None = None, revision: str = "base") -> None:
    """Migrate the store down to ``revision`` (``base`` drops every table)."""
    from alembic import command

    _run(url, command.downgrade, revision)


def current_revision(url: str | None = None) -> str | None:
    """The revision the store is at, ``None`` for an empty database."""
    from alembic.runtime.migration import MigrationContext

    engine = get_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def head_revision() -> str | None:
    """The newest revision shipped with the package."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
