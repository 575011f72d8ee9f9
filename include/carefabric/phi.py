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

_DEFAULT_KEY = "carefabric-sandbox-token-key"  # the sandbox key; production sets CAREFABRIC_TOKEN_KEY


def _key() -> bytes:
    return os.environ.get("CAREFABRIC_TOKEN_KEY", _DEFAULT_KEY).encode()


def token(value: str | None, *, kind: str = "id") -> str | None:
    """A stable, keyed token for a PHI value (``tok_`` + 16 hex characters)."""
    if value is None or value == "":
        return None
    digest = hmac.new(_key(), f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()
    return f"tok_{digest[:16]}"


def mask(value: str | None, *, keep: int = 0) -> str | None:
    """Mask a PHI value for display, optionally keeping the last ``keep`` characters."""
    if value is None or value == "":
        return value
    if keep <= 0 or keep >= len(value):
        return "***"
    return "***" + value[-keep:]
