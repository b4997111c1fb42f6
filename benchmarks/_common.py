"""What the benchmark scripts share: core pinning and percentiles (run them as scripts from any cwd)."""

from __future__ import annotations

import shutil


def pinned(core: int, command: list[str]) -> list[str]:
    """``command`` run on one core (``taskset``) so the server and the load each have their own."""
    return ["taskset", "-c", str(core), *command] if shutil.which("taskset") else command


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(pct / 100 * len(ordered)))]
