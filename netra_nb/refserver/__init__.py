"""The embedded reference platform: a real ASGI server (Starlette on uvicorn, loopback) that
implements netra-contract.md, with fault profiles that make it fail the way staging did.

    from netra_nb.refserver import RefServer, ServerConfig
    with RefServer(ServerConfig(era="mid", faults=("ws_1011_after_welcome",))) as srv:
        srv.base_url, srv.ws_url, srv.auth_url

It is the project's demo, training ground and test bed; checks only ever talk to its URL.
"""

from .config import AGENT_EVENTS, ERAS, ServerConfig
from .faults import CHECKS, FAULTS, WS_CHECKS, Fault
from .serve import serve_main
from .server import RefServer
from .tokens import mint_access_token

__all__ = [
    "RefServer",
    "ServerConfig",
    "FAULTS",
    "Fault",
    "serve_main",
    "ERAS",
    "AGENT_EVENTS",
    "CHECKS",
    "WS_CHECKS",
    "mint_access_token",
]
