"""Conformance reports: JSON results, Markdown and HTML compatibility matrices, a terminal summary.

JUnit XML is not written here: pytest writes it (``--junitxml``), one testcase per check id.
The load-test pages live in ``gatecheck.load.html``.
"""

from __future__ import annotations

from gatecheck.report._matrix import MISSING
from gatecheck.report._summary import summary_table
from gatecheck.report.conformance import JUNIT_FILE, REPORT_FILES, write_reports

__all__ = ["JUNIT_FILE", "MISSING", "REPORT_FILES", "summary_table", "write_reports"]
