"""The integration store: files, messages, canonical records, exceptions, postings, crosswalks.

SQLAlchemy 2 models with Alembic migrations kept inside the package (``migrations/``), run
programmatically; works on SQLite and PostgreSQL. Every table a flow fills has a natural
idempotency key, so a re-run inserts nothing twice. No Airflow imports here.

- ``db``: ``get_engine``, ``session_scope``, ``upgrade``/``downgrade``/``current_revision``
- ``models``: the ORM classes and ``Base``
- ``bulk``: ``insert_ignore`` and ``upsert`` (INSERT ... ON CONFLICT, batched)
- ``exceptions_repo``: the exception queue (open idempotently, resolve, replay, discard, list)
- ``crosswalks``: CSV import, governed edits, and the in-memory ``Crosswalks`` snapshot
- ``audit``, ``watermarks``: manual-action log and incremental-sync positions
"""
