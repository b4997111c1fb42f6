"""Conformance verdicts: what a check concluded, in the shape every report writer reads."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields
from typing import Any, Literal

Verdict = Literal["PASS", "WARN", "FAIL", "XFAIL", "SKIP"]
VERDICTS: tuple[Verdict, ...] = ("PASS", "WARN", "FAIL", "XFAIL", "SKIP")
"""XFAIL is a FAIL listed as a known deviation (``gatecheck.expected``); checks never give it."""


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check's verdict against one target.

    ``message`` is empty on PASS; on FAIL/WARN it holds the rule, where it is documented, what was
    expected, what came back and a "Reproduce with:" curl command (key as an env reference); on XFAIL
    the same, after a line naming the expected-failures entry that accepts it; on SKIP the honest
    reason. ``files`` are written next to the reports (name -> bytes, keys masked): the
    request bodies too large to inline in a curl command, which the message names.
    """

    check_id: str
    area: str
    verdict: Verdict
    target: str
    citation: str = ""
    message: str = ""
    duration_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict, repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (the conformance results file's record; ``files`` are not in it)."""
        return {f.name: copy.deepcopy(getattr(self, f.name)) for f in fields(self) if f.name != "files"}
