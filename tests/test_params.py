"""Parameter files: the shipped ones load; bad ones get errors that name the problem."""

import re
from pathlib import Path

import pytest
import yaml

from netra_nb.params import ConfigError, load_params, parse_params

ROOT = Path(__file__).resolve().parent.parent
GOOD = {"name": "x", "base_url": "https://a.example", "ws_url": "wss://a.example/ws"}


@pytest.mark.parametrize("env", ["local", "staging", "production"])
def test_shipped_params_load(env):
    p = load_params(path=ROOT / "params" / f"{env}.yaml")
    assert p.name == env and p.timeout_http > 0 and p.users >= 1


def test_design_keys_are_understood():
    p = load_params(path=ROOT / "params" / "staging.yaml")
    assert (p.auth.method, p.auth.key_env, p.auth.secret_env) == ("e2e_endpoint", "E2E_OAUTH_SIMULATION_KEY", "JWT_SECRET_STAGING")
    assert (p.timeout_ws_open, p.timeout_agent_run, p.sla_agent_run) == (10, 30, 15.0)
    assert p.message_type == "start_agent"


def test_unknown_environment_names_the_known_ones(monkeypatch):
    monkeypatch.chdir(ROOT)
    with pytest.raises(ConfigError, match=r"unknown environment 'nope'.*known environments: local, production, staging"):
        load_params("nope")


def test_malformed_yaml_names_the_line(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("name: x\nbase_url: [unclosed\n")
    with pytest.raises(ConfigError, match=r"not valid YAML at line \d+"):
        load_params(path=f)


@pytest.mark.parametrize("change, message", [
    ({"base_url": "ftp://a.example"}, r"base_url .* must use http:// or https://"),
    ({"ws_url": "https://a.example/ws"}, r"ws_url .* must use ws:// or wss://"),
    ({"ws_url": None}, r"'ws_url' is required"),
    ({"base_url": "http://:80"}, r"has no host"),
    ({"auth": {"method": "magic"}}, r"auth.method 'magic' must be one of"),
    ({"auth": {"placement": "cookie"}}, r"auth.placement 'cookie'"),
    ({"auth": {"bypass_key": "abc"}}, r"looks like a secret"),
    ({"timeouts": {"http": -1}}, r"timeouts.http must be greater than 0"),
    ({"timeouts": {"http": "ten"}}, r"timeouts.http must be a number"),
    ({"orchestration": {"users": 2.5}}, r"must be a whole number"),
    ({"timeouts": [1, 2]}, r"'timeouts' must be a mapping"),
])
def test_bad_values_are_named(change, message):
    with pytest.raises(ConfigError, match=message):
        parse_params({**GOOD, **change})


def test_not_a_mapping():
    with pytest.raises(ConfigError, match="expected a mapping"):
        parse_params(["a"])


def test_production_refuses_test_auth():
    with pytest.raises(ConfigError, match="refused for production.*allow_test_auth: false"):
        parse_params({**GOOD, "name": "production", "allow_test_auth": False, "auth": {"method": "e2e_endpoint"}})
    data = yaml.safe_load((ROOT / "params" / "production.yaml").read_text())
    data["auth"]["method"] = "local_jwt"
    with pytest.raises(ConfigError, match="refused"):
        parse_params(data)


def _names(deps):
    return {re.split(r"[<>=!~ \[]", d.strip(), 1)[0].lower().replace("_", "-") for d in deps}


def test_environment_yml_and_pyproject_name_the_same_dependencies():
    import tomllib
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pyproject = _names(project["dependencies"]) | _names(project["optional-dependencies"]["test"])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())["dependencies"]
    conda = _names(d for d in env if isinstance(d, str)) - {"python", "pip"}
    assert pyproject == conda
