"""Parameter files: ``params/<env>.yaml`` loaded and validated, with errors a person can act on.

Secrets are never in a parameter file: it names the environment variables that hold them
(``auth.key_env``, ``auth.secret_env``, ``auth.token_env``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit

import yaml

__all__ = ["ConfigError", "Params", "Auth", "load_params", "params_dir", "parse_params", "known_envs"]

AUTH_METHODS = ("e2e_endpoint", "local_jwt", "token", "none")
PLACEMENTS = ("header", "subprotocol", "query")
MESSAGE_TYPES = ("start_agent", "user_message")


class ConfigError(ValueError):
    """The parameters are unusable; the message says which key or variable and why."""


@dataclass(frozen=True)
class Auth:
    method: str = "e2e_endpoint"
    key_env: str = "E2E_OAUTH_SIMULATION_KEY"
    secret_env: str = "JWT_SECRET_STAGING"
    token_env: str = "STAGING_TEST_JWT_TOKEN"
    placement: str = "header"
    email: str = "e2e-netra-nb@test.netrasystems.ai"


@dataclass(frozen=True)
class Params:
    name: str
    base_url: str
    ws_url: str
    auth_url: str
    auth: Auth = field(default_factory=Auth)
    timeout_http: float = 10.0
    timeout_ws_open: float = 10.0
    timeout_agent_run: float = 30.0
    timeout_run: float = 900.0  # the whole run's deadline
    message_type: str = "start_agent"
    agent_request: str = "Analyze test data for pipeline validation"
    agent_type: str = "triage"
    users: int = 5
    sla_http: float = 2.0
    sla_agent_run: float = 15.0
    allow_test_auth: bool = True  # production.yaml sets false: no E2E bypass, no local signing
    source: str = ""  # the file it came from

    def with_overrides(self, **changes: Any) -> "Params":
        return replace(self, **changes)


def params_dir() -> Path:
    """Where ``params/`` is: $NETRA_NB_PARAMS_DIR, else the nearest ``params/`` above the cwd, else the repo's."""
    env = os.environ.get("NETRA_NB_PARAMS_DIR")
    if env:
        return Path(env)
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "params" / "local.yaml").is_file():
            return folder / "params"
    return Path(__file__).resolve().parent.parent / "params"


def known_envs() -> list[str]:
    d = params_dir()
    return sorted(p.stem for p in d.glob("*.yaml")) if d.is_dir() else []


def load_params(env: str | None = None, path: str | os.PathLike[str] | None = None) -> Params:
    """Load ``params/<env>.yaml`` (or the file at ``path``) and validate it."""
    if path is None:
        if not env:
            raise ConfigError("name an environment (e.g. 'local') or a params file")
        if "/" in env or env.endswith((".yaml", ".yml")):
            path = env
        else:
            candidate = params_dir() / f"{env}.yaml"
            if not candidate.is_file():
                known = ", ".join(known_envs()) or "none found"
                raise ConfigError(f"unknown environment {env!r}: no {candidate} (known environments: {known})")
            path = candidate
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"params file not found: {p}")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {p}: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{p} is not valid YAML{where}: {problem}") from None
    return parse_params(data, source=str(p), default_name=env if env and "/" not in env else p.stem)


def _section(data: Mapping[str, Any], key: str, source: str) -> Mapping[str, Any]:
    value = data.get(key) or {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{source}: '{key}' must be a mapping, not {type(value).__name__}")
    return value


def _number(section: Mapping[str, Any], key: str, where: str, default: float, *, integer: bool = False) -> Any:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where}.{key} must be a number, not {value!r}")
    if value <= 0:
        raise ConfigError(f"{where}.{key} must be greater than 0, not {value!r}")
    if integer:
        if int(value) != value:
            raise ConfigError(f"{where}.{key} must be a whole number, not {value!r}")
        return int(value)
    return float(value)


