"""How long a run takes at least and what it sends, from its plan, before anything is sent.

``--plan`` prints it: the plan's requests and tokens (``plan_cost``), the waiting the pacer must do
to keep each key under its declared limits (a sliding minute filled to ``HEADROOM``), and the
rate-limit windows the slow checks sit out (their Retry-After). The target's own response times
come on top: nothing here can know them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from gatecheck.checks.base import Check, Cost, plan_cost
from gatecheck.checks.pacing import HEADROOM, WINDOW_SLACK
from gatecheck.checks.session import EMBEDDED_WINDOW_S, plan_settings
from gatecheck.config import Target

WINDOW_S = 60.0
"""A declared limit's window: RPM and TPM are per minute."""


@dataclass(frozen=True)
class Estimate:
    """What a run of some checks against one target spends, and the least time it waits."""

    checks: int
    cost: Cost
    pacing_s: float
    retry_after_s: float
    heavy: tuple[str, ...]

    @property
    def wait_s(self) -> float:
        """All the waiting: pacing and Retry-After windows."""
        return self.pacing_s + self.retry_after_s


def estimate_run(checks: Sequence[Check], target: Target, fuzz_examples: int) -> Estimate:
    """The estimate for ``checks`` in one run against ``target``."""
    settings = plan_settings(target, fuzz_examples)
    embedded = target.base_url is None
    dedicated = embedded or target.api_key_2 is not None
    ratelimit = [c for c in checks if c.area == "ratelimit"]
    # The heavy probe is paced as the refusal it expects (it costs the key nothing), so its prompt
    # counts in what the run sends, not in the pacing.
    main_key = [c for c in checks if (c.area != "ratelimit" or not dedicated) and "heavy" not in c.markers]
    pacing = 0.0 if embedded else pacing_s(plan_cost(main_key, settings), *target.limits(1))
    window = EMBEDDED_WINDOW_S if embedded else WINDOW_S
    holds = sum("slow" in c.markers for c in checks) + (1 if ratelimit and not dedicated else 0)
    return Estimate(
        checks=len(checks),
        cost=plan_cost(checks, settings),
        pacing_s=pacing,
        retry_after_s=holds * window * WINDOW_SLACK,
        heavy=tuple(c.id for c in checks if "heavy" in c.markers),
    )


def pacing_s(cost: Cost, rpm: int, tpm: int) -> float:
    """The least waiting that keeps ``cost`` under ``rpm``/``tpm``: one pacer window per full allowance."""
    per_window_requests = max(1, int(rpm * HEADROOM))
    per_window_tokens = max(1, int(tpm * HEADROOM))
    windows = max(
        math.ceil(cost.requests / per_window_requests),
        math.ceil((cost.prompt_tokens + cost.output_tokens) / per_window_tokens),
    )
    return max(0, windows - 1) * WINDOW_S * WINDOW_SLACK


def duration(seconds: float) -> str:
    """``45 s``, ``2 min 6 s``, ``1 h 3 min``."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s" if whole % 60 else f"{whole // 60} min"
    return f"{whole // 3600} h {whole % 3600 // 60} min"
