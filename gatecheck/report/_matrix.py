"""The compatibility matrix every human-readable writer renders: checks by area against targets.

Built once from the results so the Markdown page, the HTML page and the terminal summary agree on
order, on what a cell shows and on the totals. Rows keep the order in which checks first ran;
a check reported more than once for one target (a parametrised check) is one cell showing its most
alarming verdict, and counts always count records, as the JSON file does.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from gatecheck.results import VERDICTS, CheckResult, Verdict

MISSING = "—"
"""What a cell shows when the check did not run against that target."""

NO_CHECKS = "No checks ran."
"""What the pages say instead of an empty matrix."""

_ALARM: dict[Verdict, int] = {"FAIL": 4, "WARN": 3, "XFAIL": 2, "SKIP": 1, "PASS": 0}


@dataclass(frozen=True, slots=True)
class Cell:
    """Every result of one check against one target (usually exactly one)."""

    results: tuple[CheckResult, ...]

    @property
    def verdict(self) -> Verdict:
        """The most alarming verdict: FAIL, WARN, XFAIL (a known deviation), SKIP (something went
        unverified), then PASS."""
        return max((r.verdict for r in self.results), key=_ALARM.__getitem__)

    @property
    def label(self) -> str:
        """The verdict, with the number of results when there are several (``FAIL ×3``)."""
        count = len(self.results)
        return self.verdict if count == 1 else f"{self.verdict} ×{count}"

    @property
    def noteworthy(self) -> tuple[CheckResult, ...]:
        """The results a reader must see the message of: everything but PASS."""
        return tuple(r for r in self.results if r.verdict != "PASS")


@dataclass(frozen=True, slots=True)
class Row:
    """One check: its area, its id and a cell per target it ran against."""

    area: str
    check_id: str
    cells: dict[str, Cell]


@dataclass(frozen=True, slots=True)
class Matrix:
    """Rows grouped by area, columns in target order."""

    targets: tuple[str, ...]
    rows: tuple[Row, ...]

    def areas(self) -> list[tuple[str, list[Row]]]:
        """Rows grouped by area, areas in order of first appearance."""
        groups: dict[str, list[Row]] = {}
        for row in self.rows:
            groups.setdefault(row.area, []).append(row)
        return list(groups.items())

    def counts(self, target: str) -> dict[Verdict, int]:
        """Result records per verdict for ``target`` (every verdict present, zeros included)."""
        counts = dict.fromkeys(VERDICTS, 0)
        for row in self.rows:
            cell = row.cells.get(target)
            for result in cell.results if cell else ():
                counts[result.verdict] += 1
        return counts

    def check_ids(self, target: str, verdict: Verdict) -> list[str]:
        """Ids of the checks whose cell for ``target`` shows ``verdict``."""
        return [
            row.check_id for row in self.rows if (cell := row.cells.get(target)) and cell.verdict == verdict
        ]

    def details(self) -> list[CheckResult]:
        """Every non-PASS result, row by row and target by target: the "Details" of the pages."""
        return [
            result
            for row in self.rows
            for target in self.targets
            if target in row.cells
            for result in row.cells[target].noteworthy
        ]


def build_matrix(results: Sequence[CheckResult], targets: Iterable[str] = ()) -> Matrix:
    """The matrix of ``results``; columns are ``targets`` then any other target the results name.

    Raises ValueError for a verdict outside PASS, WARN, FAIL, SKIP (nothing could count it).
    """
    for result in results:
        if result.verdict not in VERDICTS:
            raise ValueError(
                f"verdict {result.verdict!r} of check {result.check_id!r} on {result.target!r} "
                f"is not one of {', '.join(VERDICTS)}"
            )
    columns = list(dict.fromkeys([*targets, *(r.target for r in results)]))
    grouped: dict[tuple[str, str], dict[str, list[CheckResult]]] = {}
    for result in results:
        grouped.setdefault((result.area, result.check_id), {}).setdefault(result.target, []).append(result)
    rows = tuple(
        Row(area, check_id, {target: Cell(tuple(found)) for target, found in cells.items()})
        for (area, check_id), cells in grouped.items()
    )
    return Matrix(tuple(columns), rows)
