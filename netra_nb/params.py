"""Parameter files: ``params/<env>.yaml`` loaded and validated, with errors a person can act on.

Secrets are never in a parameter file: it names the environment variables that hold them
(``auth.key_env``, ``auth.secret_env``, ``auth.token_env``). The values of those variables are
registered for redaction as soon as the params are parsed, whether or not this run uses them.

What is refused (a :class:`ConfigError`, exit 2 through the CLI):

* a key the kit does not read (a typo: ``timeout:``, ``placment:``), named with its section, its
  line and the nearest known key; a key given twice;
* a ``name`` that is not a plain folder name, a ``*_env`` that is not a variable name;
* **test credentials** (the E2E bypass key, locally signed tokens) unless the file says
  ``allow_test_auth: true``; to any host that ``params/production.yaml`` names, whatever the file
  says; over plain ``http://``/``ws://`` to anything but this machine. :func:`guard_test_auth` is
  the one check: parsing runs it, and so does :mod:`netra_nb.auth` before it hands out a key or
  signs a token, so params built any other way are held to it too.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
from dataclasses import dataclass, field, fields, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit

import yaml

from .redact import register_secret_vars

__all__ = ["ConfigError", "Params", "Auth", "load_params", "params_dir", "parse_params", "known_envs", "KNOWN_KEYS",
           "check_name", "env_names", "guard_test_auth", "refused_test_auth", "production_hosts",
           "TEST_AUTH_METHODS", "SIGNING_FALLBACK_ENV"]

AUTH_METHODS = ("e2e_endpoint", "local_jwt", "token", "none")
#: The methods that send test credentials: the E2E bypass key, or tokens signed with the shared secret.
TEST_AUTH_METHODS = {"e2e_endpoint": "the E2E bypass key", "local_jwt": "locally signed tokens"}
PLACEMENTS = ("header", "subprotocol", "query")
MESSAGE_TYPES = ("start_agent", "user_message")
#: local_jwt's second choice for the signing secret (netra-contract.md: JWT_SECRET_STAGING, then this).
SIGNING_FALLBACK_ENV = "JWT_SECRET_KEY"

#: Every key the kit reads, by section ("" is the top level). A key is added here when the kit
#: starts reading it; anything else in a params file is a typo and refused.
KNOWN_KEYS: dict[str, tuple[str, ...]] = {
    "": ("name", "base_url", "ws_url", "auth_url", "allow_test_auth", "auth", "timeouts", "agent", "orchestration",
         "sla"),
    "auth": ("method", "key_env", "secret_env", "token_env", "placement", "email"),
    "timeouts": ("http", "ws_open", "agent_run", "run"),
    "agent": ("message_type", "request", "agent_type"),
    "orchestration": ("users", "cluster"),
    "sla": ("http", "agent_run"),
}
_SECRET_WORDS = ("secret", "key", "token", "password", "passwd", "credential")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_ENV_VAR = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
#: The production hosts of netra-contract.md ("Services and addresses"). production.yaml names
#: them too; they are here as well so that the guard holds where no production.yaml can be found
#: (the kit installed without its params folder, a params folder of one's own).
CONTRACT_PRODUCTION_HOSTS = frozenset({"api.netrasystems.ai", "auth.netrasystems.ai"})
_KIT_PARAMS = Path(__file__).resolve().parent.parent / "params"


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
    #: where the orchestration fleet runs: "" this process; "local[:N]" a Dask LocalCluster of N worker
    #: processes here; "tcp://HOST:PORT" the scheduler of a Dask cluster (netra_nb/cluster.py)
    cluster: str = ""
    sla_http: float = 2.0
    sla_agent_run: float = 15.0
    #: Test credentials (E2E bypass, local signing) only where a params file says true: fail closed.
    allow_test_auth: bool = False
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
    return _KIT_PARAMS


def known_envs() -> list[str]:
    d = params_dir()
    return sorted(p.stem for p in d.glob("*.yaml")) if d.is_dir() else []


def check_name(value: Any, what: str) -> str:
    """``value`` if it is a plain folder name (it becomes part of a run folder's path), else ConfigError."""
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ConfigError(
            f"{what} {value!r} must be a plain name: letters, digits, '.', '_' or '-', starting with a letter "
            f"or digit, at most 64 characters (it becomes a folder of the run's path)")
    return value


def env_names(params: Params) -> list[str]:
    """Every environment variable these params make the kit read a secret from (``*_env``, and the
    signing secret's fallback)."""
    names = [getattr(params.auth, f.name) for f in fields(Auth) if f.name.endswith("_env")]
    return list(dict.fromkeys([*names, SIGNING_FALLBACK_ENV]))


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
    data, lines = _parse_yaml(text, str(p))
    return parse_params(data, source=str(p), default_name=env if env and "/" not in env else p.stem, lines=lines)


def _parse_yaml(text: str, source: str) -> tuple[Any, dict[str, int]]:
    """The document and the line (1-based) of each key, top level and sections (``"auth.placement"``)."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{source} is not valid YAML{where}: {problem}") from None
    finally:
        loader.dispose()
    lines: dict[str, int] = {}

    def walk(mapping: yaml.Node, prefix: str) -> None:
        for key_node, value_node in mapping.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            path = prefix + str(key_node.value)
            line = key_node.start_mark.line + 1
            if path in lines:
                raise ConfigError(f"{source}: {path} is given twice (lines {lines[path]} and {line}); "
                                  f"YAML would silently keep the last one: keep one")
            lines[path] = line
            if not prefix and isinstance(value_node, yaml.MappingNode):
                walk(value_node, path + ".")

    if isinstance(node, yaml.MappingNode):
        walk(node, "")
    return data, lines


def _section(data: Mapping[str, Any], key: str, source: str) -> Mapping[str, Any]:
    value = data.get(key) or {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{source}: '{key}' must be a mapping, not {type(value).__name__}")
    return value


def _unknown_key(section: str, key: str, value: Any, lines: Mapping[str, int]) -> str:
    """One unknown key described: where it is and what was probably meant (its value is never shown)."""
    path = f"{section}.{key}" if section else key
    line = lines.get(path)
    where = f"unknown key {path}" + (f" (line {line})" if line else "")
    meant = [f"{section + '.' if section else ''}{k}" for k in difflib.get_close_matches(key, KNOWN_KEYS[section], n=1)]
    # The right key in the wrong section ("users:" at the top instead of under orchestration).
    meant += [f"{s + '.' if s else ''}{k}" for s, keys in KNOWN_KEYS.items() if s != section
              for k in difflib.get_close_matches(key, keys, n=1, cutoff=0.8)]
    secret_like = any(word in key.lower() for word in _SECRET_WORDS)
    names_a_variable = isinstance(value, str) and _ENV_VAR.fullmatch(value) is not None
    if secret_like and not (meant and names_a_variable):
        # jwt_secret: <the secret>: more than a typo, the secret itself is likely in the file.
        return (f"{where} looks like a secret; params files name environment variables (key_env, secret_env, "
                f"token_env), never the secret itself" + (f" (did you mean {meant[0]}?)" if meant else ""))
    if meant:
        return f"{where}: did you mean {meant[0]}?"
    known = ", ".join(KNOWN_KEYS[section])
    return f"{where}: {'the keys of ' + section if section else 'the top-level keys'} are {known}"


def _check_keys(data: Mapping[str, Any], source: str, lines: Mapping[str, int]) -> None:
    problems = [_unknown_key("", str(k), v, lines) for k, v in data.items() if str(k) not in KNOWN_KEYS[""]]
    for section in KNOWN_KEYS:
        value = data.get(section) if section else None
        if isinstance(value, Mapping):
            problems += [_unknown_key(section, str(k), v, lines) for k, v in value.items()
                         if str(k) not in KNOWN_KEYS[section]]
    if problems:
        raise ConfigError(f"{source}: " + "; ".join(problems))


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


_CLUSTER_LOCAL = re.compile(r"local(?::(\d{1,3}))?")


def cluster_spec(value: Any, where: str = "orchestration.cluster") -> str:
    """A valid cluster address (see :attr:`Params.cluster`), normalized; ConfigError naming ``where`` otherwise.
    Nothing is contacted here: an unreachable scheduler is found by :func:`netra_nb.cluster.probe`."""
    if value is None or value == "":
        return ""
    if not isinstance(value, str):
        raise ConfigError(f"{where} must be a string (local, local:N or tcp://HOST:PORT), not {value!r}")
    text = value.strip()
    m = _CLUSTER_LOCAL.fullmatch(text)
    if m:
        n = int(m.group(1)) if m.group(1) else None
        if n is not None and not 1 <= n <= 256:
            raise ConfigError(f"{where} {value!r}: the number of local workers must be 1 to 256")
        return text
    parts = urlsplit(text)
    if parts.scheme == "tcp" and parts.hostname and not parts.path.strip("/") and not parts.query:
        try:
            port = parts.port
        except ValueError:
            raise ConfigError(f"{where} {value!r} has an invalid port") from None
        if port is None:
            raise ConfigError(f"{where} {value!r} names no port (a Dask scheduler listens on 8786 by default)")
        return text
    raise ConfigError(f"{where} {value!r} must be local, local:N (N worker processes on this machine) or the "
                      f"address of a Dask scheduler, tcp://HOST:PORT")


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


def parse_params(data: Any, *, source: str = "<params>", default_name: str = "",
                 lines: Mapping[str, int] | None = None) -> Params:
    """Validate a parsed params mapping; raises :class:`ConfigError` naming the bad key.

    ``lines`` (from the YAML) lets errors say where a key is. On success the values of the
    variables the params name are registered for redaction, and :func:`guard_test_auth` has passed.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: expected a mapping of keys (name, base_url, ws_url, …), got {type(data).__name__}")
    _check_keys(data, source, lines or {})
    name = data.get("name", default_name)
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{source}: 'name' must be a non-empty string")
    check_name(name, f"{source}: name")
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
    if "email" in a and (not isinstance(a["email"], str) or not a["email"]):
        raise ConfigError(f"{source}: auth.email must be a non-empty string")
    for key in ("key_env", "secret_env", "token_env"):
        # The value is never echoed: a person who put the secret itself here must not see it in a log.
        if key in a and (not isinstance(a[key], str) or not _ENV_VAR.fullmatch(a[key])):
            raise ConfigError(
                f"{source}: auth.{key} must be the name of an environment variable (letters, digits and '_', "
                f"not starting with a digit); if it holds the secret itself, put that in a variable and name it here")
    auth = Auth(
        method=method,
        placement=placement,
        key_env=a.get("key_env", defaults.key_env),
        secret_env=a.get("secret_env", defaults.secret_env),
        token_env=a.get("token_env", defaults.token_env),
        email=a.get("email", defaults.email),
    )
    allow = data.get("allow_test_auth", False)
    if not isinstance(allow, bool):
        raise ConfigError(f"{source}: allow_test_auth must be true or false")

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
    params = Params(
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
        cluster=cluster_spec(orch.get("cluster", ""), f"{source}: orchestration.cluster"),
        sla_http=_number(sla, "http", "sla", 2.0),
        sla_agent_run=_number(sla, "agent_run", "sla", 15.0),
        allow_test_auth=allow,
        source=source,
    )
    register_secret_vars(env_names(params))
    guard_test_auth(params)
    return params


# -- the production guard ------------------------------------------------------------------------

def _host(url: str) -> str:
    """The URL's host as compared: lower case, no trailing dot, an IP address in its canonical form."""
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_loopback or (mapped is not None and mapped.is_loopback)


def refused_test_auth(params: Params, production: frozenset[str]) -> str | None:
    """Why these params may not send test credentials (None when they may, or send none).

    Pure: ``production`` is the set of production hosts (:func:`production_hosts`).
    """
    method = params.auth.method
    what = TEST_AUTH_METHODS.get(method)
    if what is None:
        return None  # 'token' (a real user's token) and 'none' send no test credential
    where = params.source or "the params"
    if not params.allow_test_auth:
        return (f"{where}: auth.method {method!r} is refused for {params.name}: it sends test credentials ({what}), "
                f"and these params do not say allow_test_auth: true (the default is false; production.yaml says "
                f"false). In a test environment's params file (never production's) add 'allow_test_auth: true'; "
                f"otherwise use auth.method 'token' with a real user's token, or 'none'")
    targets = ([("auth_url", params.auth_url)] if method == "e2e_endpoint" else []) + [
        ("base_url", params.base_url), ("ws_url", params.ws_url)]
    for key, url in targets:
        host = _host(url)
        if host in production:
            return (f"{where}: {key} {url!r} is a production host (params/production.yaml names it): test "
                    f"credentials ({what}) are never sent there, whatever the params file says. Against "
                    f"production use auth.method 'token' with a real user's token")
        scheme = urlsplit(url).scheme
        if scheme in ("http", "ws") and not _is_loopback(host):
            return (f"{where}: {key} {url!r} is plain {scheme}:// to a host that is not this machine: test "
                    f"credentials ({what}) travel unencrypted only to loopback (127.0.0.1, ::1, localhost). "
                    f"Use {scheme}s://, or reach the platform through a tunnel on localhost")
    return None


def production_hosts() -> frozenset[str]:
    """Hosts test credentials never go to: those that ``production.yaml`` names (in :func:`params_dir`
    and in the kit's own ``params/``), and the contract's production hosts."""
    hosts = set(CONTRACT_PRODUCTION_HOSTS)
    for folder in dict.fromkeys((params_dir().resolve(), _KIT_PARAMS)):
        path = folder / "production.yaml"
        try:
            stat = path.stat()
        except OSError:
            continue
        hosts |= _hosts_named(str(path), stat.st_mtime_ns, stat.st_size)
    return frozenset(hosts)


@lru_cache(maxsize=8)
def _hosts_named(path: str, mtime_ns: int, size: int) -> frozenset[str]:
    """The hosts of base_url, ws_url and auth_url in a params file (cached while the file is unchanged)."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the production hosts from it ({type(exc).__name__}); test "
                          f"credentials are refused until it is readable") from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: not a mapping, so its production hosts are unknown; test credentials are "
                          f"refused until it is fixed")
    return frozenset(_host(v) for k in ("base_url", "ws_url", "auth_url")
                     if isinstance(v := data.get(k), str) and urlsplit(v.strip()).hostname)


def guard_test_auth(params: Params) -> None:
    """Raise :class:`ConfigError` when these params may not send test credentials (see the module's docstring)."""
    if params.auth.method not in TEST_AUTH_METHODS:
        return
    problem = refused_test_auth(params, production_hosts())
    if problem:
        raise ConfigError(problem)
