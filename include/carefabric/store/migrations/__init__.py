"""Alembic migrations of the store (run through ``carefabric.store.db``; env.py is not for import)."""
