"""Secrets never reach an artifact: every string that leaves a check passes through :func:`redact`.

Three nets, each behind the one before:

1. **The exact values** the process knows to be secret (the values of every variable a params
   file names, tokens minted or received), registered with :func:`register_secret`. Every
   occurrence is removed, also where two secrets overlap, and also in the forms a value takes
   when it is written into JSON, HTML/XML or a URL.
2. **Patterns** for what was never registered, of the family secret scanners (detect-secrets'
   keyword detector, gitleaks' generic rules) match in headers, URLs and key/value text: JWTs;
   ``Authorization`` values; ``Cookie``/``Set-Cookie`` values; ``x-api-key``-style headers;
   token-bearing subprotocols; secret-named query parameters (``?token=``, ``&api_key=``, …);
   secret-named keys in JSON and in ``name=value`` / ``name: value`` text (``access_token``,
   ``accessToken``, ``clientSecret``, ``E2E_OAUTH_SIMULATION_KEY=`` …); ``user:password@`` in
   URLs; PEM private keys.
3. **A last pass over a run folder**: :func:`scrub_tree` rewrites every text and Parquet file
   whose redacted content differs.

Text is redacted *before* it is cut, never after: a cut through a secret leaves a piece that no
net recognizes. :func:`clip` is the one way to shorten text that may hold evidence.
"""

from __future__ import annotations

import html
import json
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence
from urllib.parse import quote, quote_plus

__all__ = ["register_secret", "forget_secrets", "register_env_secrets", "register_secret_vars", "redact", "redact_obj", "clip",
           "redact_keeping_images", "scrub_tree", "known_secrets", "REDACTED", "JWT_PATTERN", "MIN_SECRET"]

REDACTED = "[REDACTED]"
#: Shorter values are not registered: they would blank out ordinary words everywhere.
MIN_SECRET = 4

_lock = threading.Lock()
_secrets: set[str] = set()  # the values as registered
_pending: set[str] = set()  # their encoded forms not compiled yet
_tiers: list[_Tier] = []  # the compiled forms, in groups of falling size

#: A JWT: three base64url parts, the first two JSON objects (so starting "eyJ").
JWT_PATTERN = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")


def _encoded_forms(value: str) -> set[str]:
    """The value as it appears once written into JSON (both escapings), a Python repr (``str()`` of a
    dict or list), HTML/XML or a URL."""
    backslashed = value.replace("\\", "\\\\")
    forms = {value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1], repr(value)[1:-1],
             backslashed, backslashed.replace("'", "\\'"), html.escape(value), html.escape(value, quote=False),
             quote(value), quote(value, safe=""), quote_plus(value, safe="")}
    return {f for f in forms if len(f) >= MIN_SECRET}


def register_secret(value: str | None) -> None:
    """Remember a secret value so that :func:`redact` removes it from any text.

    Registering is O(1); the pattern is compiled lazily on the next :func:`redact`, so registering
    a token per user for hundreds of users costs one compile, not one per token.
    """
    if not value or not isinstance(value, str) or len(value) < MIN_SECRET:
        return
    with _lock:
        if value not in _secrets:
            _secrets.add(value)
            _pending.update(_encoded_forms(value))


def _trie_pattern(words: Iterable[str]) -> str:
    """A regex matching any of ``words``, the longest one where several start at the same place.

    The words are merged into a prefix tree, so a scan costs a few steps per character whatever
    their number (a plain alternation tries every word at every position: with a thousand
    registered tokens, milliseconds per frame). Chains without a branch become one literal, so
    the nesting is as deep as the branching, not as long as a token.
    """
    end = ""  # the key marking "a word ends here" ("" is no character)
    root: dict[str, Any] = {}
    for word in words:
        node = root
        for char in word:
            node = node.setdefault(char, {})
        node[end] = True

    def emit(node: dict[str, Any]) -> str:
        branches = []
        for char in sorted(c for c in node if c != end):
            literal, child = re.escape(char), node[char]
            while len(child) == 1 and end not in child:  # a chain: one next character, no word ending
                (char, child), = child.items()
                literal += re.escape(char)
            branches.append(literal + emit(child))
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        # A word may end here: the longer continuations are tried first (greedy), then nothing.
        return f"(?:{body})?" if end in node else body

    return emit(root)


