"""Parameter files: the shipped ones load; bad ones (typos, bad names, secrets in place of variable
names) get errors that name the file, the key, its line and what was meant."""

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from netra_nb.params import KNOWN_KEYS, ConfigError, check_name, env_names, load_params, parse_params
from netra_nb.redact import known_secrets

ROOT = Path(__file__).resolve().parent.parent
GOOD = {"name": "x", "base_url": "https://a.example", "ws_url": "wss://a.example/ws", "auth": {"method": "none"}}


@pytest.mark.parametrize("env", ["local", "staging", "production"])
def test_shipped_params_load(env):
    p = load_params(path=ROOT / "params" / f"{env}.yaml")
    assert p.name == env and p.timeout_http > 0 and p.users >= 1
    # Test credentials only where the file says so: local and staging do, production does not.
    assert p.allow_test_auth is (env != "production")


def test_design_keys_are_understood():
    p = load_params(path=ROOT / "params" / "staging.yaml")
    assert (p.auth.method, p.auth.key_env, p.auth.secret_env) == ("e2e_endpoint", "E2E_OAUTH_SIMULATION_KEY", "JWT_SECRET_STAGING")
    assert (p.timeout_ws_open, p.timeout_agent_run, p.sla_agent_run) == (10, 30, 15.0)
    assert p.message_type == "start_agent"


def test_every_key_of_the_shipped_files_is_known():
    for env in ("local", "staging", "production"):
        data = yaml.safe_load((ROOT / "params" / f"{env}.yaml").read_text())
        assert set(data) <= set(KNOWN_KEYS[""]), env
        for section in KNOWN_KEYS:
            if section:
                assert set(data.get(section) or {}) <= set(KNOWN_KEYS[section]), (env, section)


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
    ({"auth": {"bypass_key": "abc"}}, r"unknown key auth.bypass_key looks like a secret"),
    ({"timeouts": {"http": -1}}, r"timeouts.http must be greater than 0"),
    ({"timeouts": {"http": "ten"}}, r"timeouts.http must be a number"),
    ({"orchestration": {"users": 2.5}}, r"must be a whole number"),
    ({"timeouts": [1, 2]}, r"'timeouts' must be a mapping"),
    ({"allow_test_auth": "yes"}, r"allow_test_auth must be true or false"),
])
def test_bad_values_are_named(change, message):
    with pytest.raises(ConfigError, match=message):
        parse_params({**GOOD, **change})


def test_not_a_mapping():
    with pytest.raises(ConfigError, match="expected a mapping"):
        parse_params(["a"])


# -- typos ---------------------------------------------------------------------------------------

STAGING = (ROOT / "params" / "staging.yaml").read_text()


def _typo(tmp_path, old: str, new: str) -> Path:
    """staging.yaml with one line changed (the way a person mistypes it), in a file of its own."""
    assert old in STAGING
    f = tmp_path / "typo.yaml"
    f.write_text(STAGING.replace(old, new, 1))
    return f


def _line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


@pytest.mark.parametrize("old, new, key, meant", [
    ("timeouts:", "timeout:", "timeout", "timeouts"),  # the whole section would be ignored
    ("  placement: subprotocol", "  placment: header", "auth.placment", "auth.placement"),
    ("  agent_run: 30", "  agent_runn: 20", "timeouts.agent_runn", "timeouts.agent_run"),
    ("  message_type: start_agent", "  mesage_type: user_message", "agent.mesage_type", "agent.message_type"),
    ("  users: 5", "  user: 50", "orchestration.user", "orchestration.users"),
    ("  agent_run: 15.0", "  agent_rn: 5.0", "sla.agent_rn", "sla.agent_run"),
    ("base_url:", "baseurl:", "baseurl", "base_url"),
])
def test_a_typo_in_any_section_names_file_key_line_and_the_key_meant(tmp_path, old, new, key, meant):
    f = _typo(tmp_path, old, new)
    with pytest.raises(ConfigError) as info:
        load_params(path=f)
    line = _line_of(f, new.strip())
    assert str(info.value).startswith(f"{f}: unknown key {key} (line {line}): did you mean {meant}?"), str(info.value)


def test_the_right_key_in_the_wrong_section_is_pointed_to_its_section():
    with pytest.raises(ConfigError, match=r"unknown key users: did you mean orchestration\.users\?"):
        parse_params({**GOOD, "users": 5})
    with pytest.raises(ConfigError, match=r"unknown key auth\.http: did you mean timeouts\.http\?"):
        parse_params({**GOOD, "auth": {"method": "none", "http": 5}})


