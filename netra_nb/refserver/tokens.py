"""JWTs as the Netra auth service mints them, and the backend's WebSocket token lookup."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence

import jwt

__all__ = [
    "mint_access_token",
    "mint_refresh_token",
    "validate_token",
    "find_token",
    "TokenError",
    "DEFAULT_PERMISSIONS",
    "SUBPROTOCOL_PREFIXES",
]

DEFAULT_PERMISSIONS = ("read", "write", "execute", "agent_access")
ISSUER = "netra-auth-service"
AUDIENCE = "netra-platform"
ACCESS_TTL = 900
SUBPROTOCOL_PREFIXES = ("jwt.", "jwt-auth.", "bearer.")


class TokenError(Exception):
    """The token is missing or invalid; ``str(exc)`` says why (no secret, no token text)."""


def user_id_for(email: str) -> str:
    """The E2E user id for an email (the token's ``sub`` and the answer's ``user.id``)."""
    return "e2e-" + (email.split("@", 1)[0] or "user")


def mint_access_token(
    secret: str,
    email: str = "e2e-test@staging.netrasystems.ai",
    permissions: Sequence[str] = DEFAULT_PERMISSIONS,
    *,
    ttl: float = ACCESS_TTL,
    now: float | None = None,
) -> str:
    """An HS256 access token with the contract's claims, as the auth service mints them."""
    iat = int(time.time() if now is None else now)
    claims: dict = {
        "sub": user_id_for(email),
        "email": email,
        "permissions": list(permissions),
        "iat": iat,
        "exp": iat + int(ttl),
        "type": "access",
        "iss": ISSUER,
        "jti": uuid.uuid4().hex,
        "token_type": "access",
        "aud": AUDIENCE,
    }
    return jwt.encode(claims, secret, algorithm="HS256")


def mint_refresh_token(secret: str, email: str, *, ttl: float = 7 * 24 * 3600) -> str:
    iat = int(time.time())
    claims = {
        "sub": user_id_for(email),
        "email": email,
        "iat": iat,
        "exp": iat + int(ttl),
        "type": "refresh",
        "token_type": "refresh",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, secret, algorithm="HS256")


def validate_token(token: str, secret: str) -> dict:
    """The claims of a valid access token (HS256, signature and exp checked, ``aud`` optional)."""
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            options={"verify_aud": False, "require": ["exp"]},
            leeway=5,
        )
    except jwt.ExpiredSignatureError:
        raise TokenError("token expired") from None
    except jwt.InvalidSignatureError:
        raise TokenError("invalid token signature") from None
    except jwt.PyJWTError as exc:
        raise TokenError(f"invalid token ({type(exc).__name__})") from None
    if claims.get("type", "access") != "access" or claims.get("token_type", "access") != "access":
        raise TokenError("not an access token")
    if not (claims.get("sub") or claims.get("user_id")):
        raise TokenError("token has no subject")
    return claims


def _looks_like_jwt(text: str) -> bool:
    return text.count(".") == 2 and text.startswith("eyJ")


def _token_from_subprotocol(entry: str) -> str | None:
    for prefix in SUBPROTOCOL_PREFIXES:
        if entry.lower().startswith(prefix):
            raw = entry[len(prefix):]
            if _looks_like_jwt(raw):
                return raw
            try:
                decoded = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode("ascii")
            except (ValueError, UnicodeDecodeError):
                return raw or None  # let validation say why it is bad
            return decoded if _looks_like_jwt(decoded) else (raw or None)
    return None


def find_token(
    headers: Mapping[str, str],
    subprotocols: Iterable[str],
    query: Mapping[str, str],
) -> tuple[str | None, str | None, str | None]:
    """(token, placement, subprotocol entry to echo).  Lookup order: Authorization header,
    subprotocol, query ``token``."""
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer " and auth[7:].strip():
        return auth[7:].strip(), "header", None
    for entry in subprotocols:
        token = _token_from_subprotocol(entry)
        if token:
            return token, "subprotocol", entry
    token = query.get("token")
    if token:
        return token, "query", None
    return None, None, None
