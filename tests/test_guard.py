"""Test credentials fail closed: the E2E bypass key and locally signed tokens leave the kit only where
a params file says ``allow_test_auth: true``, never to a host that production.yaml names, and over
plain http:// or ws:// only to this machine; no way of building params gets around it. And a run
folder never lands outside ``--out``."""

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import jwt
import pytest
import yaml

from kit_helpers import KEY_ENV, ROOT, SECRET_ENV
from leaky import Recorder
from netra_nb import auth
from netra_nb.params import (CONTRACT_PRODUCTION_HOSTS, Auth, ConfigError, Params, load_params, parse_params,
                             production_hosts, refused_test_auth)
from netra_nb.redact import JWT_PATTERN

PRODUCTION = frozenset({"api.prod.example", "auth.prod.example", "10.9.8.7"})


def params(base="https://api.test.example", ws="wss://api.test.example/ws", auth_url="https://auth.test.example",
           method="e2e_endpoint", allow=True) -> Params:
    return Params(name="t", base_url=base, ws_url=ws, auth_url=auth_url, auth=Auth(method=method), allow_test_auth=allow)


# -- the rule (pure) -------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["e2e_endpoint", "local_jwt"])
def test_test_credentials_need_allow_test_auth_true(method):
    problem = refused_test_auth(params(method=method, allow=False), PRODUCTION)
    assert problem and f"auth.method {method!r} is refused" in problem and "allow_test_auth: true" in problem
    assert refused_test_auth(params(method=method), PRODUCTION) is None


@pytest.mark.parametrize("method", ["token", "none"])
def test_a_real_token_or_none_is_never_refused(method):
    for p in (params(method=method, allow=False), params("https://api.prod.example", "wss://api.prod.example/ws",
                                                          "https://auth.prod.example", method=method)):
        assert refused_test_auth(p, PRODUCTION) is None


@pytest.mark.parametrize("method, change, key", [
    ("e2e_endpoint", {"base": "https://api.prod.example"}, "base_url"),
    ("e2e_endpoint", {"ws": "wss://API.PROD.EXAMPLE./ws"}, "ws_url"),
    ("e2e_endpoint", {"auth_url": "https://auth.prod.example:8443"}, "auth_url"),
    ("local_jwt", {"ws": "wss://10.9.8.7/ws"}, "ws_url"),
])
def test_never_to_a_production_host_whatever_the_file_says(method, change, key):
    problem = refused_test_auth(params(method=method, **change), PRODUCTION)
    assert problem and f"{key} " in problem and "is a production host" in problem and "auth.method 'token'" in problem


def test_local_signing_sends_nothing_to_the_auth_service():
    assert refused_test_auth(params(method="local_jwt", auth_url="https://auth.prod.example"), PRODUCTION) is None


@pytest.mark.parametrize("url", ["http://api.test.example", "http://192.168.1.5:8000", "http://127.0.0.1.nip.io",
                                 "http://localhost.example.com"])
def test_plain_http_only_to_this_machine(url):
    problem = refused_test_auth(params(base=url), PRODUCTION)
    assert problem and "plain http://" in problem and "loopback" in problem
    ws = url.replace("http", "ws", 1) + "/ws"
    assert "plain ws://" in refused_test_auth(params(ws=ws), PRODUCTION)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "[::1]", "localhost", "LOCALHOST.", "[::ffff:127.0.0.1]"])
def test_loopback_may_be_plain(host):
    p = params(f"http://{host}:8000", f"ws://{host}:8000/ws", f"http://{host}:8081")
    assert refused_test_auth(p, PRODUCTION) is None


# -- where the rule is read from ------------------------------------------------------------------

