"""The operator console: interface health, the exception queue (discard, resolve, replay),
traces from a file to the ledger, and governed crosswalks, as HTML pages and a JSON API.

``create_app(engine_factory)`` builds the FastAPI app (no Airflow imports); the Airflow plugin
``plugins/carefabric_console.py`` mounts it at ``/carefabric``. ``queries`` and ``actions`` hold
the logic and are shared with the ``carefabric`` CLI, which imports them without FastAPI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["create_app"]


def create_app(engine_factory: Any, **kwargs: Any) -> FastAPI:
    """See ``carefabric.console.app.create_app`` (imported lazily: the CLI needs no FastAPI)."""
    from carefabric.console.app import create_app as _create_app

    return _create_app(engine_factory, **kwargs)
