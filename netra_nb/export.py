"""The executed report: running ``notebooks/90_run_report.ipynb`` for a run folder and exporting it (or
any executed notebook) to HTML that opens offline, with no code, images embedded and secrets redacted."""

from __future__ import annotations

import functools
import html
import json
import logging
import re
from pathlib import Path
from typing import Any

from .narrative import page_title
from .redact import redact_keeping_images
from .registry import ICON_COLORS, NOTEBOOKS, notebooks_dir
from .runfolder import load_run


# -- the executed report ---------------------------------------------------------------------------

def notebook_path() -> Path:
    return notebooks_dir() / NOTEBOOKS["report"]


# The lab template without the <script src> tags that fetch require.js, MathJax and Mermaid from a CDN:
# the report must open with no network access.
_OFFLINE_TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{% block extra_css %}<style>
body { max-width: 1200px; margin: 0 auto; }
.jp-RenderedHTMLCommon table { font-size: 12.5px; }
.jp-RenderedHTMLCommon h1 { font-size: 1.9em; line-height: 1.25; }
.jp-RenderedImage img { max-width: 100%; height: auto; }
.jp-RenderedMarkdown .highlight pre { background: #f6f8fa; border-left: 3px solid #b0bec5; padding: 6px 10px;
  white-space: pre-wrap; overflow-wrap: anywhere; font-size: 12px; margin: 2px 0 16px 0; }
</style>{% endblock extra_css %}
"""
_REMOTE_SCRIPT = re.compile(r"<script\b[^>]*\bsrc\s*=\s*[\"']?(?:https?:)?//[^>]*>.*?</script\s*>", re.I | re.S)
_REMOTE_LINK = re.compile(r"<link\b[^>]*\bhref\s*=\s*[\"']?(?:https?:)?//[^>]*>", re.I)
_REMOTE_IMPORT = re.compile(r"<script\b[^>]*>(?:(?!</script).)*?import\(\s*[\"']https?://.*?</script\s*>", re.I | re.S)


def _alt_texts(page: str, nb: Any) -> str:
    """Give each embedded image the alt text its output carries (``metadata.alt``), matched by its data."""
    alts: dict[str, str] = {}
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = (out.get("data") or {}).get("image/png")
            meta = out.get("metadata") or {}
            alt = (meta.get("image/png") or {}).get("alt") or meta.get("alt")
            if data and alt:
                alts["".join(data.split())[:200]] = str(alt)
    if not alts:
        return page

    def fix(m: re.Match[str]) -> str:
        tag = m.group(0)
        src = re.search(r'src="data:image/png;base64,([^"]+)"', tag)
        alt = alts.get("".join(src.group(1).split())[:200]) if src else None
        if not alt:
            return tag
        return re.sub(r'\balt="[^"]*"', lambda _: f'alt="{html.escape(alt)}"', tag)

    return re.sub(r"<img\b[^>]*>", fix, page)


def _color_icons(page: str) -> str:
    """Colour the status symbols in the page's text (never inside a tag, the title, a style or a script)."""
    pattern = re.compile("[" + "".join(ICON_COLORS) + "]")
    parts = re.split(r"(<title.*?</title>|<style.*?</style>|<script.*?</script>|<[^>]*>)", page, flags=re.S)
    for i, part in enumerate(parts):
        if i % 2 == 0 and part:
            parts[i] = pattern.sub(lambda m: f'<span style="color:{ICON_COLORS[m.group(0)]};font-weight:bold">'
                                             f"{m.group(0)}</span>", part)
    return "".join(parts)


@functools.lru_cache(maxsize=1)
def _html_exporter() -> Any:
    """The one HTML exporter of this process: building it compiles nbconvert's templates (half a second),
    which later exports reuse."""
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab", extra_loaders=[DictLoader({"netra_offline.html.j2": _OFFLINE_TEMPLATE})])
    exporter.template_file = "netra_offline.html.j2"
    exporter.exclude_input = True
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    exporter.exclude_anchor_links = True
    exporter.embed_images = True
    # nbconvert warns about images without alt text and then fills a placeholder; _alt_texts puts ours.
    exporter.log = logging.getLogger("netra_nb.report.nbconvert")
    exporter.log.setLevel(logging.ERROR)
    return exporter


def prepare_export() -> None:
    """Import nbconvert and compile the report page's templates now (the runner calls this while the
    checks run, so that the export after the report costs only the rendering)."""
    import nbformat

    _html_exporter().from_notebook_node(nbformat.v4.new_notebook(), resources={"metadata": {"name": ""}})


def export_html(notebook: Any, html_path: str | Path, *, title: str = "Netra run report") -> Path:
    """Export an executed notebook node to a self-contained, offline HTML page without code cells."""
    import nbformat

    nb = nbformat.from_dict(notebook) if not isinstance(notebook, nbformat.NotebookNode) else notebook
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))  # a copy: the stored report.ipynb keeps everything
    # Cells tagged "hide-in-report" speak to the engineer in JupyterLab, not to the page's reader.
    nb.cells = [c for c in nb.cells if "hide-in-report" not in c.get("metadata", {}).get("tags", [])]
    for cell in nb.cells:
        if cell.get("cell_type") == "code":
            # Warnings on stderr belong in report.ipynb, not in the page for the incident review.
            cell["outputs"] = [o for o in cell.get("outputs", [])
                               if not (o.get("output_type") == "stream" and o.get("name") == "stderr")]
    body, _ = _html_exporter().from_notebook_node(nb, resources={"metadata": {"name": title}})
    body = _alt_texts(body, nb)
    body = _REMOTE_IMPORT.sub("", _REMOTE_LINK.sub("", _REMOTE_SCRIPT.sub("", body)))
    body = _color_icons(redact_keeping_images(body))
    path = Path(html_path)
    path.write_text(body, encoding="utf-8")
    return path


def export_report(run_dir: str | Path, notebook: Any) -> Path:
    """Export the executed report notebook of ``run_dir`` to ``run_dir/report.html``; return its path."""
    run_dir = Path(run_dir)
    return export_html(notebook, run_dir / "report.html", title=page_title(load_run(run_dir)))


def export_report_file(run_dir: str | Path) -> Path:
    """:func:`export_report` of the executed ``run_dir/report.ipynb`` (the runner's report kernel calls it once
    the notebook has run)."""
    import nbformat

    run_dir = Path(run_dir)
    return export_report(run_dir, nbformat.read(str(run_dir / "report.ipynb"), as_version=4))


def build_report(run_dir: str | Path, *, timeout: float = 300) -> Path | None:
    """Execute the report notebook for ``run_dir`` into ``run_dir/report.ipynb`` (in a kernel of its
    own) and export ``run_dir/report.html``; return the HTML's path.

    ``timeout`` is the limit in seconds for the whole notebook. When the notebook raises or runs out
    of time, ``report.ipynb`` is kept (with the error) and None is returned. (``netra-nb run``
    executes the same notebook in a kernel it started with the phases: :mod:`netra_nb.runner`.)
    """
    import time

    import nbformat

    from .engine import run_notebook

    run_dir = Path(run_dir).resolve()
    out_nb = run_dir / "report.ipynb"
    result = run_notebook(notebook_path(), out_nb, {"run_dir": str(run_dir)}, time.monotonic() + timeout,
                          run_dir / "kernels.log")
    if result["status"] != "ok":
        return None
    return export_report_file(run_dir)