def test_production_hosts_come_from_production_yaml_and_the_contract(tmp_path, monkeypatch):
    shipped = {"api.netrasystems.ai", "auth.netrasystems.ai"}
    assert shipped <= production_hosts() and CONTRACT_PRODUCTION_HOSTS <= production_hosts()
    (tmp_path / "production.yaml").write_text("name: production\nbase_url: https://prod.mine.example\n"
                                              "ws_url: wss://ws.prod.mine.example/ws\n")
    monkeypatch.setenv("NETRA_NB_PARAMS_DIR", str(tmp_path))
    assert {"prod.mine.example", "ws.prod.mine.example"} | shipped <= production_hosts()
    (tmp_path / "production.yaml").write_text("name: [broken\n")
    with pytest.raises(ConfigError, match="cannot read the production hosts"):
        production_hosts()


def _file(tmp_path, name, text):
    f = tmp_path / name
    f.write_text(text)
    return f


def test_a_copy_of_production_yaml_without_the_line_is_refused(tmp_path):
    text = (ROOT / "params" / "production.yaml").read_text()
    data = yaml.safe_load(text)
    data.pop("allow_test_auth")
    data["auth"] = {"method": "e2e_endpoint"}
    with pytest.raises(ConfigError, match=r"is refused for production: .* do not say allow_test_auth: true"):
        load_params(path=_file(tmp_path, "prod-copy.yaml", yaml.safe_dump(data)))
    # saying true does not help: the hosts are production's
    data["allow_test_auth"] = True
    with pytest.raises(ConfigError, match=r"is a production host \(params/production.yaml names it\)"):
        load_params(path=_file(tmp_path, "prod-true.yaml", yaml.safe_dump(data)))


def test_staging_yaml_with_production_hosts_is_refused(tmp_path):
    text = (ROOT / "params" / "staging.yaml").read_text().replace("api.staging.", "api.").replace("auth.staging.", "auth.")
    f = _file(tmp_path, "staging.yaml", text)
    with pytest.raises(ConfigError, match=r"auth_url 'https://auth.netrasystems.ai' is a production host"):
        load_params(path=f)
    # with a real user's token it is a production check like any other
    assert load_params(path=_file(tmp_path, "t.yaml", text.replace("method: e2e_endpoint", "method: token"))).name == "staging"


def test_params_built_in_code_are_held_to_the_rule_where_credentials_leave(monkeypatch):
    monkeypatch.setenv(KEY_ENV, os.environ[KEY_ENV])
    bad = [params("https://api.netrasystems.ai", "wss://api.netrasystems.ai/ws", "https://auth.netrasystems.ai"),
           params("http://api.test.example", "ws://api.test.example/ws", "http://api.test.example"),
           params(allow=False)]
    for p in bad:
        p = dataclasses.replace(p, auth=dataclasses.replace(p.auth, key_env=KEY_ENV, secret_env=SECRET_ENV))
        with pytest.raises(ConfigError):
            auth.e2e_request(p)
        with pytest.raises(ConfigError):
            auth.check_auth_config(p)
        signing = dataclasses.replace(p, auth=dataclasses.replace(p.auth, method="local_jwt"))
        for fn in (auth.signing_secret, auth.local_token, auth.check_auth_config):
            with pytest.raises(ConfigError):
                fn(signing)


def _cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "netra_nb.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})})


