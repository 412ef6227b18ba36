"""JUnit XML: one test case per gate (and one for the verdict), so CI systems show pass/fail."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from heldout.report._view import ReportView

__all__ = ["render_junit"]


def render_junit(view: ReportView) -> str:
    """Failed gates are failures, unresolved ones errors (undecided), passed ones pass."""
    r = view.result
    suite = ET.Element("testsuite", name=f"heldout {r.plan_name}", tests=str(len(r.gates) + 1))
    failures = errors = 0
    for g in r.gates:
        case = ET.SubElement(suite, "testcase", classname="heldout.guardrails", name=g.name)
        if g.status == "fail":
            failures += 1
            ET.SubElement(case, "failure", message=g.description).text = g.description
        elif g.status == "unresolved":
            errors += 1
            ET.SubElement(case, "error", message=g.description).text = g.description
    case = ET.SubElement(suite, "testcase", classname="heldout", name="verdict")
    if r.verdict.status != "success":
        failures += 1
        text = "\n".join(r.verdict.reasons)
        ET.SubElement(case, "failure", message=f"verdict: {r.verdict.status}").text = text
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"