def test_every_unknown_key_is_named_at_once():
    with pytest.raises(ConfigError) as info:
        parse_params({**GOOD, "timeout": {"http": 1}, "sla": {"htp": 1.0}, "zzz": 1})
    text = str(info.value)
    assert "unknown key timeout: did you mean timeouts?" in text and "unknown key sla.htp: did you mean sla.http?" in text
    assert "unknown key zzz: the top-level keys are name, base_url" in text


def test_a_secret_written_into_the_file_is_refused_without_being_echoed():
    value = "sk-" + secrets.token_hex(16)
    with pytest.raises(ConfigError) as info:
        parse_params({**GOOD, "auth": {"method": "none", "jwt_secret": value}})
    assert "auth.jwt_secret looks like a secret" in str(info.value) and value not in str(info.value)


def test_a_key_given_twice_is_refused_with_both_lines(tmp_path):
    f = tmp_path / "twice.yaml"
    f.write_text(STAGING + "timeouts:\n  http: 1\n")
    first, second = _line_of(f, "timeouts:"), len(f.read_text().splitlines()) - 1
    with pytest.raises(ConfigError, match=rf"timeouts is given twice \(lines {first} and {second}\)"):
        load_params(path=f)
    f.write_text(STAGING.replace("  http: 10\n", "  http: 10\n  http: 1\n"))
    with pytest.raises(ConfigError, match=r"timeouts\.http is given twice"):
        load_params(path=f)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "netra_nb.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def test_a_typo_exits_2_through_the_cli_and_runs_nothing(tmp_path):
    f = _typo(tmp_path, "  placement: subprotocol", "  placment: header")
    proc = _cli("run", "staging", "--params", str(f), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2, proc.stderr
    assert f"netra-nb: {f}: unknown key auth.placment (line {_line_of(f, 'placment')}): did you mean auth.placement?" \
        in proc.stderr
    assert not (tmp_path / "out").exists()


# -- names ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["../../x", "a/b", "..", ".hidden", "x" * 65, "a b", "", "name\n"])
def test_a_name_that_is_not_a_plain_folder_name_is_refused(name):
    with pytest.raises(ConfigError, match=r"name|'name'"):
        parse_params({**GOOD, "name": name})
    with pytest.raises(ConfigError, match="must be a plain name"):
        check_name(name, "env")


@pytest.mark.parametrize("name", ["staging", "local-2", "prod_eu.1", "X"])
def test_plain_names_are_accepted(name):
    assert parse_params({**GOOD, "name": name}).name == name


@pytest.mark.parametrize("key", ["key_env", "secret_env", "token_env"])
@pytest.mark.parametrize("value", ["9LIVES", "MY-KEY", "sk-abc/def==", "has space", "", "X" * 200])
def test_env_names_must_look_like_variable_names_and_are_not_echoed(key, value):
    with pytest.raises(ConfigError) as info:
        parse_params({**GOOD, "auth": {"method": "none", key: value}})
    assert f"auth.{key} must be the name of an environment variable" in str(info.value)
    assert not value or value not in str(info.value)


# -- every named variable is a secret ------------------------------------------------------------

def test_every_variable_the_params_name_is_registered_whether_used_or_not(monkeypatch):
    values = {name: f"{name.lower()}-{secrets.token_hex(12)}" for name in ("NB_T_KEY", "NB_T_SIGNING", "NB_T_READY")}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("JWT_SECRET_KEY", "fallback-" + secrets.token_hex(12))
    # method 'none' uses none of them; they are registered all the same
    p = parse_params({**GOOD, "auth": {"method": "none", "key_env": "NB_T_KEY", "secret_env": "NB_T_SIGNING",
                                       "token_env": "NB_T_READY"}})
    assert env_names(p) == ["NB_T_KEY", "NB_T_SIGNING", "NB_T_READY", "JWT_SECRET_KEY"]
    assert set(values.values()) | {os.environ["JWT_SECRET_KEY"]} <= known_secrets()


def test_environment_yml_and_pyproject_name_the_same_dependencies():
    import tomllib
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pyproject = _names(project["dependencies"]).union(*(_names(extra) for extra in project["optional-dependencies"].values()))
    env = yaml.safe_load((ROOT / "environment.yml").read_text())["dependencies"]
    conda = _names(d for d in env if isinstance(d, str)) - {"python", "pip"}
    assert pyproject == conda


def _names(deps):
    return {re.split(r"[<>=!~ \[]", d.strip(), 1)[0].lower().replace("_", "-") for d in deps}
