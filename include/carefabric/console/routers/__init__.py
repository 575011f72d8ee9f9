"""One router per console page: health, exceptions, trace, crosswalks, audit, reconciliation, data docs.

Each serves its JSON API under ``/api`` and its HTML page; every route depends on ``Reader`` or
``Operator`` (``carefabric.console.security``), so nothing answers without a login.
"""

from __future__ import annotations

from carefabric.console.routers import audit, crosswalks, data_docs, exceptions, health, reconciliation, trace

ROUTERS = (health.router, exceptions.router, trace.router, crosswalks.router, audit.router, reconciliation.router,
           data_docs.router)

__all__ = ["ROUTERS"]