def _url(data: Mapping[str, Any], key: str, schemes: tuple[str, ...], source: str) -> str:
    value = data.get(key)
    if not value or not isinstance(value, str):
        raise ConfigError(f"{source}: '{key}' is required (a URL with scheme {' or '.join(schemes)})")
    parts = urlsplit(value.strip())
    if parts.scheme not in schemes:
        raise ConfigError(f"{source}: {key} {value!r} must use {' or '.join(s + '://' for s in schemes)}")
    if not parts.hostname:
        raise ConfigError(f"{source}: {key} {value!r} has no host")
    try:
        parts.port
    except ValueError:
        raise ConfigError(f"{source}: {key} {value!r} has an invalid port") from None
    return value.strip().rstrip("/") if key != "ws_url" else value.strip()


def parse_params(data: Any, *, source: str = "<params>", default_name: str = "") -> Params:
    """Validate a parsed params mapping; raises :class:`ConfigError` naming the bad key."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: expected a mapping of keys (name, base_url, ws_url, …), got {type(data).__name__}")
    name = data.get("name", default_name)
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{source}: 'name' must be a non-empty string")
    base_url = _url(data, "base_url", ("http", "https"), source)
    ws_url = _url(data, "ws_url", ("ws", "wss"), source)
    auth_url = _url({"auth_url": data.get("auth_url") or base_url}, "auth_url", ("http", "https"), source)

    a = _section(data, "auth", source)
    defaults = Auth()
    method = a.get("method", defaults.method)
    if method not in AUTH_METHODS:
        raise ConfigError(f"{source}: auth.method {method!r} must be one of {', '.join(AUTH_METHODS)}")
    placement = a.get("placement", defaults.placement)
    if placement not in PLACEMENTS:
        raise ConfigError(f"{source}: auth.placement {placement!r} must be one of {', '.join(PLACEMENTS)}")
    for key in ("key_env", "secret_env", "token_env", "email"):
        if key in a and (not isinstance(a[key], str) or not a[key]):
            raise ConfigError(f"{source}: auth.{key} must be a non-empty string")
    for key in a:
        if key not in ("method", "placement", "key_env", "secret_env", "token_env", "email"):
            if any(word in key.lower() for word in ("secret", "key", "token", "password")):
                raise ConfigError(
                    f"{source}: auth.{key} looks like a secret; params files name environment variables "
                    f"(key_env, secret_env, token_env), never the secret itself")
    auth = Auth(
        method=method,
        placement=placement,
        key_env=a.get("key_env", defaults.key_env),
        secret_env=a.get("secret_env", defaults.secret_env),
        token_env=a.get("token_env", defaults.token_env),
        email=a.get("email", defaults.email),
    )
    allow = data.get("allow_test_auth", True)
    if not isinstance(allow, bool):
        raise ConfigError(f"{source}: allow_test_auth must be true or false")
    if not allow and method in ("e2e_endpoint", "local_jwt"):
        raise ConfigError(
            f"{source}: auth.method {method!r} is refused for {name}: this environment sets "
            f"allow_test_auth: false (no E2E bypass and no locally signed tokens); use method 'token' or 'none'")

    t = _section(data, "timeouts", source)
    agent = _section(data, "agent", source)
    orch = _section(data, "orchestration", source)
    sla = _section(data, "sla", source)
    message_type = agent.get("message_type", "start_agent")
    if message_type not in MESSAGE_TYPES:
        raise ConfigError(f"{source}: agent.message_type {message_type!r} must be one of {', '.join(MESSAGE_TYPES)}")
    request = agent.get("request", Params.agent_request)
    if not isinstance(request, str) or not request.strip():
        raise ConfigError(f"{source}: agent.request must be a non-empty string")
    return Params(
        name=name,
        base_url=base_url,
        ws_url=ws_url,
        auth_url=auth_url,
        auth=auth,
        timeout_http=_number(t, "http", "timeouts", 10.0),
        timeout_ws_open=_number(t, "ws_open", "timeouts", 10.0),
        timeout_agent_run=_number(t, "agent_run", "timeouts", 30.0),
        timeout_run=_number(t, "run", "timeouts", 900.0),
        message_type=message_type,
        agent_request=request,
        agent_type=str(agent.get("agent_type", "triage")),
        users=_number(orch, "users", "orchestration", 5, integer=True),
        sla_http=_number(sla, "http", "sla", 2.0),
        sla_agent_run=_number(sla, "agent_run", "sla", 15.0),
        allow_test_auth=allow,
        source=source,
    )