@dataclass(frozen=True)
class _Tier:
    """A group of registered forms and its two patterns: any form anywhere (a quick test), and every
    form at every position (a lookahead, so overlapping occurrences are all found)."""

    forms: frozenset[str]
    anywhere: re.Pattern[str]
    everywhere: re.Pattern[str]

    @classmethod
    def of(cls, forms: Iterable[str]) -> "_Tier":
        pattern = _trie_pattern(forms)
        return cls(frozenset(forms), re.compile(pattern), re.compile(f"(?=({pattern}))"))


def _known() -> list[_Tier]:
    """The compiled groups of registered forms, with every registered form in one of them.

    The groups are kept like the digits of a binary counter: new forms make a group of their own,
    merged with the groups no larger than it. Registering and redacting in turn (a token per user,
    each answer judged) so compiles O(n log n) forms in all, not O(n²); a redact searches O(log n) groups.
    """
    if _pending:
        with _lock:
            if _pending:
                forms = set(_pending)
                while _tiers and len(_tiers[-1].forms) <= len(forms):
                    forms |= _tiers.pop().forms
                _tiers.append(_Tier.of(forms))
                _pending.clear()
    return _tiers


def forget_secrets(values: Iterable[str]) -> None:
    """Stop redacting ``values`` (a notebook kernel done with a run's tokens, a test done with its own):
    the groups are compiled again from the secrets that remain."""
    with _lock:
        gone = set(values) & _secrets
        if not gone:
            return
        _secrets.difference_update(gone)
        _tiers.clear()
        _pending.clear()
        for value in _secrets:
            _pending.update(_encoded_forms(value))


def known_secrets() -> frozenset[str]:
    with _lock:
        return frozenset(_secrets)


def _redact_known(text: str) -> str:
    """Every occurrence of every registered form replaced, overlapping ones merged into one span.

    A plain alternation would replace the leftmost match and resume after it, leaving the rest
    of a second secret that overlaps the first; here every position is tried and the spans merged.
    """
    found: list[tuple[int, int]] = []
    for tier in _known():
        first = tier.anywhere.search(text)
        if first is not None:
            found += [(m.start(), m.end(1)) for m in tier.everywhere.finditer(text, first.start())]
    if not found:
        return text
    spans: list[list[int]] = []
    for start, end in sorted(found):
        if spans and start <= spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], end)
        else:
            spans.append([start, end])
    out, pos = [], 0
    for start, end in spans:
        out += [text[pos:start], REDACTED]
        pos = end
    out.append(text[pos:])
    return "".join(out)


# -- the patterns ------------------------------------------------------------------------------
# Every pattern starts on a literal or a rare character, so a scan stays linear even on a
# megabyte frame of letters (a leading [a-z0-9_]* would make it quadratic).

#: A value in unquoted text: up to whitespace, a quote, a separator or a bracket (and never
#: across a backslash, which may be half of a JSON escape).
_VALUE = r"[^\s\"'\\,;&<>{}\[\]()]+"
#: Secret-naming words that end a key. "key" alone is too common ("key": "agent_name"): it counts
#: only as the end of a longer name (api_key, apiKey, X-Api-Key, E2E_OAUTH_SIMULATION_KEY).
_WORD = r"(?:token|secret|passw(?:or)?d|passphrase|pwd|credentials?|(?<=[a-z0-9_.-])key)"
#: The same words when a longer name must end in them (unquoted text, where "token: header" is
#: prose): a letter, digit, '_', '.' or '-' right before the word.
_COMPOUND = r"(?<=[a-z0-9_.-])(?:token|secret|pwd|credentials?|key)|passw(?:or)?d|passphrase"
#: A quote, also as HTML/XML writes it in an attribute (report.html, junit.xml).
_QUOTE = r"(?:[\"']|&quot;)"


def _keep_prefix(m: re.Match[str]) -> str:
    return m.group(1) + REDACTED


def _quoted_value(m: re.Match[str]) -> str:
    delimiter = "&quot;" if m.group(2).startswith("&") else m.group(2)[0]
    return f"{m.group(1)}{delimiter}{REDACTED}{delimiter}"


