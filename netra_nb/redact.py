"""Secrets never reach an artifact: every string that leaves a check passes through :func:`redact`.

Two nets: the exact values the process knows to be secret (keys and secrets read from the
environment, tokens minted or received, registered with :func:`register_secret`), and patterns
that catch what was never registered (JWTs, ``Authorization`` values, token-bearing subprotocols
and query strings).
"""

from __future__ import annotations

import re
import threading
from typing import Any

__all__ = ["register_secret", "register_env_secrets", "redact", "redact_obj", "known_secrets", "REDACTED"]

REDACTED = "[REDACTED]"
_lock = threading.Lock()
_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None

#: A JWT: three base64url parts, the first two JSON objects (so starting "eyJ").
JWT_PATTERN = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")

_GENERIC = [
    (JWT_PATTERN, REDACTED),
    (re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?\s*(?:bearer|basic|token)\s+)[^\s\"',;]+"), r"\1" + REDACTED),
    (re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"), r"\1" + REDACTED),
    (re.compile(r"(?i)\b((?:jwt|jwt-auth|bearer)\.)[A-Za-z0-9._~+/=-]{8,}"), r"\1" + REDACTED),
    (re.compile(r"(?i)([?&](?:token|access_token|jwt|key)=)[^&#\s\"']+"), r"\1" + REDACTED),
    (re.compile(r"(?i)(x-e2e-bypass-key[\"']?\s*[:=]\s*[\"']?)[^\s\"',;}]+"), r"\1" + REDACTED),
    (re.compile(r"(?i)([\"'](?:access_token|refresh_token|token|secret|password)[\"']\s*:\s*[\"'])[^\"']+"),
     r"\1" + REDACTED),
]


_dirty = False
# Cheap substring test before the generic patterns: most text holds none of these.
_HINTS = ("eyj", "bearer", "jwt", "token", "key", "authorization", "secret", "password")


def register_secret(value: str | None) -> None:
    """Remember a secret value so that :func:`redact` removes it from any text.

    Registering is O(1); the combined pattern is rebuilt lazily on the next :func:`redact`, so
    registering a token per user for hundreds of users costs one compile, not one per token.
    """
    global _dirty
    if not value or not isinstance(value, str) or len(value) < 4:
        return
    with _lock:
        if value not in _secrets:
            _secrets.add(value)
            _dirty = True


def _known_pattern() -> re.Pattern[str] | None:
    global _pattern, _dirty
    if _dirty:
        with _lock:
            if _dirty:
                _pattern = re.compile("|".join(re.escape(s) for s in sorted(_secrets, key=len, reverse=True)))
                _dirty = False
    return _pattern


def known_secrets() -> frozenset[str]:
    with _lock:
        return frozenset(_secrets)


def redact(text: Any) -> Any:
    """Return ``text`` with every known secret and secret-looking value replaced; non-strings pass through."""
    if not isinstance(text, str) or not text:
        return text
    pattern = _known_pattern()
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    lowered = text.lower()
    if any(hint in lowered for hint in _HINTS):
        for regex, repl in _GENERIC:
            text = regex.sub(repl, text)
    return text


def redact_obj(obj: Any) -> Any:
    """Redact every string inside a JSON-like structure."""
    if isinstance(obj, str):
        return redact(obj)
    if isinstance(obj, dict):
        return {k: redact_obj(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [redact_obj(v) for v in obj]
    return obj


_SECRET_NAME = re.compile(r"(SECRET|TOKEN|BYPASS|PASSWORD|_KEY$|^KEY$|E2E_OAUTH)", re.I)


def register_env_secrets(environ: "dict[str, str] | None" = None) -> None:
    """Register the values of environment variables whose names say they hold a secret."""
    import os

    for name, value in (environ if environ is not None else os.environ).items():
        if _SECRET_NAME.search(name) and value and len(value) >= 6:
            register_secret(value)
