"""The terminal summary ``gatecheck conform`` prints: counts per target, then the ids that need a look."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

from gatecheck.report._matrix import Matrix, build_matrix
from gatecheck.report._text import visible
from gatecheck.results import VERDICTS, CheckResult, Verdict

_WIDTH = 100
_ATTENTION: tuple[Verdict, ...] = ("FAIL", "WARN", "XFAIL")


def summary_table(results: Sequence[CheckResult]) -> str:
    """A plain-text table: one line of counts per target, each followed by its FAIL, WARN and XFAIL ids."""
    matrix = build_matrix(results)
    if not matrix.targets:
        return "no results"
    name_width = max(len("target"), *(len(visible(t)) for t in matrix.targets))
    lines = ["target".ljust(name_width) + "".join(f"  {v:>5}" for v in VERDICTS)]
    for target in matrix.targets:
        counts = matrix.counts(target)
        lines.append(visible(target).ljust(name_width) + "".join(f"  {counts[v]:>5}" for v in VERDICTS))
        lines.extend(_attention_lines(matrix, target))
    return "\n".join(lines)


def _attention_lines(matrix: Matrix, target: str) -> list[str]:
    lines: list[str] = []
    for verdict in _ATTENTION:
        ids = matrix.check_ids(target, verdict)
        if ids:
            lines += textwrap.wrap(
                ", ".join(visible(i) for i in ids),
                width=_WIDTH,
                initial_indent=f"  {verdict}: ",
                subsequent_indent=" " * (len(verdict) + 4),
                break_on_hyphens=False,
            )
    return lines
