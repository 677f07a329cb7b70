"""Secrets for a notebook's kernel: the ``export`` lines ``netra-nb serve`` writes to ``.netra-nb.env``.

A kernel started by JupyterLab does not see what a terminal exported after Lab started, so a key
``netra-nb serve`` printed never reaches it (every token check: ``config_error``). ``serve`` also
writes its ``export NAME=value`` lines to ``.netra-nb.env`` in the repository root (mode 0600), and
``import netra_nb`` inside a kernel reads that file: each variable the environment does not set yet
is set, and its value registered for redaction. The environment always wins, and a file that other
users may read or write is refused: secrets still come from the environment and nowhere else.
"""

from __future__ import annotations

import os
import shlex
import stat
import sys
from pathlib import Path
from typing import MutableMapping

from .params import ConfigError, params_dir
from .redact import register_secret

__all__ = ["ENV_FILE", "env_file_path", "parse_env_file", "load_env_file", "load_in_kernel"]

ENV_FILE = ".netra-nb.env"


def env_file_path() -> Path:
    """``.netra-nb.env`` beside the ``params/`` folder in use (the repository root)."""
    return params_dir().parent / ENV_FILE


def parse_env_file(text: str, source: str = ENV_FILE) -> dict[str, str]:
    """``NAME=value`` pairs of ``export NAME=value`` lines (``export`` optional, values shell-quoted as a
    shell would read them); blank lines and ``#`` comments are skipped. A line that is none of these
    raises :class:`ConfigError` naming the file and line."""
    out: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            words = shlex.split(line, comments=True)
        except ValueError as exc:
            raise ConfigError(f"{source}:{number}: not a shell line ({exc})") from None
        if words and words[0] == "export":
            words = words[1:]
        name, sep, value = (words[0] if len(words) == 1 else "").partition("=")
        if not sep or not name.isidentifier():
            raise ConfigError(f"{source}:{number}: expected 'export NAME=value'")
        out[name] = value
    return out


def load_env_file(path: Path | None = None, environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Set the variables of ``path`` (default :func:`env_file_path`) that ``environ`` (default
    ``os.environ``) lacks, register their values as secrets, and return their names; nothing when the
    file does not exist. A file readable or writable by group or others raises :class:`ConfigError`."""
    path = Path(path) if path is not None else env_file_path()
    environ = os.environ if environ is None else environ
    try:
        info = path.stat()
    except FileNotFoundError:
        return []
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{path}: refusing a secrets file that other users may read or write "
                          f"(mode {stat.S_IMODE(info.st_mode):04o}); chmod 600 {path}")
    pairs = parse_env_file(path.read_text(encoding="utf-8"), str(path))
    loaded = []
    for name, value in pairs.items():
        register_secret(value)
        if name not in environ:
            environ[name] = value
            loaded.append(name)
    return loaded


def load_in_kernel() -> None:
    """In a Jupyter kernel, load :func:`env_file_path` and say which variables it set (names only);
    a problem is printed, never raised: importing the kit must not fail over it."""
    if "ipykernel" not in sys.modules:
        return
    try:
        loaded = load_env_file()
    except (ConfigError, OSError) as exc:
        print(f"netra-nb: {exc}", file=sys.stderr)
        return
    if loaded:
        print(f"netra-nb: set {', '.join(loaded)} from {env_file_path()}", file=sys.stderr)
