"""Protected health information: masking for display and tokens for joins.

Names, MRNs, birth dates, addresses, phone numbers and member ids never leave the message
store in clear. Where a downstream system needs a join key (billing balances per patient,
reconciliation by patient) it gets a keyed HMAC token, stable for one installation and useless
without its key.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from functools import lru_cache

_DEFAULT_KEY = "carefabric-sandbox-token-key"  # the sandbox key; production sets CAREFABRIC_TOKEN_KEY


@lru_cache(maxsize=4)
def _keyed(key: str) -> hmac.HMAC:
    """An HMAC primed with the key; ``copy()`` per token skips re-keying on the hot path."""
    return hmac.new(key.encode(), digestmod=hashlib.sha256)


def token(value: str | None, *, kind: str = "id") -> str | None:
    """A stable, keyed token for a PHI value (``tok_`` + 16 hex characters)."""
    if value is None or value == "":
        return None
    mac = _keyed(os.environ.get("CAREFABRIC_TOKEN_KEY", _DEFAULT_KEY)).copy()
    mac.update(f"{kind}:{value}".encode())
    return f"tok_{mac.hexdigest()[:16]}"


def mask(value: str | None, *, keep: int = 0) -> str | None:
    """Mask a PHI value for display, optionally keeping the last ``keep`` characters."""
    if value is None or value == "":
        return value
    if keep <= 0 or keep >= len(value):
        return "***"
    return "***" + value[-keep:]
