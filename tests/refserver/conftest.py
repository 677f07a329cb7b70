"""Fixtures of the reference-platform suite: real servers on loopback, stopped after each test."""

from __future__ import annotations

import pytest

from netra_nb.refserver import RefServer

from rs_helpers import make_config


@pytest.fixture
def serve():
    """serve(**config) -> a started RefServer (fast offsets and delays unless overridden)."""
    started: list[RefServer] = []

    def _serve(**kwargs) -> RefServer:
        srv = RefServer(make_config(**kwargs)).start()
        started.append(srv)
        return srv

    yield _serve
    for srv in started:
        srv.stop()


@pytest.fixture(scope="module")
def mid_server():
    """One healthy mid-era server shared by a module's read-only tests."""
    with RefServer(make_config()) as srv:
        yield srv
