"""The report's tables: every check's result, the evidence of real execution, and their HTML styling
(status icons and row colours from :mod:`netra_nb.registry`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from .categories import category_info
from .checks import group_of
from .diagnosis import HONESTY
from .frames import normalize, result_of
from .records import PASSING, Record
from .redact import clip, redact
from .registry import ROW_COLORS, STATUS_ICON, STATUS_ORDER, phase_rank
from .runfolder import Run
from .text import _code, _md, _names, _num, _plural


# -- 3. the appendix: results, charts, evidence --------------------------------------------------------

def agent_result(frames: Sequence[dict[str, Any]], check: str, limit: int = 300) -> str | None:
    """The result an agent run's ``agent_completed`` frame carried, as a short text (None if absent)."""
    for f in frames:
        if f.get("check") == check and f.get("event") == "agent_completed" and f.get("direction") == "received":
            text = str(f.get("text") or "")
            value = result_of(normalize(text))
            if value is None:
                return clip(text, limit) or None  # truncated evidence: show it as it is
            shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            return clip(shown, limit)
    return None


def _honesty_codes(r: Record) -> list[str]:
    """The honesty categories a record carries (its category and its findings), each once."""
    return [c for c in dict.fromkeys([r.category, *r.findings]) if c in HONESTY]


def results_table(run: Run | Sequence[Record]) -> pd.DataFrame:
    """Every check: phase, check, status, category, duration, message (and honesty findings) — failures
    first, grouped by root cause and pattern, then passes flagged by a finding, then by phase. A failure
    identical to the one on an earlier row says so instead of repeating its message."""
    run = run if isinstance(run, Run) else Run(Path.cwd(), {}, list(run), [])

    def order(r: Record) -> tuple[Any, ...]:
        k, g = run.cause_of.get(id(r), (len(run.root_causes) + 1, None))
        status = min(STATUS_ORDER.get(r.status, 5), 1.5) if r.findings else STATUS_ORDER.get(r.status, 5)
        place = (run.root_causes[k - 1].groups.index(g), g.records.index(r)) if g is not None else (0, 0)
        return (status > 1.5, k, place, status, phase_rank(r.phase), r.started_at or "")

    rows, first_of = [], {}
    for r in sorted(run.records, key=order):
        _, g = run.cause_of.get(id(r), (0, None))
        message = str(redact(r.message or ""))
        if g is not None and len(g.records) > 1:
            if id(g) in first_of:
                message = f"the same failure as {first_of[id(g)]}"
            else:
                first_of[id(g)] = r.check
        rows.append({"phase": r.phase, "check": r.check, "status": r.status, "category": r.category,
                     "duration_s": _num(r.duration_s), "message": message, "findings": ", ".join(r.findings)})
    return pd.DataFrame(rows, columns=["phase", "check", "status", "category", "duration_s", "message", "findings"])


_TABLE_CSS = [
    {"selector": "", "props": "border-collapse: collapse; font-size: 12.5px; width: 100%; table-layout: auto;"},
    {"selector": "th", "props": "text-align: left; background: #eceff1; padding: 4px 8px; border-bottom: 2px solid #b0bec5;"},
    {"selector": "td", "props": "text-align: left; padding: 3px 8px; border-bottom: 1px solid #e0e0e0; vertical-align: top;"},
]


def _styled_html(df: pd.DataFrame, status_col: str = "status", formats: Mapping[str, Any] | None = None) -> str:
    if df.empty:
        return "<p><em>No checks recorded.</em></p>"
    shown = df.copy()
    if status_col in shown:
        statuses = list(shown[status_col])
        shown[status_col] = [f"{STATUS_ICON.get(s, '')} {s}" for s in statuses]
    else:
        statuses = ["pass"] * len(shown)
    styler = shown.style.hide(axis="index").set_table_styles(_TABLE_CSS)
    styler = styler.format(formats or {}, na_rep="", escape="html")
    colors = [ROW_COLORS.get(s, "#ffffff") for s in statuses]
    styler = styler.apply(lambda row: [f"background-color: {colors[row.name]}"] * len(row), axis=1)
    return str(redact(styler.to_html()))


def results_html(run: Run | Sequence[Record]) -> str:
    """:func:`results_table` as readable HTML: rows tinted by status, durations in seconds, a finding
    beside the category it changed."""
    df = results_table(run).reset_index(drop=True)
    df["category"] = [c if not f or f == c else f"{c} ‼ {f}" for c, f in zip(df["category"], df["findings"])]
    df = df.drop(columns=["findings"])
    return _styled_html(df, formats={"duration_s": lambda v: "" if v is None or v != v else f"{v:.3f}"})


_TIMING = ("connect_s", "tls_s", "ws_open_s", "ttfb_s", "first_event_s", "duration_s")