def _cookie_values(m: re.Match[str]) -> str:
    # Keep the cookie names (evidence of which cookie) and drop every value.
    return m.group(1) + re.sub(r"=[^;,\s]*", "=" + REDACTED, m.group(2))


def _userinfo(m: re.Match[str]) -> str:
    return f"{m.group(1)}{m.group(2)}:{REDACTED}@" if m.group(3) is not None else f"{m.group(1)}{REDACTED}@"


def _env_assignment(m: re.Match[str]) -> str:
    name = m.group(1)
    return f"{name}={REDACTED}" if _SECRET_VAR.search(name) else m.group(0)


_SECRET_VAR = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|PWD|CREDENTIAL|BYPASS")

#: (hints, pattern, replacement): a pattern runs only when one of its hints (lowercase) is in the text.
_RULES: list[tuple[tuple[str, ...], re.Pattern[str], Any]] = [
    (("-----begin",), re.compile(r"-----BEGIN[A-Z ]*PRIVATE KEY-----.*?(?:-----END[A-Z ]*PRIVATE KEY-----|\Z)", re.S),
     REDACTED),
    (("eyj",), JWT_PATTERN, REDACTED),
    # (the value is never the scheme word itself: "Bearer [REDACTED]" stays as it is)
    (("authorization",), re.compile(
        r"(?i)(\b(?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?(?:(?:bearer|basic|token|digest|negotiate|jwt)\s+)?)"
        r"(?!(?:bearer|basic|token|digest|negotiate|jwt)\s)" + _VALUE), _keep_prefix),
    (("bearer",), re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=-]{8,}"), _keep_prefix),
    (("jwt", "bearer"), re.compile(r"(?i)(\b(?:jwt|jwt-auth|bearer)\.)[A-Za-z0-9._~+/=-]{8,}"), _keep_prefix),
    (("cookie",), re.compile(r"(?i)(\b(?:set-)?cookie[\"']?\s*[:=]\s*[\"']?)([^\r\n\"'\\]*)"), _cookie_values),
    # "access_token": "…", 'clientSecret': '…' (JSON, Python reprs); the key must end in the word.
    (("token", "secret", "passw", "pwd", "passphrase", "credential", "key"), re.compile(
        rf"(?i)({_WORD}{_QUOTE}\s*:\s*)(\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|&quot;.*?&quot;)"), _quoted_value),
    # access_token=…, apiKey: …, X-Api-Key: …, E2E_OAUTH_SIMULATION_KEY=… (also a quoted value cut short).
    # A bare lowercase word after it is prose or one of the kit's own names ("auth_token: ok",
    # "auth_token: http_auth_rejected"), not a credential: the registered values still catch a real one.
    (("token", "secret", "passw", "pwd", "passphrase", "credential", "key"), re.compile(
        rf"(?i)((?:{_COMPOUND}){_QUOTE}?\s*[:=]\s*{_QUOTE}?)(?-i:(?![a-z][a-z_-]*(?:[\s.,;:)\]}}`*]|$)))" + _VALUE),
     _keep_prefix),
    # ?token=…, &api_key=…, ;jwt=… (a query or matrix parameter whose name ends in a secret word).
    (("token", "secret", "passw", "pwd", "key", "jwt", "sig", "auth", "credential"), re.compile(
        r"(?i)([?&;][a-z0-9_.-]{0,40}?(?:token|secret|passw(?:or)?d|pwd|key|jwt|sig|signature|auth|credentials?)=)"
        r"[^&#\s\"'<>\\]+"), _keep_prefix),
    # JWT_SECRET_STAGING=…: an environment assignment whose name says it holds a secret.
    (("key", "token", "secret", "passw", "pwd", "credential", "bypass"), re.compile(
        r"\b([A-Z][A-Z0-9_]*)=(?![\s\"'])" + _VALUE), _env_assignment),
    # scheme://user:password@host and scheme://long-token@host
    (("://",), re.compile(r"(://)(?:([^/\s:@\"'<>\\]*):([^/\s@\"'<>\\]+)|[^/\s:@\"'<>\\]{16,})@"), _userinfo),
]


