"""Build the triage corpus: real JUnit XML whose expected categories are in ``expected.csv`` and
``profiles.csv``. Two sources, each reproducible:

``library``
    Runs ``library_suite.py`` (failures raised by websockets, httpx/httpcore/h11, aiohttp, ssl and
    asyncio themselves) with ``--python``, a venv holding the staging suite's pins (websockets
    15.0.1, httpx 0.28.1, aiohttp 3.14.5, pytest 8.4.2), inside ``unshare -rn`` (loopback only),
    and keeps ``library.xml.gz``.

``platform [PROFILE ...]``
    Takes the platform's own staging suite's JUnit (``tests/e2e/staging`` of netra-systems/zen, run
    by ``/tmp/zen_tools/inner_refserver.sh`` against ``netra-nb serve --era mid --fault PROFILE``
    behind a 100 ms RTT proxy, with the prints and logs captured: ``DELAY_MS=50 ...
    inner_refserver.sh mid PROFILE rtt100_PROFILE --capture=fd -o junit_logging=all $SUITE``) from
    ``--junit-dir`` (the folder the run's ``JUNIT_DIR`` named) and keeps ``platform/PROFILE.xml.gz``.
    ``none`` is the healthy baseline. Adding a profile: run the suite for it,
    ``make_corpus.py platform --junit-dir DIR PROFILE``, and add its row(s) to ``profiles.csv``.

Every text and attribute is redacted with the kit's :func:`netra_nb.redact.redact`, with the
reference platform's test secrets registered (read from ``inner_refserver.sh``), before it is
written; the files are gzipped (the suite's structured logs repeat themselves) with a fixed mtime.
"""

from __future__ import annotations

import argparse
import gzip
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

from netra_nb.redact import redact, register_secret

HERE = Path(__file__).resolve().parent
INNER = Path("/tmp/zen_tools/inner_refserver.sh")


def register_test_secrets(script: Path = INNER) -> None:
    """The reference platform's signing secret and bypass key of the suite runs, and the 8-character
    prefix of the key that the suite prints ("Bypass key (first 8 chars): …")."""
    if not script.is_file():
        return
    for name in ("REF_SECRET", "REF_KEY"):
        m = re.search(rf'^{name}="([^"]+)"', script.read_text(), re.MULTILINE)
        if m:
            register_secret(m.group(1))
            register_secret(m.group(1)[:8])


def redacted_xml(source: Path) -> bytes:
    """``source`` (JUnit XML) with every text, tail and attribute value redacted."""
    tree = ET.parse(source)
    for element in tree.iter():
        element.text = redact(element.text) if element.text else element.text
        element.tail = redact(element.tail) if element.tail else element.tail
        for key, value in element.attrib.items():
            element.attrib[key] = redact(value)
    return ET.tostring(tree.getroot(), encoding="utf-8", xml_declaration=True)


def write_gz(data: bytes, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as gz:
        gz.write(data)
    print(f"{target.relative_to(HERE)}: {len(data)} bytes, {target.stat().st_size} gzipped")


def library(python: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(HERE / "library_suite.py", tmp)
        junit = Path(tmp) / "library.xml"
        command = (f"ip link set lo up && cd {tmp} && {python} -m pytest -p no:cacheprovider -q --tb=short "
                   f"-o junit_logging=all --junitxml={junit} library_suite.py")
        run = subprocess.run(["unshare", "-rn", "bash", "-c", command], capture_output=True, text=True)
        print(run.stdout.strip().splitlines()[-1] if run.stdout.strip() else run.stderr[-2000:])
        if not junit.is_file():
            sys.exit("the library suite wrote no JUnit")
        write_gz(redacted_xml(junit), HERE / "library.xml.gz")


def platform(junit_dir: Path, profiles: list[str]) -> None:
    for profile in profiles:
        source = junit_dir / f"rtt100_{profile}.xml"
        if not source.is_file():
            sys.exit(f"{source}: no such JUnit file (run the suite for {profile} first)")
        write_gz(redacted_xml(source), HERE / "platform" / f"{profile}.xml.gz")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    lib = sub.add_parser("library")
    lib.add_argument("--python", required=True, help="a Python with websockets 15, httpx, aiohttp and pytest")
    plat = sub.add_parser("platform")
    plat.add_argument("profiles", nargs="*", help="default: every rtt100_*.xml in --junit-dir")
    plat.add_argument("--junit-dir", type=Path, default=Path("/work/helpers/junit/triage"))
    args = parser.parse_args()
    register_test_secrets()
    if args.what == "library":
        library(args.python)
    else:
        profiles = args.profiles or sorted(p.stem.removeprefix("rtt100_") for p in args.junit_dir.glob("rtt100_*.xml"))
        platform(args.junit_dir, profiles)


if __name__ == "__main__":
    main()
