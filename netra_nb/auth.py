"""Tokens for the platform: from the auth service's E2E endpoint, signed locally, or ready-made.

Keys, secrets and tokens come from environment variables only (the params file names them);
every value read or minted is registered with :mod:`netra_nb.redact` at once.

Test credentials leave the kit only through :func:`e2e_request` (the bypass key) and
:func:`signing_secret` (the secret every locally signed token comes from: :func:`local_token`,
the orchestration's per-user tokens). Both run :func:`netra_nb.params.guard_test_auth` first, so
no caller (a phase notebook, ``nb.check``, a fleet, params built in code) can send them where
the params file does not allow them, to production, or over plain HTTP off this machine.
"""

from __future__ import annotations

import os
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt

from .params import SIGNING_FALLBACK_ENV, ConfigError, Params, guard_test_auth
from .redact import register_secret

__all__ = ["secret_from_env", "signing_secret", "e2e_key", "sign_token", "token_subject", "e2e_request", "TokenInfo",
           "check_auth_config", "local_token", "wrong_token"]


@dataclass(frozen=True)
class TokenInfo:
    token: str | None
    user_id: str | None
    method: str


def secret_from_env(name: str, *, purpose: str) -> str:
    value = os.environ.get(name, "")
    if not value.strip():
        raise ConfigError(f"missing secret: the environment variable {name} ({purpose}) is not set")
    register_secret(value)
    return value


def check_auth_config(params: Params) -> None:
    """Fail early (config_error, exit 2) when the auth method is refused here or its secret is absent."""
    method = params.auth.method
    if method == "e2e_endpoint":
        e2e_key(params)
    elif method == "local_jwt":
        signing_secret(params)
    elif method == "token":
        secret_from_env(params.auth.token_env, purpose="a ready-made token for auth.method token")


def signing_secret(params: Params) -> str:
    """The local_jwt signing secret from the environment (registered for redaction), once the
    production guard has let these params send locally signed tokens."""
    guard_test_auth(params)
    # The contract: JWT_SECRET_STAGING (or the file's secret_env), then JWT_SECRET_KEY.
    for name in dict.fromkeys((params.auth.secret_env, SIGNING_FALLBACK_ENV)):
        if os.environ.get(name, "").strip():
            return secret_from_env(name, purpose="the JWT signing secret")
    raise ConfigError(f"missing secret: set {params.auth.secret_env} (or {SIGNING_FALLBACK_ENV}) for auth.method local_jwt")


def e2e_key(params: Params) -> str:
    """The E2E bypass key from the environment (registered for redaction), once the production
    guard has let these params send it."""
    guard_test_auth(params)
    return secret_from_env(params.auth.key_env, purpose="the E2E bypass key for auth.method e2e_endpoint")


def sign_token(secret: str, user_id: str, email: str, *, ttl_s: int = 900,
               permissions: tuple[str, ...] = ("read", "write", "execute", "agent_access"),
               register: bool = True) -> str:
    """An HS256 access token with the contract's claims; registered for redaction unless told not to
    (a fleet of per-user JWTs relies on the redactor's JWT pattern instead of 500 exact matches)."""
    now = int(time.time())
    claims = {
        "sub": user_id, "email": email, "permissions": list(permissions), "iat": now, "exp": now + ttl_s,
        "type": "access", "token_type": "access", "iss": "netra-auth-service", "aud": "netra-platform",
        "jti": uuid.uuid4().hex,
    }
    token = jwt.encode(claims, secret, algorithm="HS256")
    if register:
        register_secret(token)
    return token


def local_token(params: Params, user_id: str | None = None) -> TokenInfo:
    secret = signing_secret(params)
    uid = user_id or f"e2e-{params.auth.email.split('@')[0]}"
    return TokenInfo(sign_token(secret, uid, params.auth.email), uid, "local_jwt")


def wrong_token(user_id: str, email: str) -> str:
    """A well-formed token signed with a random secret: the differential probe for auth rejections.

    Not a test credential, so the production guard does not apply: no server trusts a secret
    made up for this one token, so it grants nothing anywhere (it is what a rejection looks like).
    """
    return sign_token(secrets.token_hex(16), user_id, email, ttl_s=120)


def token_subject(token: str | None) -> str | None:
    """The ``sub`` claim of a token, read without verifying it (for matching events to our user)."""
    if not token:
        return None
    try:
        claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    sub = claims.get("sub")
    return str(sub) if sub is not None else None


def e2e_request(params: Params, email: str | None = None) -> tuple[str, dict[str, str], dict[str, Any]]:
    """(url, headers, body) for the auth service's E2E test-auth endpoint."""
    key = e2e_key(params)
    email = email or params.auth.email
    body = {"email": email, "name": "netra-nb e2e", "permissions": ["read", "write", "execute", "agent_access"]}
    return f"{params.auth_url}/auth/e2e/test-auth", {"X-E2E-Bypass-Key": key}, body
