"""The category codes of design.md: what each failure means and what to do about it.

One place for the whole table, as a tree by where the failure shows::

    ok
    network ......... dns_failure, connection_refused, connect_timeout, tls_error, read_timeout
    http ............ http_unavailable, http_server_error, http_auth_rejected, http_not_found,
                      http_client_error, health_degraded, contract_mismatch
    auth ............ auth_unavailable
    ws upgrade ...... ws_upgrade_auth_rejected, ws_route_missing, ws_upgrade_unavailable,
                      ws_upgrade_server_error, ws_handshake_timeout, ws_subprotocol_mismatch
    ws session ...... ws_auth_ignored, ws_internal_error, ws_keepalive_timeout, ws_policy_violation,
                      ws_closed_early, ws_abnormal_close, ws_error_frame, ws_no_reply
    agent run ....... agent_no_events, agent_incomplete, agent_failed, agent_empty_result,
                      agent_event_order, cross_user_leak
    honesty ......... fake_fast, no_network_io, mock_fallback
    the kit ......... config_error, client_lost, client_error, unknown

Each code has a title, the likely causes (from ``failure-examples.md`` and the contract) and the
next steps; the report shows them.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Category", "CATEGORIES", "CODES", "category_info", "SEVERITY"]


@dataclass(frozen=True)
class Category:
    code: str
    area: str
    title: str
    causes: tuple[str, ...]
    next_steps: tuple[str, ...]


def _c(code: str, area: str, title: str, causes: list[str], steps: list[str]) -> Category:
    return Category(code, area, title, tuple(causes), tuple(steps))


_TABLE = [
    _c("ok", "ok", "Passed", [], []),
    # -- network --
    _c("dns_failure", "network", "The host name does not resolve",
       ["A typo or an outdated host in the params file",
        "The environment's DNS record was removed or not yet created (a new or torn-down environment)"],
       ["Check base_url/ws_url/auth_url in params/<env>.yaml", "Resolve the host by hand (dig/nslookup)"]),
    _c("connection_refused", "network", "Nothing listens at the address",
       ["The service is not running or crashed", "Wrong port in the params file"],
       ["Check that the service is up (container status, process list)", "Check the port in params/<env>.yaml"]),
    _c("connect_timeout", "network", "The TCP or TLS connection did not complete in time",
       ["A firewall or security group drops packets", "The load balancer has no capacity or the host is down"],
       ["Try the host from another network", "Check firewall rules and the load balancer's health"]),
    _c("tls_error", "network", "The TLS handshake or certificate failed",
       ["Expired or mismatched certificate", "A proxy intercepting TLS", "http/https mixed up in the URL"],
       ["Inspect the certificate (openssl s_client)", "Check the URL scheme in the params file"]),
    _c("read_timeout", "network", "Connected, but no HTTP response in time",
       ["The service is overloaded or blocked (a stuck database call, a dead worker)",
        "A start-up that hangs on a dependency (database start-up timeout)"],
       ["Look at the service's logs for slow or hung requests at the time of the check",
        "Check the database and Redis connectivity of the service"]),
    # -- http --
    _c("http_unavailable", "http", "The platform is not serving (502/503/504)",
       ["The backend failed to start (a missing module, a name error, a database start-up timeout)",
        "A crash loop: the revision never became ready",
        "Nothing healthy behind the load balancer"],
       ["Read the service's start-up logs for the exception", "Check the revision/container status and restarts",
        "Re-run once the service reports healthy"]),
    _c("http_server_error", "http", "The platform answered with a server error (500)",
       ["An unhandled exception in the endpoint, e.g. the database layer (a pool class the async driver cannot use)"],
       ["Find the traceback in the server logs at the time of the check", "Reproduce the request by hand"]),
    _c("http_auth_rejected", "http", "The platform refused the credentials (401/403)",
       ["The E2E bypass key is wrong or not configured on the auth service",
        "The token's signing secret differs between the client and the platform",
        "The environment refuses test authentication (production)"],
       ["Check the key/secret environment variables named in the params file",
        "Compare the secret configured on the auth service with the one the client uses"]),
    _c("http_not_found", "http", "The route is missing or moved (404)",
       ["The endpoint was renamed or moved (e.g. /ws to /api/v1/websocket)", "A wrong base_url"],
       ["Check the platform's current routes", "Update the params file's URLs"]),
    _c("http_client_error", "http", "The platform rejected the request (4xx)",
       ["The request no longer matches what the endpoint expects"],
       ["Compare the request with the endpoint's current schema"]),
    _c("health_degraded", "http", "A health endpoint answers, but not 'healthy'",
       ["A dependency is down: Redis or the database unreachable (e.g. through the VPC connector)",
        "A start-up flag never set: /health and /api/health disagree (split health)"],
       ["Read the health body's checks to see which dependency fails",
        "Check the network path to Redis and the database"]),
    _c("contract_mismatch", "http", "A success answer that breaks the contract",
       ["The platform changed its response shape", "A proxy or error page answering in place of the platform"],
       ["Compare the body in the evidence with netra-contract.md", "Check for a proxy between client and platform"]),
    _c("auth_unavailable", "auth", "The auth service does not offer the chosen method here",
       ["The E2E test endpoint is not configured in this environment (the auth service answers 503 'E2E "
        "authentication not configured' while its /health is 200): a development auth service",
        "The environment refuses test authentication (production answers 403)"],
       ["Use an auth method this environment offers: local_jwt with the backend's JWT secret, or a ready token",
        "Or configure the E2E endpoint on the auth service (ENVIRONMENT=staging and the bypass key)"]),
    # -- ws upgrade --
    _c("ws_upgrade_auth_rejected", "ws_upgrade", "The WebSocket upgrade was refused for the credentials",
       ["The platform validates tokens with a different secret than the one that signed them",
        "The auth service is misconfigured", "The token expired or lacks a required claim"],
       ["Compare JWT secrets between auth service and backend", "Decode the token and check its claims and expiry"]),
    _c("ws_route_missing", "ws_upgrade", "No WebSocket route serves this path",
       ["The path is registered only as an HTTP GET route (it answers 200 to a GET but refuses the upgrade)",
        "The WebSocket endpoint moved (e.g. /ws vs /api/v1/websocket)"],
       ["Check the server's route table for a WebSocket route at this path",
        "Point ws_url at the path that has the WebSocket route"]),
    _c("ws_upgrade_unavailable", "ws_upgrade", "The WebSocket upgrade got 502/503/504",
       ["The backend failed to start or is restarting", "Nothing healthy behind the load balancer"],
       ["Check the service's start-up logs and revision status", "Check /health at the same time"]),
    _c("ws_upgrade_server_error", "ws_upgrade", "The WebSocket upgrade got 500",
       ["An exception in the handshake/authentication code of the WebSocket endpoint"],
       ["Find the traceback in the server logs at the time of the upgrade"]),
    _c("ws_handshake_timeout", "ws_upgrade", "The WebSocket opening handshake did not finish in time",
       ["The service is overloaded or still starting", "The upgrade is stuck in a proxy or load balancer"],
       ["Check the service's load and readiness", "Check the proxy's WebSocket upgrade settings"]),
    _c("ws_subprotocol_mismatch", "ws_upgrade", "WebSocket subprotocol negotiation failed",
       ["The server selected a subprotocol the client did not offer (or the client put Sec-WebSocket-Protocol in a raw header)"],
       ["Pass subprotocols through the client library's subprotocols argument",
        "Check which subprotocol the server echoes"]),
    # -- ws session --
    _c("ws_auth_ignored", "ws_session", "The session was accepted, but not as our user",
       ["The backend never read the token: a demo mode that makes every session the same demo user",
        "The token's placement is not read (e.g. the ?token= query), so the session fell back to an anonymous user",
        "The token was read but not validated: the backend's call to the auth service failed or timed out "
        "('Token validation failed in websocket: auth_service_unreachable') and, in development, it put an "
        "anonymous relaxed_… user in its place instead of refusing the session"],
       ["Turn demo mode off on the backend (DEMO_MODE=0) and run again",
        "Use a token placement the backend reads (the Authorization header)",
        "Search the backend's log at the session's time for 'Token validation failed' (an auth service too slow or down)",
        "Treat every result of these sessions as not ours: they prove nothing about authenticated users"]),
    _c("ws_internal_error", "ws_session", "The server closed the WebSocket with 1011 (internal error)",
       ["A server-side exception in the WebSocket message handling (an undefined function left by an import fallback)",
        "A value that could not be serialized to JSON"],
       ["Look at the server logs around the close time for the exception",
        "Note whether it happens before or after the first client message (in the evidence)"]),
    _c("ws_keepalive_timeout", "ws_session", "The client closed the WebSocket because pings went unanswered",
       ["The server's event loop is blocked", "A proxy that drops control frames"],
       ["Check the server for blocking calls in async code", "Check proxy timeouts"]),
    _c("ws_policy_violation", "ws_session", "The server closed the WebSocket with 1008 (policy violation)",
       ["The token was rejected after the accept (AUTH_FAILED)", "A policy check after the connection"],
       ["Check the error frame before the close for the reason", "Compare JWT secrets and claims"]),
    _c("ws_closed_early", "ws_session", "The server closed the WebSocket normally before the agent run ended",
       ["The session lifecycle closes connections right after the handshake ('main cleanup')",
        "A server restart (1001/1012)"],
       ["Check the server's connection lifecycle code and logs for the cleanup",
        "Check for deployments/restarts at the time"]),
    _c("ws_abnormal_close", "ws_session", "The connection dropped without a close frame (1006)",
       ["A proxy or load balancer idle timeout", "The server process died"],
       ["Check load balancer idle timeouts", "Check the server for crashes/restarts at the time"]),
    _c("ws_error_frame", "ws_session", "The server sent an error frame",
       ["The server reports a failure of its own (e.g. CONNECTION_ERROR when a mode fails)"],
       ["Read the error frame's code and message in the evidence", "Look at the server logs at that time"]),
    _c("ws_no_reply", "ws_session", "A message on an open session got no reply",
       ["The server's message handler swallows client messages (re-types them internally and drops them)",
        "The handler for this message type is missing"],
       ["Look at the server logs for how the message was routed",
        "Compare with the agent run: a swallowed request there shows as agent_no_events"]),
    # -- agent --
    _c("agent_no_events", "agent", "The request was sent and no agent event came",
       ["The agent pipeline is not wired: the request takes a fallback path that emits no events (a lost orchestrator)",
        "A dependency (Redis) is down, so the run never starts"],
       ["Check the agent service's logs for the request", "Check the orchestrator/supervisor registration"]),
    _c("agent_incomplete", "agent", "The agent run started but never completed",
       ["The run hangs or dies mid-way (e.g. in a tool)", "Events are lost between the agent and the WebSocket"],
       ["Find the last event in the evidence and look at the logs of that step"]),
    _c("agent_failed", "agent", "The agent reported a failure",
       ["The agent raised an error (data.error_message in the evidence)"],
       ["Read the error message in the evidence", "Look at the agent's logs for the run id"]),
    _c("agent_empty_result", "agent", "The agent completed without a result",
       ["The agent's result was lost or not serialized"],
       ["Check the agent_completed payload in the evidence"]),
    _c("agent_event_order", "agent", "Agent events arrived out of order",
       ["Events emitted from concurrent tasks without ordering", "A broken event bridge"],
       ["Compare the order in the frames chart with the contract's order"]),
    _c("cross_user_leak", "agent", "A session received another user's events",
       ["Event routing by connection or user is broken (a shared emitter, a global connection map)"],
       ["Treat as a security incident: find how events are routed to connections"]),
    # -- honesty --
    _c("fake_fast", "honesty", "A check claims network work but finished in under 10 ms",
       ["The runner never measured the time, or the check never touched the network"],
       ["Do not trust this result; rerun with netra-nb, which measures every check"]),
    _c("no_network_io", "honesty", "A check passed without a byte on the network",
       ["The check computed its result locally (constants or local dictionaries)"],
       ["Do not trust this result; replace the check with one that calls the platform"]),
    _c("mock_fallback", "honesty", "A mock or canned stand-in replaced the platform",
       ["The test silently swapped in a mock (e.g. MockWebSocketManager) after the real connection failed"],
       ["Do not trust this result; the real connection failed — look at that failure instead"]),
    # -- the kit --
    _c("config_error", "kit", "The parameters are unusable",
       ["A missing secret environment variable", "A bad URL or a malformed params file"],
       ["Read the message: it names the key or variable", "Fix params/<env>.yaml or export the variable"]),
    _c("client_lost", "kit", "The client side of the session was lost (a Dask worker of the fleet)",
       ["The worker process running the session's shard was killed (out of memory, a node drained or preempted, "
        "a Ctrl-C on `dask worker`)",
        "The worker's machine or its network to the scheduler went away mid-fleet",
        "The shard did not report within the fleet's budget (a worker stalled: swapping, CPU starved)"],
       ["Nothing is known about the platform's side of these sessions: do not read them as platform failures",
        "Look at the worker's own log (dask worker output, the pod's events: OOMKilled, Evicted) for why it went",
        "Re-run with more workers or fewer users per worker (--cluster local:N, or scale the cluster)"]),
    _c("client_error", "kit", "The kit's own code failed",
       ["A bug in the check or a library API misuse"],
       ["Read the traceback in the evidence", "Report it to the netra-nb maintainers"]),
    _c("unknown", "kit", "Not classified",
       ["None of the known patterns matched"],
       ["Read the raw evidence in detail"]),
]

CATEGORIES: dict[str, Category] = {c.code: c for c in _TABLE}
CODES: tuple[str, ...] = tuple(CATEGORIES)

#: Order in which categories block the golden path: the earlier, the more fundamental.
SEVERITY: tuple[str, ...] = (
    "config_error", "dns_failure", "connection_refused", "connect_timeout", "tls_error",
    "http_unavailable", "read_timeout", "auth_unavailable", "http_auth_rejected",
    "ws_upgrade_unavailable", "ws_upgrade_server_error", "ws_route_missing", "ws_upgrade_auth_rejected",
    "ws_handshake_timeout", "ws_subprotocol_mismatch", "ws_auth_ignored", "ws_policy_violation", "ws_internal_error",
    "ws_closed_early", "ws_abnormal_close", "ws_keepalive_timeout", "ws_error_frame", "ws_no_reply",
    "agent_no_events", "agent_failed", "agent_incomplete", "agent_empty_result", "agent_event_order",
    "cross_user_leak", "mock_fallback", "fake_fast", "no_network_io",
    "http_server_error", "http_not_found", "http_client_error", "health_degraded", "contract_mismatch",
    "client_lost", "client_error", "unknown",
)
assert set(SEVERITY) | {"ok"} == set(CODES), set(CODES) ^ set(SEVERITY)


def category_info(code: str) -> Category:
    """The catalog entry for a code; unknown codes map to ``unknown``."""
    return CATEGORIES.get(code, CATEGORIES["unknown"])
