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
import re
from functools import lru_cache

#: Used only in sandbox mode (``CAREFABRIC_SANDBOX=1``: ``make``, the tests, the demo). Anywhere
#: else an unset ``CAREFABRIC_TOKEN_KEY`` is an error: a public key would make every token a
#: dictionary lookup away from the MRN behind it.
SANDBOX_KEY = "carefabric-sandbox-token-key"


class TokenKeyMissing(RuntimeError):
    """``CAREFABRIC_TOKEN_KEY`` is unset outside the sandbox."""


def sandbox_mode() -> bool:
    """Sandbox mode is asked for explicitly (``CAREFABRIC_SANDBOX=1``), never assumed."""
    return os.environ.get("CAREFABRIC_SANDBOX", "").strip().lower() in ("1", "true", "yes")


def token_key() -> str:
    """The HMAC key for tokens: ``CAREFABRIC_TOKEN_KEY``, the sandbox key in sandbox mode, else an error."""
    key = os.environ.get("CAREFABRIC_TOKEN_KEY", "")
    if key:
        return key
    if sandbox_mode():
        return SANDBOX_KEY
    raise TokenKeyMissing("CAREFABRIC_TOKEN_KEY is not set (set it, or CAREFABRIC_SANDBOX=1 for the sandbox)")


@lru_cache(maxsize=4)
def _keyed(key: str) -> hmac.HMAC:
    """An HMAC primed with the key; ``copy()`` per token skips re-keying on the hot path."""
    return hmac.new(key.encode(), digestmod=hashlib.sha256)


@lru_cache(maxsize=8)
def _mac_for(key_env: str, sandbox_env: str) -> hmac.HMAC:
    """The primed HMAC for one state of the two environment variables (the hot path reads them
    raw and resolves the rules once per state; a missing key still raises on every call, since
    ``lru_cache`` does not cache exceptions)."""
    del key_env, sandbox_env  # the cache key; ``token_key`` reads the same variables
    return _keyed(token_key())


def token(value: str | None, *, kind: str = "id") -> str | None:
    """A stable, keyed token for a PHI value (``tok_`` + 16 hex characters)."""
    if value is None or value == "":
        return None
    environ = os.environ
    mac = _mac_for(environ.get("CAREFABRIC_TOKEN_KEY", ""), environ.get("CAREFABRIC_SANDBOX", "")).copy()
    mac.update(f"{kind}:{value}".encode())
    return f"tok_{mac.hexdigest()[:16]}"


def mask(value: str | None, *, keep: int = 0) -> str | None:
    """Mask a PHI value for display, optionally keeping the last ``keep`` characters."""
    if value is None or value == "":
        return value
    if keep <= 0 or keep >= len(value):
        return "***"
    return "***" + value[-keep:]


# A code: letters, digits and a few separators, no spaces, at most 40 characters (CDM codes,
# departments, facilities, control ids). SSN- and phone-shaped values are never codes.
_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/#-]{0,39}")
_PHI_SHAPED = re.compile(r"\d{3}-\d{2}-\d{4}|\(?\d{3}\)?[ .-]?\d{3}[.-]\d{4}")


def code(value: str | None, field: str = "field") -> str | None:
    """``value`` when it has the shape of a code, else a placeholder that names the field.

    Exception summaries name the code an operator must fix (``CDM code CDM1001 has no crosswalk
    entry``). A sender that shifts fields can put a patient's name or SSN where a code belongs;
    such a value is never echoed, the summary says ``<FT1-7 not a code>`` instead.
    """
    if value is None or value == "":
        return value
    if _CODE.fullmatch(value) and not _PHI_SHAPED.search(value):
        return value
    return f"<{field} not a code>"