def test_the_cli_refuses_with_exit_2_and_runs_nothing(tmp_path):
    text = (ROOT / "params" / "staging.yaml").read_text().replace("api.staging.", "api.").replace("auth.staging.", "auth.")
    f = _file(tmp_path, "staging.yaml", text)
    proc = _cli("run", "staging", "--params", str(f), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert "is a production host" in proc.stderr and "auth.method 'token'" in proc.stderr
    assert not (tmp_path / "out").exists()
    f = _file(tmp_path, "lan.yaml", "name: lan\nallow_test_auth: true\nbase_url: http://192.168.7.7:8000\n"
                                    "ws_url: ws://192.168.7.7:8000/ws\nauth: {method: local_jwt}\n")
    proc = _cli("run", "lan", "--params", str(f), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2 and "plain http:// to a host that is not this machine" in proc.stderr


def test_no_path_sends_a_test_credential_to_a_production_host(tmp_path, monkeypatch):
    """Params built in code (allow_test_auth forced on) against a host production.yaml names: the phase
    notebooks' Phase, nb.check and the orchestration fleet all stop before the key or a signed token
    leaves; the host sees only requests without credentials, and the rows say why."""
    from netra_nb.notebook import Phase, check
    from netra_nb.orchestration import OrchestrationPhase

    with Recorder() as rec:
        (tmp_path / "production.yaml").write_text(f"name: production\nbase_url: {rec.http_url}\nws_url: {rec.ws_url}\n")
        monkeypatch.setenv("NETRA_NB_PARAMS_DIR", str(tmp_path))
        records = []
        for method in ("e2e_endpoint", "local_jwt"):
            p = Params(name="sneaky", base_url=rec.http_url, ws_url=rec.ws_url, auth_url=rec.http_url,
                       auth=Auth(method=method, key_env=KEY_ENV, secret_env=SECRET_ENV), allow_test_auth=True,
                       timeout_http=3, timeout_ws_open=3, timeout_agent_run=3, users=2)
            records += Phase("connectivity", params=p).run(progress=False)
            records += Phase("agent_pipeline", params=p).run(progress=False)
            records.append(check("agent_run", params=p).record)
            records += OrchestrationPhase(params=p, users=2).run(progress=False)
        sent = rec.received
    assert sent, "the checks that need no credential did reach the host"
    assert os.environ[KEY_ENV].encode() not in sent and b"X-E2E-Bypass-Key" not in sent
    for token in JWT_PATTERN.findall(sent.decode("latin-1")):
        with pytest.raises(jwt.PyJWTError):
            jwt.decode(token, os.environ[SECRET_ENV], algorithms=["HS256"], options={"verify_aud": False})
    refused = [r for r in records if r.category == "config_error"]
    assert {r.check for r in refused} >= {"auth_token", "websocket_connect", "agent_run", "concurrent_agent_runs"}
    assert all("is a production host" in r.message for r in refused), [r.message for r in refused]


# -- names and the run folder ---------------------------------------------------------------------

def test_the_run_folder_stays_inside_out(tmp_path):
    from netra_nb.runner import new_run_dir
    out = tmp_path / "out"
    run_dir, _ = new_run_dir(out, "staging")
    assert run_dir.parent == (out / "staging").resolve()
    for env in ("../../x", "..", "a/b", "/abs"):
        with pytest.raises(ConfigError, match="must be a plain name"):
            new_run_dir(out, env)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (out / "linked").symlink_to(elsewhere)
    with pytest.raises(ConfigError, match="outside the outputs root"):
        new_run_dir(out, "linked")
    assert not any(elsewhere.iterdir())


def test_a_name_that_climbs_out_exits_2(tmp_path, healthy_platform):
    from kit_helpers import write_params
    f = write_params(tmp_path / "p.yaml", healthy_platform)
    proc = _cli("run", "../../x", "--params", str(f), "--out", str(tmp_path / "a" / "b" / "out"))
    assert proc.returncode == 2 and "environment '../../x' must be a plain name" in proc.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["p.yaml"]
    f.write_text(yaml.safe_dump({**yaml.safe_load(f.read_text()), "name": "../../x"}))
    proc = _cli("run", "x", "--params", str(f), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2 and "name '../../x' must be a plain name" in proc.stderr


def test_the_token_probe_is_harmless_anywhere():
    """The differential probe's wrong token is signed with a secret made up for it: no server trusts
    it, so the guard does not apply to it (and it is no test credential)."""
    token = auth.wrong_token("u", "u@x.io")
    with pytest.raises(jwt.PyJWTError):
        jwt.decode(token, os.environ[SECRET_ENV], algorithms=["HS256"], options={"verify_aud": False})