def evidence_table(run: Run | Sequence[Record]) -> pd.DataFrame:
    """Per check: bytes on the wire, the timing breakdown and the server's identifiers."""
    records = run.records if isinstance(run, Run) else list(run)
    rows = sorted(records, key=lambda r: (phase_rank(r.phase), r.started_at or ""))
    cols = ["phase", "check", "status", "bytes_sent", "bytes_received", *_TIMING, "connection_id", "server_run_id",
            "findings"]
    return pd.DataFrame(
        [{"phase": r.phase, "check": r.check, "status": r.status, "bytes_sent": r.bytes_sent,
          "bytes_received": r.bytes_received, **{k: _num(getattr(r, k)) for k in _TIMING},
          "connection_id": redact(r.connection_id) or "", "server_run_id": redact(r.server_run_id) or "",
          "findings": ", ".join(r.findings)} for r in rows], columns=cols)


_EVIDENCE_HEADERS = {"bytes_sent": "bytes sent", "bytes_received": "bytes received", "connect_s": "connect s",
                     "tls_s": "TLS s", "ws_open_s": "ws open s", "ttfb_s": "first byte s",
                     "first_event_s": "first event s", "duration_s": "total s", "connection_id": "connection id",
                     "server_run_id": "server run id"}


def evidence_html(run: Run | Sequence[Record]) -> str:
    """:func:`evidence_table` as HTML, headers in words so the table wraps to the page."""
    df = evidence_table(run).reset_index(drop=True).rename(columns=_EVIDENCE_HEADERS)
    fmt = {_EVIDENCE_HEADERS[k]: (lambda v: "" if v is None or v != v else f"{v:.3f}") for k in _TIMING}
    fmt.update({_EVIDENCE_HEADERS[k]: (lambda v: f"{int(v):,}") for k in ("bytes_sent", "bytes_received")})
    return '<div style="overflow-x: auto">' + _styled_html(df, formats=fmt) + "</div>"


def _wire_totals(records: Sequence[Record]) -> tuple[int, int]:
    """Bytes sent and received by the run's checks, a fleet's once: its checks judge the same sessions."""
    sent = received = 0
    fleets: dict[str, tuple[int, int]] = {}
    for r in records:
        if group_of(r.phase, r.check) == "fleet":
            s, v = fleets.get(r.phase, (0, 0))
            fleets[r.phase] = (max(s, r.bytes_sent or 0), max(v, r.bytes_received or 0))
        else:
            sent, received = sent + (r.bytes_sent or 0), received + (r.bytes_received or 0)
    return sent + sum(s for s, _ in fleets.values()), received + sum(v for _, v in fleets.values())


def evidence_markdown(run: Run) -> str:
    """The plain statements: honesty findings, passing checks without bytes, or that none of these
    happened (and, for a triage-only run, that the kit measured nothing itself)."""
    rs = run.records
    lines: list[str] = []
    flagged = [(r, c) for r in rs for c in _honesty_codes(r)]
    for c in dict.fromkeys(c for _, c in flagged):
        hit = [r for r, code in flagged if code == c]
        k = next((k for k, cause in enumerate(run.root_causes, 1) if c in cause.categories), 0)
        lines.append(f"- ‼ {_code(c)} — {_md(category_info(c).title)}: {_names(hit, 3)}" + (f" (root cause {k})." if k else "."))
    measured = [r for r in rs if r.phase != "triage" and r.status != "skip"]
    empty = [r for r in measured if r.status in PASSING and not r.bytes_received]
    if empty:
        lines.append(f"- ‼ **Defect: {_names(empty)} passed but received 0 bytes from the network**: a pass without "
                     "network input proves nothing.")
    if not measured and rs:
        lines.append("- No check of this run was measured on the wire by the kit (only triage records): its "
                     "statements rest on the test suite's own output.")
    elif not lines and measured:
        sent, received = _wire_totals(measured)
        lines.append(f"- ✔ Every passing check received bytes from the platform ({sent:,} bytes sent and {received:,} "
                     "received by the run); none reported a mock or a canned stand-in.")
    ids = [r for r in rs if r.connection_id or r.server_run_id]
    if ids:
        lines.append(f"- Identifiers only the server hands out came back for {_plural(len(ids), 'check')}, e.g. "
                     + "; ".join(f"{_code(r.check)}: " + ", ".join(
                         x for x in (f"connection {_code(r.connection_id)}" if r.connection_id else "",
                                     f"run {_code(r.server_run_id)}" if r.server_run_id else "") if x)
                         for r in ids[:3]) + ".")
    if any(r.phase == "triage" for r in rs):
        lines.append("- Triage records come from JUnit XML, which carries no byte counts: the kit can judge them "
                     "only by their times and texts.")
    return "\n".join(lines)
