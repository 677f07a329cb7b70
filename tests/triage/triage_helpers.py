"""Build JUnit XML in tests, the way pytest writes it."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from netra_nb.triage import JUnitCase

DATA = Path(__file__).resolve().parent / "data"


def junit_case(name: str = "test_x", *, classname: str = "tests.e2e.staging.test_mod.TestMod", time: float | None = 1.5,
               outcome: str = "passed", message: str = "", text: str = "", type: str = "", stdout: str = "",
               stderr: str = "", properties: tuple[tuple[str, str], ...] = (), source: str = "") -> JUnitCase:
    return JUnitCase(file="suite.xml", suite="pytest", classname=classname, name=name, time_s=time, outcome=outcome,
                     type=type, message=message, text=text, stdout=stdout, stderr=stderr, properties=properties,
                     source=source)


def failing(message: str, **kw) -> JUnitCase:
    return junit_case(outcome="failure", message=message, text=f"E   {message}", **kw)


def write_xml(path: Path, *cases: dict, bare: bool = False, suite_attrs: dict | None = None,
              suite_properties: dict | None = None) -> Path:
    """cases: dicts with name, classname, time, and optional failure/error/skipped (message, text), out, err, props."""
    suite = ET.Element("testsuite", name="pytest", tests=str(len(cases)), **(suite_attrs or {}))
    if suite_properties:
        props = ET.SubElement(suite, "properties")
        for k, v in suite_properties.items():
            ET.SubElement(props, "property", name=k, value=v)
    for c in cases:
        attrs = {k: str(v) for k, v in c.items() if k in ("name", "classname", "time", "file", "line")}
        el = ET.SubElement(suite, "testcase", **attrs)
        if c.get("props"):
            props = ET.SubElement(el, "properties")
            for k, v in c["props"].items():
                ET.SubElement(props, "property", name=k, value=v)
        for tag in ("failure", "error", "skipped"):
            if tag in c:
                message, text = c[tag]
                ET.SubElement(el, tag, message=message).text = text
        if "out" in c:
            ET.SubElement(el, "system-out").text = c["out"]
        if "err" in c:
            ET.SubElement(el, "system-err").text = c["err"]
    root = suite
    if not bare:
        root = ET.Element("testsuites")
        root.append(suite)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    return path
