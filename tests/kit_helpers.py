"""Shared helpers and fixtures: reference platforms on loopback and params that point at them.

Tests import the helpers from here by name (`from kit_helpers import params_for`); conftest.py
re-exports the fixtures. (A module named conftest cannot be imported by name: every test folder
may have one.)
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest
import yaml

from netra_nb.params import Params, parse_params
from netra_nb.refserver import RefServer, ServerConfig

ROOT = Path(__file__).resolve().parent.parent
FAST_OFFSETS = (0.05, 0.1, 0.15, 0.2, 0.25)
KEY_ENV = "NETRA_TEST_E2E_KEY"
SECRET_ENV = "NETRA_TEST_JWT_SECRET"


def platform_config(**overrides) -> ServerConfig:
    overrides.setdefault("agent_event_offsets", FAST_OFFSETS)
    overrides.setdefault("fault_delay", 0.2)
    overrides.setdefault("jwt_secret", os.environ[SECRET_ENV])
    overrides.setdefault("e2e_key", os.environ[KEY_ENV])
    return ServerConfig(**overrides)


def params_dict(srv: RefServer, **overrides) -> dict:
    data = {
        "name": "test",
        "base_url": srv.base_url,
        "ws_url": srv.ws_url,
        "auth_url": srv.auth_url,
        "allow_test_auth": True,  # a test platform on loopback: the bypass key and local signing are allowed
        "auth": {"method": "e2e_endpoint", "key_env": KEY_ENV, "secret_env": SECRET_ENV, "placement": "header"},
        "timeouts": {"http": 3, "ws_open": 3, "agent_run": 4, "run": 240},
        "orchestration": {"users": 3},
        "sla": {"http": 2.0, "agent_run": 10.0},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return data


def params_for(srv: RefServer, **overrides) -> Params:
    return parse_params(params_dict(srv, **overrides), source="<test>")


def write_params(path: Path, srv: RefServer, **overrides) -> Path:
    path.write_text(yaml.safe_dump(params_dict(srv, **overrides)))
    return path


@pytest.fixture(scope="session", autouse=True)
def test_secrets():
    """Secrets for the test platforms, in environment variables as the kit requires."""
    os.environ.setdefault(KEY_ENV, "e2e-" + secrets.token_hex(12))
    os.environ.setdefault(SECRET_ENV, "jwt-" + secrets.token_hex(24))
    os.environ.setdefault("MPLBACKEND", "Agg")
    yield


@pytest.fixture
def platform(test_secrets):
    """platform(**config) -> a started reference platform, stopped after the test."""
    started: list[RefServer] = []

    def start(**overrides) -> RefServer:
        srv = RefServer(platform_config(**overrides)).start()
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.stop()


@pytest.fixture(scope="module")
def healthy_platform(test_secrets):
    with RefServer(platform_config()) as srv:
        yield srv


@pytest.fixture
def unused_port():
    """A loopback port with nothing listening on it."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
