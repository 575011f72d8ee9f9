"""SMART Backend Services authorization: a signed JWT client assertion exchanged for a token.

The EHR registers the integration's public key (a JWKS) once; every night the integration signs
a short-lived JWT with the private key (RS384, as the SMART specification requires servers to
support) and trades it at the token endpoint for an access token of a few minutes. No shared
secret ever travels; the private key stays in an Airflow connection.

Spec: https://hl7.org/fhir/smart-app-launch/backend-services.html
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from carefabric import peer_calls
from carefabric.clients.rest import TransientError

#: The token endpoint's route in the peer call metrics (its URL is the server's to choose).
TOKEN_ROUTE = "{token_endpoint}"

ALGORITHM = "RS384"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: SMART caps the assertion's lifetime at five minutes; we ask for less so clock skew never bites.
ASSERTION_SECONDS = 240


class BulkAuthError(RuntimeError):
    """The EHR refused our credentials (a business problem: a key or registration to fix, not retry)."""


def _b64(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def public_jwk(public_key: RSAPublicKey) -> dict[str, str]:
    """The JWK the EHR registers for us: kty/n/e, ``kid`` = its RFC 7638 thumbprint, alg RS384."""
    numbers = public_key.public_numbers()
    core = {"e": _b64(numbers.e), "kty": "RSA", "n": _b64(numbers.n)}
    digest = hashlib.sha256(json.dumps(core, separators=(",", ":"), sort_keys=True).encode()).digest()
    kid = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    return {**core, "kid": kid, "alg": ALGORITHM, "use": "sig"}


def load_private_key(pem: str) -> RSAPrivateKey:
    """The RSA private key in a PEM text (the Airflow connection's password)."""
    try:
        key = serialization.load_pem_private_key(pem.strip().encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise BulkAuthError(f"the private key is not a readable unencrypted PEM ({type(exc).__name__})") from None
    if not isinstance(key, RSAPrivateKey):
        raise BulkAuthError("the private key is not an RSA key (RS384 needs RSA)")
    return key


def client_assertion(client_id: str, token_url: str, private_key: RSAPrivateKey, *, now: float | None = None) -> str:
    """The signed JWT: iss = sub = client id, aud = the token endpoint, a fresh jti, exp <= 5 min."""
    issued = int(now if now is not None else time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": token_url, "exp": issued + ASSERTION_SECONDS,
              "iat": issued, "jti": uuid.uuid4().hex}
    headers = {"kid": public_jwk(private_key.public_key())["kid"], "typ": "JWT"}
    return jwt.encode(claims, private_key, algorithm=ALGORITHM, headers=headers)


@dataclass(frozen=True)
class AccessToken:
    value: str
    expires_at: float
    scope: str

    def fresh(self, margin: float = 30.0) -> bool:
        return time.time() < self.expires_at - margin


def fetch_token(session: requests.Session, token_url: str, client_id: str, private_key: RSAPrivateKey,
                scope: str, *, timeout: float = 30.0, peer: str = "ehr_fhir") -> AccessToken:
    """Exchange a new client assertion for an access token.

    A 4xx (``invalid_client``, ``invalid_scope``) is our configuration: ``BulkAuthError`` with the
    server's own description; a 5xx or a dropped connection is transient and retried by the task.
    """
    form = {"grant_type": "client_credentials", "scope": scope, "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": client_assertion(client_id, token_url, private_key)}
    started = time.perf_counter()
    try:
        response = session.post(token_url, data=form, headers={"Accept": "application/json"}, timeout=timeout)
    except requests.RequestException as exc:
        peer_calls.observe(peer, "POST", TOKEN_ROUTE, 0, time.perf_counter() - started)
        raise TransientError(f"token endpoint unreachable: {type(exc).__name__}") from None
    peer_calls.observe(peer, "POST", TOKEN_ROUTE, response.status_code, time.perf_counter() - started)
    if response.status_code >= 500:
        raise TransientError(f"token endpoint answered {response.status_code}")
    body = _json(response)
    if response.status_code != 200 or "access_token" not in body:
        reason = body.get("error_description") or body.get("error") or response.text[:200]
        raise BulkAuthError(f"the EHR refused the access token request ({response.status_code}): {reason}")
    return AccessToken(str(body["access_token"]), time.time() + float(body.get("expires_in", 300)),
                       str(body.get("scope", scope)))


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