def redact(text: Any) -> Any:
    """Return ``text`` with every known secret and secret-looking value replaced; non-strings pass through."""
    if not isinstance(text, str) or not text:
        return text
    text = _redact_known(text)
    lowered = text.lower()
    for hints, regex, repl in _RULES:
        if any(h in lowered for h in hints):
            text = regex.sub(repl, text)
    return text


def clip(text: object, limit: int, *, tail: bool = False) -> str:
    """``text`` redacted whole, then cut to at most ``limit`` characters (its last ones with ``tail``).

    Redacting first is the point: a cut through a secret would leave a piece of it that neither
    the registered values nor the patterns recognize. ``None`` gives "".
    """
    s = "" if text is None else str(redact(text if isinstance(text, str) else str(text)))
    if limit <= 0:
        return ""
    return s[-limit:] if tail else s[:limit]


def redact_obj(obj: Any) -> Any:
    """Redact every string inside a JSON-like structure."""
    if isinstance(obj, str):
        return redact(obj)
    if isinstance(obj, dict):
        return {k: redact_obj(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [redact_obj(v) for v in obj]
    return obj


_SECRET_NAME = re.compile(r"(SECRET|TOKEN|BYPASS|PASSWORD|_KEY$|^KEY$|E2E_OAUTH)", re.I)


def register_env_secrets(environ: Mapping[str, str] | None = None) -> None:
    """Register the values of environment variables whose names say they hold a secret."""
    for name, value in (environ if environ is not None else os.environ).items():
        if _SECRET_NAME.search(name) and value and len(value) >= 6:
            register_secret(value)


def register_secret_vars(names: Iterable[str], environ: Mapping[str, str] | None = None) -> None:
    """Register the value of each named environment variable (set ones only), whatever its name."""
    env = environ if environ is not None else os.environ
    for name in names:
        register_secret(env.get(name))


# -- the last pass over a run folder -------------------------------------------------------------

_DATA_URI = re.compile(r"data:image/[a-z+.-]+;base64,[A-Za-z0-9+/=\s]+")
_TEXT_SUFFIXES = {".json", ".jsonl", ".md", ".html", ".htm", ".xml", ".ipynb", ".log", ".yaml", ".yml", ".txt",
                  ".csv"}


def redact_keeping_images(text: str) -> str:
    """Redact every part of ``text`` but embedded ``data:image`` URIs (base64 is no secret and must stay intact)."""
    out, pos = [], 0
    for m in _DATA_URI.finditer(text):
        out += [redact(text[pos:m.start()]), m.group(0)]
        pos = m.end()
    out.append(redact(text[pos:]))
    return "".join(out)


#: A key whose value is a secret whatever the value looks like (``"access_token"``, ``"apiKey"``, a
#: ``"Cookie"`` header): in a parsed file the key is no longer next to its value for the patterns.
_SECRET_KEY = re.compile(r"(?i)(?:token|secret|passw(?:or)?d|passphrase|pwd|credentials?|(?<=[a-z0-9_.-])key"
                         r"|authorization|cookie)$")


def _redact_json(obj: Any, key: str = "") -> Any:
    """:func:`redact_obj` for a parsed file: keys too, a secret-named key's string value whole, and
    base64 images (``"image/png": …``) untouched."""
    if isinstance(obj, str):
        return REDACTED if obj and _SECRET_KEY.search(key) else redact(obj)
    if isinstance(obj, dict):
        return {redact(k): v if k.startswith("image/") and k != "image/svg+xml" else _redact_json(v, str(k))
                for k, v in obj.items()}
    if isinstance(obj, list):
        return [_redact_json(v, key) for v in obj]
    return obj


def _scrub_json_text(text: str, dump: Callable[[Any], str]) -> str:
    try:
        obj = json.loads(text)
    except ValueError:
        return redact_keeping_images(text)  # a torn file (a run killed mid-write): redact it as text
    cleaned = _redact_json(obj)
    return text if cleaned == obj else dump(cleaned)


def _scrub_text(suffix: str, text: str) -> str:
    """The redacted content of a text file of this kind (``text`` itself when nothing is secret).

    JSON is redacted value by value (the raw text would hide a secret behind its escapes, and a
    pattern could cut through one); everything else as text.
    """
    if suffix == ".ipynb":
        return _scrub_json_text(text, lambda o: json.dumps(o, indent=1, ensure_ascii=False) + "\n")
    if suffix == ".json":
        return _scrub_json_text(text, lambda o: json.dumps(o, indent=2, ensure_ascii=False) + "\n")
    if suffix == ".jsonl":
        return "\n".join(line if not line.strip() else _scrub_json_text(line, lambda o: json.dumps(o, ensure_ascii=False))
                         for line in text.split("\n"))
    return redact_keeping_images(text)


def _replace_atomically(path: Path, write: Callable[[Path], None]) -> None:
    tmp = path.with_name(f".{path.name}.scrub-tmp")
    try:
        write(tmp)
        os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _scrub_parquet(path: Path) -> bool:
    """Redact the string (and list-of-string) columns of a Parquet file; True when it was rewritten."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    columns, changed = [], False
    for field, column in zip(table.schema, table.columns):
        kind = field.type
        is_text = pa.types.is_string(kind) or pa.types.is_large_string(kind)
        is_text_list = (pa.types.is_list(kind) or pa.types.is_large_list(kind)) and (
            pa.types.is_string(kind.value_type) or pa.types.is_large_string(kind.value_type))
        if is_text or is_text_list:
            values = column.to_pylist()
            cleaned = [_redact_json(v, field.name) for v in values]
            if cleaned != values:
                column, changed = pa.chunked_array([pa.array(cleaned, type=kind)], type=kind), True
        columns.append(column)
    if changed:
        _replace_atomically(path, lambda tmp: pq.write_table(pa.Table.from_arrays(columns, schema=table.schema), tmp))
    return changed


def scrub_tree(run_dir: str | os.PathLike[str], *, scrubbed: Mapping[str, Sequence[int]] | None = None) -> list[Path]:
    """The last pass over a run folder: rewrite every file whose redacted content differs.

    Text files (json, jsonl, md, html, xml, ipynb, log, yaml, txt, csv) are redacted as a whole
    (JSON ones value by value, so the file stays valid JSON; embedded base64 images are left
    as they are); Parquet files column by column (string and list-of-string columns). Each
    rewrite is an atomic replace. A file with nothing to redact is read once and not written.
    Symbolic links are not followed. ``scrubbed``: files :func:`scrub_files` went over already (by path
    relative to ``run_dir``), skipped while they are unchanged since (the same :func:`signature`).
    Returns the files rewritten.
    """
    rewritten: list[Path] = []
    for folder, dirs, files in os.walk(run_dir):
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(folder, d))]
        for name in sorted(files):
            path = Path(folder) / name
            if path.is_symlink() or name.endswith(".scrub-tmp"):
                continue
            done = (scrubbed or {}).get(os.path.relpath(path, run_dir))
            if done is not None and list(done) == signature(path):
                continue
            if _scrub_file(path):
                rewritten.append(path)
    return rewritten


def scrub_files(run_dir: str | os.PathLike[str], names: Iterable[str]) -> dict[str, list[int]]:
    """:func:`scrub_tree`'s pass over some files of ``run_dir`` (by relative path; those missing are left out),
    as soon as they are written; their :func:`signature` after it, for ``scrub_tree(..., scrubbed=…)``."""
    done = {}
    for name in names:
        path = Path(run_dir) / name
        if path.is_file() and not path.is_symlink():
            _scrub_file(path)
            done[name] = signature(path)
    return done


def signature(path: Path) -> list[int]:
    """What changes when a file is written again: its inode (an atomic replace), size and modification time."""
    st = path.stat()
    return [st.st_ino, st.st_size, st.st_mtime_ns]


def _scrub_file(path: Path) -> bool:
    """Redact one file of a run folder in place (Parquet and text kinds; others are left); True when rewritten."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return _scrub_parquet(path)
    if suffix in _TEXT_SUFFIXES:
        raw = path.read_bytes()
        text = raw.decode("utf-8", errors="surrogateescape")
        cleaned = _scrub_text(suffix, text)
        if cleaned != text:
            data = cleaned.encode("utf-8", errors="surrogateescape")
            _replace_atomically(path, lambda tmp: tmp.write_bytes(data))
            return True
    return False
