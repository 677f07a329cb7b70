"""Text for people: Markdown made inert, numbers and durations as the report writes them (pure)."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any, Sequence

from .records import Record, parse_time
from .redact import redact


# -- markdown helpers --------------------------------------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`*\[\]<>|#])|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")


def _md(text: Any) -> str:
    """Free text made inert for Markdown (no emphasis, links or raw HTML), one line, secrets redacted."""
    s = " ".join(str(redact(str(text if text is not None else ""))).split())
    return _MD_SPECIAL.sub(lambda m: "\\" + m.group(0), s)


def _code(text: Any) -> str:
    """An inline code span (identifiers, codes)."""
    s = " ".join(str(redact(str(text if text is not None else ""))).split()).replace("`", "'")
    return f"`{s}`" if s else "``"


def _prose(text: Any) -> str:
    """A sentence from :mod:`netra_nb.diagnosis`: its backtick spans stay code, the rest is made inert."""
    def inert(part: str) -> str:  # keep the spaces around a code span
        lead, trail = part[:1].isspace(), part[-1:].isspace()
        return (" " if lead else "") + _md(part) + (" " if trail and part.strip() else "")

    parts = str(text or "").split("`")
    return "".join(inert(p) if i % 2 == 0 else _code(p) for i, p in enumerate(parts))


def _secs(value: Any) -> str:
    v = _num(value)
    if v is None:
        return "–"
    return f"{v:.3f} s" if v < 10 else f"{v:.1f} s"


def _num(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if v == v else None


def _lower_first(s: str) -> str:
    return s[:1].lower() + s[1:] if s else s


def _when(value: Any) -> str:
    t = value if isinstance(value, datetime) else parse_time(value)
    return t.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC") if t and t.year < 9999 else "an unknown time"


def _names(records: Sequence[Record], limit: int = 0) -> str:
    """``a``, ``b``, ``c`` (every name unless ``limit``: then the first ones and how many more)."""
    names = list(dict.fromkeys(r.check for r in records))
    shown = names if not limit or len(names) <= limit + 1 else names[:limit]
    more = f" and {len(names) - len(shown)} more" if len(shown) < len(names) else ""
    return ", ".join(_code(n) for n in shown) + more


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
