"""One router per console page: health, exceptions, trace, crosswalks, audit, reconciliation.

Each serves its JSON API under ``/api`` and its HTML page; every route depends on ``Reader`` or
``Operator`` (``carefabric.console.security``), so nothing answers without a login.
"""

from __future__ import annotations

from carefabric.console.routers import audit, crosswalks, exceptions, health, reconciliation, trace

ROUTERS = (health.router, exceptions.router, trace.router, crosswalks.router, audit.router, reconciliation.router)

__all__ = ["ROUTERS"]
