"""The sandbox EHR's SMART Backend Services authorization server.

Plays the EHR's side of https://hl7.org/fhir/smart-app-launch/backend-services.html: the
integration's public key is registered once (here: the sandbox generates the client key pair on
first start, ``ehr_fhir/client_key.pem``, as a hospital would generate it and upload the public
JWKS to Epic or Oracle Health); a token request carries a JWT signed with the private key, which
is checked strictly: RS384, a registered ``kid``, ``iss`` = ``sub`` = the client id, ``aud`` =
this token endpoint, ``exp`` in the future and at most five minutes ahead, a ``jti`` never seen.
Errors are OAuth 2 errors (``invalid_client``, ``invalid_scope``...), as the specification says.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sandbox import EHR_CLIENT_ID

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_ASSERTION_SECONDS = 300
CLOCK_SKEW = 30
ALLOWED_SCOPES = {"system/*.read", "system/*.rs"} | {
    f"system/{t}.{a}" for t in ("Encounter", "ChargeItem", "Coverage", "Claim", "Account", "ExplanationOfBenefit")
    for a in ("read", "rs")
}


class OAuthError(Exception):
    """An OAuth 2 error answer of the token endpoint (400 unless said otherwise)."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error, self.description, self.status = error, description, status


def _thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638: SHA-256 of the required members in lexical order, base64url."""
    core = {k: jwk[k] for k in ("e", "kty", "n")}
    digest = hashlib.sha256(json.dumps(core, separators=(",", ":"), sort_keys=True).encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def ensure_client_key(folder: Path) -> Path:
    """The integration's private key (PEM, mode 0600), generated on first use; returns its path."""
    path = folder / "client_key.pem"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        tmp = path.with_name(".client_key.pem.part")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
        os.replace(tmp, path)
    return path


def registered_jwks(private_key_path: Path) -> dict[str, Any]:
    """The JWKS the EHR holds for the client: the public half of the client key, kid = thumbprint."""
    key = serialization.load_pem_private_key(private_key_path.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"{private_key_path.name}: the SMART client key must be RSA (RS384)")
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return {"keys": [{**jwk, "kid": _thumbprint(jwk), "alg": "RS384", "use": "sig"}]}


@dataclass
class Authorizer:
    """Registered clients, issued tokens and replayed ``jti``s of one sandbox EHR."""

    jwks: dict[str, Any]
    client_id: str = EHR_CLIENT_ID
    token_seconds: int = 300
    tokens: dict[str, float] = field(default_factory=dict)
    issued: int = 0
    refused: list[str] = field(default_factory=list)
    _jti: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def issue(self, form: dict[str, str], token_url: str) -> dict[str, Any]:
        """Check a client-credentials request; a token answer or ``OAuthError``."""
        try:
            return self._issue(form, token_url)
        except OAuthError as exc:
            self.refused.append(f"{exc.error}: {exc.description}")
            raise

    def _issue(self, form: dict[str, str], token_url: str) -> dict[str, Any]:
        if form.get("grant_type") != "client_credentials":
            raise OAuthError("unsupported_grant_type", "grant_type must be client_credentials")
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise OAuthError("invalid_request", f"client_assertion_type must be {ASSERTION_TYPE}")
        claims = self._verify(form.get("client_assertion") or "", token_url)
        scopes = (form.get("scope") or "").split()
        if not scopes or any(s not in ALLOWED_SCOPES for s in scopes):
            raise OAuthError("invalid_scope", f"scope {form.get('scope')!r} is not granted to this client")
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._jti[claims["jti"]] = float(claims["exp"])
            self.tokens[token] = time.time() + self.token_seconds
            self.issued += 1
        return {"access_token": token, "token_type": "bearer", "expires_in": self.token_seconds,
                "scope": " ".join(scopes)}

    def _verify(self, assertion: str, token_url: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError as exc:
            raise OAuthError("invalid_client", f"client_assertion is not a JWT ({exc})") from None
        if header.get("alg") != "RS384":
            raise OAuthError("invalid_client", f"alg {header.get('alg')!r} not accepted (RS384)")
        key = next((k for k in self.jwks["keys"] if k.get("kid") == header.get("kid")), None)
        if key is None:
            raise OAuthError("invalid_client", f"kid {header.get('kid')!r} is not registered for any client")
        try:
            claims = jwt.decode(assertion, jwt.PyJWK(key).key, algorithms=["RS384"], audience=token_url,
                                leeway=CLOCK_SKEW, options={"require": ["iss", "sub", "aud", "exp", "jti"]})
        except jwt.PyJWTError as exc:
            raise OAuthError("invalid_client", f"client_assertion rejected: {exc}") from None
        if claims["iss"] != self.client_id or claims["sub"] != self.client_id:
            raise OAuthError("invalid_client", "iss and sub must both be the registered client id")
        if float(claims["exp"]) > time.time() + MAX_ASSERTION_SECONDS + CLOCK_SKEW:
            raise OAuthError("invalid_client", "exp is more than five minutes ahead")
        with self._lock:
            now = time.time()
            self._jti = {j: e for j, e in self._jti.items() if e + CLOCK_SKEW > now}
            if claims["jti"] in self._jti:
                raise OAuthError("invalid_client", "jti already used (a replayed assertion)")
        return claims

    def check(self, token: str) -> str | None:
        """None when the bearer token is valid, else why not."""
        with self._lock:
            expires = self.tokens.get(token)
        if expires is None:
            return "unknown access token"
        if expires < time.time():
            return "access token expired"
        return None

    def expire_all(self) -> int:
        """Fault: every token issued so far expires now (the client must fetch a new one)."""
        with self._lock:
            for token in self.tokens:
                self.tokens[token] = 0.0
            return len(self.tokens)
