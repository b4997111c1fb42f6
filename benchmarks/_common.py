"""What the benchmark scripts share: core pinning and percentiles (run them as scripts from any cwd)."""

from __future__ import annotations

import os
import shutil


def pinned(core: int, command: list[str]) -> list[str]:
    """``command`` run on one core (``taskset``) so the server and the load each have their own."""
    return ["taskset", "-c", str(core), *command] if shutil.which("taskset") else command


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(pct / 100 * len(ordered)))]


def steal_seconds(cores: tuple[int, ...]) -> float:
    """CPU time the hypervisor has taken from ``cores`` since boot (``steal`` in /proc/stat; 0 if unknown).

    On a shared virtual machine a stolen stretch stops the gateway and the load alike for
    milliseconds, which no latency percentile can tell from a slow server: the scripts print the
    share stolen during each phase, so a noisy run shows as one.
    """
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            lines = stat.read().splitlines()
    except OSError:
        return 0.0
    names = {f"cpu{core}" for core in cores}
    ticks = sum(int(line.split()[8]) for line in lines if line.split()[0] in names)
    return ticks / os.sysconf("SC_CLK_TCK")
