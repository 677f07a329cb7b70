"""report.html in a real browser (headless Chromium), offline: the verdict shows and every image loads."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.notebook]

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)

# The wrapper loads the report in an iframe and writes what it finds into its own DOM, which --dump-dom prints.
WRAPPER = """<!DOCTYPE html>
<html><body><pre id="result">pending</pre>
<iframe id="report" src="REPORT_URL" style="width:1280px;height:2000px"></iframe>
<script>
document.getElementById("report").addEventListener("load", () => {
  const doc = document.getElementById("report").contentDocument;
  const imgs = Array.from(doc.images);
  const h1 = doc.querySelector("h1");
  document.getElementById("result").textContent = JSON.stringify({
    images: imgs.length,
    loaded: imgs.filter(i => i.complete && i.naturalWidth > 0).length,
    widths: imgs.map(i => i.naturalWidth),
    h1: h1 ? h1.innerText : null,
    firstText: doc.body.innerText.trim().slice(0, 200),
    codeInputs: doc.querySelectorAll(".jp-CodeCell .jp-InputArea").length,
  });
});
</script></body></html>
"""


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'chromium-profile'}",
             # No network at all: any http(s) resource the page wanted would fail to resolve.
             "--host-resolver-rules=MAP * ~NOTFOUND"]
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=90)


def test_report_renders_offline_with_every_image(built_e1, tmp_path):
    report = built_e1["html"]
    assert report is not None
    wrapper = tmp_path / "wrapper.html"
    wrapper.write_text(WRAPPER.replace("REPORT_URL", report.as_uri()))
    done = _chromium(tmp_path, "--allow-file-access-from-files", "--virtual-time-budget=10000", "--dump-dom",
                     wrapper.as_uri())
    m = re.search(r'<pre id="result">(.*?)</pre>', done.stdout, re.S)
    assert m, done.stdout[-2000:] + done.stderr[-2000:]
    result = json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    pngs = list((built_e1["dir"] / "charts").glob("*.png"))
    assert result["images"] == len(pngs) > 0
    assert result["loaded"] == result["images"], result["widths"]
    assert result["h1"].startswith("✘ The golden path is NOT working")
    assert result["firstText"].startswith("✘ The golden path is NOT working")  # the headline comes first
    assert result["codeInputs"] == 0


def test_report_screenshot(built_e1, tmp_path):
    shot = tmp_path / "report.png"
    done = _chromium(tmp_path, "--hide-scrollbars", f"--screenshot={shot}", "--window-size=1280,4000",
                     built_e1["html"].as_uri())
    assert shot.exists(), done.stderr[-2000:]
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 100_000  # a page with content, not a blank
