"""JUnit XML as CI shows it: the target's name on the suite and every classname, WARNs visible.

pytest writes the file (``--junitxml``, pointed by the pytest plugin at ``<report-dir>/junit.xml``);
at the end of the run the plugin calls ``annotate_junit`` on it, which rewrites it in place:

- ``<testsuites>`` and ``<testsuite>`` named ``gatecheck.<target>`` and every testcase's
  ``classname="gatecheck.<target>.<area>"``, so the results of several targets (one JUnit file
  each) never merge into one in a CI dashboard;
- a WARN testcase (a pass in JUnit terms) gets ``<property name="gatecheck.warning" value="<first
  line>"/>`` and a ``<system-out>`` holding ``gatecheck WARN: <check id> (<target>)`` and the message;
- an XFAIL testcase (a known deviation: pytest writes ``<skipped type="pytest.xfail">`` with the
  entry's reason) gets ``<property name="gatecheck.known" value="<the entry that accepts it>"/>``
  and a ``<system-out>`` holding ``gatecheck XFAIL: <check id> (<target>)`` and the message;
- every text and attribute is scrubbed of the run's keys (the last pass before CI sees it).

Testcase names stay the check ids (as in ``results.json``).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from pathlib import Path

from gatecheck.report._redact import Redactor
from gatecheck.results import CheckResult

WARNING_PROPERTY = "gatecheck.warning"
KNOWN_PROPERTY = "gatecheck.known"
_NOTED = {"WARN": WARNING_PROPERTY, "XFAIL": KNOWN_PROPERTY}
"""The verdicts JUnit has no outcome for that a pass or a skip would hide, and their property."""


def suite_name(target: str) -> str:
    """The testsuite name (and classname prefix) of a run against ``target``."""
    return f"gatecheck.{target}"


def annotate_junit(
    path: Path, target: str, results: Sequence[CheckResult], secrets: Iterable[object] = ()
) -> None:
    """Rewrite the JUnit file at ``path``: target in suite and class names, WARNs shown, keys scrubbed."""
    tree = ET.parse(path)
    root = tree.getroot()
    by_id = {r.check_id: r for r in results if r.target == target}
    if root.tag == "testsuites":
        root.set("name", suite_name(target))
    for suite in root.iter("testsuite"):
        suite.set("name", suite_name(target))
        for case in suite.iter("testcase"):
            _annotate_case(case, target, by_id.get(case.get("name", "")))
    _scrub(root, Redactor(secrets))
    tree.write(path, encoding="utf-8", xml_declaration=True)


def _annotate_case(case: ET.Element, target: str, result: CheckResult | None) -> None:
    area = result.area if result is not None else case.get("classname", "")
    case.set("classname", f"{suite_name(target)}.{area}" if area else suite_name(target))
    if result is None or result.verdict not in _NOTED:
        return
    first_line = result.message.split("\n", 1)[0]
    properties = case.find("properties")
    if properties is None:
        properties = ET.Element("properties")
        case.insert(0, properties)
    ET.SubElement(properties, "property", name=_NOTED[result.verdict], value=first_line)
    note = f"gatecheck {result.verdict}: {result.check_id} ({target})\n{result.message}\n"
    out = case.find("system-out")
    if out is None:
        out = ET.Element("system-out")
        err = case.find("system-err")
        case.insert(list(case).index(err) if err is not None else len(case), out)
    out.text = note + (out.text or "")


def _scrub(root: ET.Element, redactor: Redactor) -> None:
    for element in root.iter():
        if element.text:
            element.text = redactor.text(element.text)
        if element.tail:
            element.tail = redactor.text(element.tail)
        for name, value in element.attrib.items():
            element.set(name, redactor.text(value))
