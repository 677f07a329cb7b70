"""ServerConfig: everything that shapes one reference-platform instance."""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass, field

from .faults import FAULTS

__all__ = ["ServerConfig", "ERAS", "AGENT_EVENTS", "DEFAULT_OFFSETS"]

ERAS = ("early", "mid", "october")
#: The five critical agent events, in their contract order.
AGENT_EVENTS = ("agent_started", "agent_thinking", "tool_executing", "tool_completed", "agent_completed")
#: Seconds from the request to each of the five events.
DEFAULT_OFFSETS = (0.15, 0.45, 0.8, 1.1, 1.4)


def _random_secret() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class ServerConfig:
    """One reference platform.  ``faults`` may be a tuple of names or one comma-separated string;
    unknown names raise ValueError.  Secrets default to fresh random values (read them back from
    the config to sign tokens or call the E2E endpoint)."""

    era: str = "mid"
    faults: tuple[str, ...] = ()
    jwt_secret: str = field(default_factory=_random_secret, repr=False)
    e2e_key: str = field(default_factory=_random_secret, repr=False)
    agent_event_offsets: tuple[float, ...] = DEFAULT_OFFSETS
    http_latency: float = 0.0
    heartbeat_interval: float = 5.0
    fault_delay: float = 1.0
    host: str = "127.0.0.1"
    port: int = 0
    # -- beyond the fixed interface (all optional) --
    #: the server closes 1000 "main cleanup" when a client sent nothing for this long (None: never)
    idle_timeout: float | None = 600.0
    #: uvicorn's protocol-level keepalive (server -> client pings); None disables it
    ws_ping_interval: float | None = 20.0
    ws_ping_timeout: float | None = 20.0
    #: seconds RefServer.stop() lets open requests finish before cancelling them
    shutdown_timeout: float = 1.0

    def __post_init__(self) -> None:
        faults = self.faults
        if isinstance(faults, str):
            faults = tuple(p for p in (s.strip() for s in faults.split(",")) if p)
        faults = tuple(dict.fromkeys(str(f).strip() for f in faults))  # ordered, de-duplicated
        unknown = [f for f in faults if f not in FAULTS]
        if unknown:
            raise ValueError(
                f"unknown fault profile(s): {', '.join(unknown)}; known: {', '.join(sorted(FAULTS))}"
            )
        object.__setattr__(self, "faults", faults)

        if self.era not in ERAS:
            raise ValueError(f"unknown era {self.era!r}; known: {', '.join(ERAS)}")

        offsets = tuple(float(x) for x in self.agent_event_offsets)
        if len(offsets) != len(AGENT_EVENTS):
            raise ValueError(f"agent_event_offsets needs {len(AGENT_EVENTS)} values, got {len(offsets)}")
        if any(not math.isfinite(x) or x < 0 for x in offsets):
            raise ValueError("agent_event_offsets must be finite and >= 0")
        if any(b < a for a, b in zip(offsets, offsets[1:])):
            raise ValueError("agent_event_offsets must not decrease")
        object.__setattr__(self, "agent_event_offsets", offsets)

        for name in ("http_latency", "fault_delay", "shutdown_timeout"):
            value = float(getattr(self, name))
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0")
            object.__setattr__(self, name, value)
        if not (self.heartbeat_interval > 0 and math.isfinite(self.heartbeat_interval)):
            raise ValueError("heartbeat_interval must be > 0")
        if not self.jwt_secret or not self.e2e_key:
            raise ValueError("jwt_secret and e2e_key must not be empty")
        if not (0 <= int(self.port) <= 65535):
            raise ValueError(f"port out of range: {self.port}")

    def has(self, fault: str) -> bool:
        """True when the fault profile ``fault`` is active."""
        return fault in self.faults

    @classmethod
    def scaled(cls, agent_seconds: float, **kwargs) -> "ServerConfig":
        """A config whose agent run lasts ``agent_seconds`` (the default offsets scaled)."""
        if not agent_seconds > 0:
            raise ValueError("agent_seconds must be > 0")
        k = agent_seconds / DEFAULT_OFFSETS[-1]
        return cls(agent_event_offsets=tuple(round(x * k, 6) for x in DEFAULT_OFFSETS), **kwargs)
