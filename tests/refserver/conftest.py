"""Fixtures of the reference-platform tests: real servers on loopback (the helpers they use live in
rs_helpers.py, which test modules import by name; nothing imports this module by name).

Defined here, once, so that ``shared`` really is one cache for the whole session: a fixture
imported into several test modules gets one definition, hence one cache, per module.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from netra_nb.refserver import RefServer

from rs_helpers import make_config


def _stop_all(servers: list[RefServer]) -> None:
    if servers:
        with ThreadPoolExecutor(len(servers)) as pool:
            list(pool.map(lambda s: s.stop(), servers))


@pytest.fixture
def serve():
    """serve(**config) -> a started RefServer of this test alone (use it to stop it or hang it)."""
    started: list[RefServer] = []

    def _serve(**kwargs: Any) -> RefServer:
        srv = RefServer(make_config(**kwargs)).start()
        started.append(srv)
        return srv

    yield _serve
    _stop_all(started)


@pytest.fixture(scope="session")
def shared():
    """shared(**config) -> a started RefServer shared by every test asking for the same config
    (tests that use it must not stop it)."""
    cache: dict[str, RefServer] = {}

    def _get(**kwargs: Any) -> RefServer:
        key = repr(sorted(kwargs.items()))
        if key not in cache:
            cache[key] = RefServer(make_config(**kwargs)).start()
        return cache[key]

    yield _get
    _stop_all(list(cache.values()))


@pytest.fixture
def mid_server(shared):
    """The healthy mid-era server."""
    return shared()
