"""``matrix.md``: the compatibility matrix as a Markdown page (GitHub-flavoured tables).

Names and citations are escaped as inline text, ids go in code spans, messages in fenced blocks
whose fence is longer than any backtick run they contain, so nothing a gateway sends back can
close a block early or turn into markup.
"""

from __future__ import annotations

import re

from gatecheck.report._matrix import MISSING, NO_CHECKS, Matrix
from gatecheck.report._run_info import RunInfo
from gatecheck.report._text import visible
from gatecheck.results import VERDICTS, CheckResult

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&#!])")
_BACKTICKS = re.compile(r"`+")


def render_markdown(matrix: Matrix, info: RunInfo) -> str:
    """The whole page: header, per-target totals, the matrix, then the details of every non-PASS."""
    sections = [_header(info), _totals(matrix, info), _matrix_table(matrix), _details(matrix)]
    return "\n\n".join(sections) + "\n"


def inline(text: str) -> str:
    """Plain text safe inside a paragraph or a table cell."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(visible(text).split()))


def code_span(text: str, *, in_table: bool = False) -> str:
    """``text`` as a code span, delimited by more backticks than it contains."""
    text = " ".join(visible(text).split())
    ticks = "`" * (_longest_backtick_run(text) + 1)
    padded = f" {text} " if text.startswith("`") or text.endswith("`") else text
    if in_table:
        padded = padded.replace("|", "\\|")
    return f"{ticks}{padded}{ticks}"


def fenced(text: str) -> str:
    """``text`` as a fenced code block no line of it can close."""
    text = visible(text)
    fence = "`" * max(3, _longest_backtick_run(text) + 1)
    return f"{fence}text\n{text}\n{fence}"


def _longest_backtick_run(text: str) -> int:
    return max((len(run) for run in _BACKTICKS.findall(text)), default=0)


def _header(info: RunInfo) -> str:
    lines = [
        "# gatecheck conformance matrix",
        "",
        f"- gatecheck {inline(info.tool_version)}",
        f"- started: {info.started or 'not recorded'}; finished: {info.finished}",
        f"- profile: {inline(info.profile) if info.profile else 'per target (see below)'}",
    ]
    if info.interrupted:
        lines.append(
            "- **interrupted**: the run was stopped before every check had run; the results are partial"
        )
    return "\n".join(lines)


def _totals(matrix: Matrix, info: RunInfo) -> str:
    lines = [
        "## Targets",
        "",
        "| target | base URL | profile | " + " | ".join(VERDICTS) + " |",
        "| --- | --- | --- | " + " | ".join("---:" for _ in VERDICTS) + " |",
    ]
    for target in info.targets:
        counts = matrix.counts(target.name)
        base_url = code_span(target.base_url, in_table=True) if target.base_url else target.no_url_reason
        profile = inline(target.profile) if target.profile else MISSING
        numbers = " | ".join(str(counts[v]) for v in VERDICTS)
        lines.append(f"| {inline(target.name)} | {base_url} | {profile} | {numbers} |")
    return "\n".join(lines)


def _matrix_table(matrix: Matrix) -> str:
    if not matrix.rows:
        return f"## Matrix\n\n{NO_CHECKS}"
    lines = [
        "## Matrix",
        "",
        f"{MISSING} means the check did not run against that target.",
        "",
        "| area | check | " + " | ".join(inline(t) for t in matrix.targets) + " |",
        "| --- | --- | " + " | ".join(":---:" for _ in matrix.targets) + " |",
    ]
    for area, rows in matrix.areas():
        for row in rows:
            cells = [row.cells[t].label if t in row.cells else MISSING for t in matrix.targets]
            check = code_span(row.check_id, in_table=True)
            lines.append(f"| {inline(area)} | {check} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _details(matrix: Matrix) -> str:
    details = matrix.details()
    if not details:
        return "## Details\n\n" + ("Every check that ran passed." if matrix.rows else NO_CHECKS)
    return "## Details\n\n" + "\n\n".join(_detail(result) for result in details)


def _detail(result: CheckResult) -> str:
    lines = [
        f"### {result.verdict}: {code_span(result.check_id)} on {inline(result.target)}",
        "",
        f"- area: {inline(result.area)}",
        f"- documented in: {inline(result.citation) if result.citation else 'not cited'}",
        f"- duration: {result.duration_s:.3f} s",
        "",
        fenced(result.message or "(no message)"),
    ]
    return "\n".join(lines)
