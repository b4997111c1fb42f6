"""``matrix.html``: the compatibility matrix as one self-contained page.

No script, no external stylesheet, font or image, and a Content-Security-Policy that forbids
loading anything, so opening a report never touches the network. Every piece of text goes
through :func:`html.escape`: messages quote raw wire bytes and JSON.
"""

from __future__ import annotations

from html import escape

from gatecheck.report._matrix import MISSING, NO_CHECKS, Cell, Matrix
from gatecheck.report._run_info import RunInfo, TargetInfo
from gatecheck.report._text import visible
from gatecheck.results import VERDICTS, CheckResult, Verdict

_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5rem; color: #1d1d1f; }
h1 { font-size: 1.4rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
.meta { color: #555; }
table { border-collapse: collapse; }
th, td { border: 1px solid #d0d0d0; padding: .3rem .5rem; vertical-align: top; text-align: left; }
tr.area th { background: #eef1f5; }
td.v { text-align: center; min-width: 5rem; }
.PASS { background: #d9f2dc; } .WARN { background: #fff1c2; }
.FAIL { background: #f8d0d0; } .XFAIL { background: #e4dcf7; } .SKIP { background: #e6e6e6; }
.MISSING { color: #888; }
details { text-align: left; } summary { cursor: pointer; font-weight: 600; text-align: center; }
pre { white-space: pre-wrap; overflow-wrap: anywhere; max-width: 60rem; font-size: 12px;
      background: #fafafa; border: 1px solid #ddd; padding: .4rem; }
.bar { display: flex; width: 30rem; height: 1rem; border: 1px solid #bbb; }
.bar span { display: block; height: 100%; }
.summary td { text-align: right; } .summary td:first-child, .summary td:nth-child(2) { text-align: left; }
code { font-size: 12px; }
"""


_POLICY = "default-src 'none'; style-src 'unsafe-inline'"
"""Nothing may load: no script, no fetch, no font or image; only the inline stylesheet applies."""


def render_html(matrix: Matrix, info: RunInfo) -> str:
    """The whole page: header, one summary bar per target, the matrix with expandable details."""
    body = "\n".join([_header(info), _summary(matrix, info), _matrix_table(matrix)])
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{_POLICY}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        "<title>gatecheck conformance matrix</title>\n"
        f"<style>{_STYLE}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


def text(value: str) -> str:
    """``value`` escaped for an HTML text node or attribute, invisible characters shown."""
    return escape(visible(value), quote=True)


def _header(info: RunInfo) -> str:
    profile = text(info.profile) if info.profile else "per target"
    started = text(info.started) if info.started else "not recorded"
    partial = "<p><strong>Interrupted</strong>: the run was stopped before every check had run.</p>\n"
    return (
        "<h1>gatecheck conformance matrix</h1>\n"
        + (partial if info.interrupted else "")
        + f'<p class="meta">gatecheck {text(info.tool_version)} · started {started} · '
        f"finished {text(info.finished)} · profile {profile}</p>"
    )


def _summary(matrix: Matrix, info: RunInfo) -> str:
    head = "".join(f'<th class="{v}">{v}</th>' for v in VERDICTS)
    rows = "\n".join(_summary_row(matrix, target) for target in info.targets)
    return (
        '<h2>Targets</h2>\n<table class="summary">\n'
        f"<tr><th>target</th><th>base URL</th><th>profile</th>{head}<th>results</th></tr>\n{rows}\n</table>"
    )


def _summary_row(matrix: Matrix, target: TargetInfo) -> str:
    counts = matrix.counts(target.name)
    base_url = f"<code>{text(target.base_url)}</code>" if target.base_url else target.no_url_reason
    profile = text(target.profile) if target.profile else MISSING
    numbers = "".join(f"<td>{counts[v]}</td>" for v in VERDICTS)
    cells = (
        f"<td>{text(target.name)}</td><td>{base_url}</td><td>{profile}</td>{numbers}<td>{_bar(counts)}</td>"
    )
    return f"<tr>{cells}</tr>"


def _bar(counts: dict[Verdict, int]) -> str:
    """A stacked bar of the verdict counts, widths in percent of the target's results."""
    total = sum(counts.values())
    if total == 0:
        return '<div class="bar" title="no results"></div>'
    segments = "".join(
        f'<span class="{v}" style="width:{100 * counts[v] / total:.2f}%" title="{v}: {counts[v]}"></span>'
        for v in VERDICTS
        if counts[v]
    )
    return f'<div class="bar">{segments}</div>'


def _matrix_table(matrix: Matrix) -> str:
    if not matrix.rows:
        return f"<h2>Matrix</h2>\n<p>{NO_CHECKS}</p>"
    width = len(matrix.targets) + 1
    lines = [
        "<h2>Matrix</h2>",
        f"<p>{MISSING} means the check did not run against that target; "
        "click a verdict to see what went wrong and how to reproduce it.</p>",
        '<table class="matrix">',
        "<tr><th>check</th>" + "".join(f"<th>{text(t)}</th>" for t in matrix.targets) + "</tr>",
    ]
    for area, rows in matrix.areas():
        lines.append(f'<tr class="area"><th colspan="{width}">{text(area)}</th></tr>')
        for row in rows:
            cells = "".join(_cell(row.cells.get(t)) for t in matrix.targets)
            lines.append(f"<tr><td><code>{text(row.check_id)}</code></td>{cells}</tr>")
    lines.append("</table>")
    return "\n".join(lines)


def _cell(cell: Cell | None) -> str:
    if cell is None:
        return f'<td class="v MISSING">{MISSING}</td>'
    if not cell.noteworthy:
        return f'<td class="v {cell.verdict}">{text(cell.label)}</td>'
    details = "".join(_detail(result) for result in cell.noteworthy)
    summary = f"<summary>{text(cell.label)}</summary>"
    return f'<td class="v {cell.verdict}"><details>{summary}{details}</details></td>'


def _detail(result: CheckResult) -> str:
    citation = text(result.citation) if result.citation else "not cited"
    message = text(result.message) if result.message else "(no message)"
    return (
        f"<p>{result.verdict} · documented in: {citation} · {result.duration_s:.3f} s</p><pre>{message}</pre>"
    )
