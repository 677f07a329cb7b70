"""Frames the real Netra backend sent (zen beta-12/14/17 on loopback, captured 2026-11-29), as fixtures.

Each ``<name>.json`` holds one captured session or HTTP exchange: ``backend``, ``setting``, ``shows`` (what
it demonstrates), ``our_sub`` (the ``sub`` of the token the client sent) and ``wire``, the observed items in
order, each with ``t`` (seconds since the client started) and ``dir``:

* ``connect`` (``path``, ``placement``), ``open`` (101 ``status``, ``subprotocol``),
* ``send`` / ``recv`` (``text``: the raw frame), ``close`` (``code``, ``reason``, ``by``),
  ``client_close`` (the capture client hung up after listening long enough),
* ``refused`` (``status``, ``headers``, ``body`` of a refused upgrade),
* ``request`` / ``response`` (HTTP: ``method``, ``path``, ``status``, ``headers``, ``body``).

Tokens appear only as ``[REDACTED-JWT]``.  Tests import this package as ``realshapes`` (``tests/`` is on
``sys.path``) to hold the reference platform and the kit to what the real platform sent.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

__all__ = ["names", "load", "received", "signature"]

HERE = Path(__file__).resolve().parent


def names() -> list[str]:
    """Every fixture name, sorted."""
    return sorted(p.stem for p in HERE.glob("*.json"))


@lru_cache(maxsize=None)
def _load(name: str) -> str:
    return (HERE / f"{name}.json").read_text()


def load(name: str) -> dict[str, Any]:
    """The fixture ``name`` (a fresh copy each call)."""
    return json.loads(_load(name))


def received(name: str) -> list[Any]:
    """The frames the server sent in fixture ``name``, parsed as JSON (raw text when a frame is not JSON)."""
    out: list[Any] = []
    for item in load(name)["wire"]:
        if item["dir"] == "recv":
            try:
                out.append(json.loads(item["text"]))
            except ValueError:
                out.append(item["text"])
    return out


def signature(value: Any) -> Any:
    """The structure of a JSON value: objects keep their keys (sorted) with the signature of each value,
    lists become the list of their items' distinct signatures, scalars become their JSON type name
    ("string", "number", "integer", "boolean", "null").  Two frames of the same shape have equal signatures
    whatever their ids, times and texts."""
    if isinstance(value, dict):
        return {k: signature(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        sigs: list[Any] = []
        for item in value:
            s = signature(item)
            if s not in sigs:
                sigs.append(s)
        return sigs
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return "string"
