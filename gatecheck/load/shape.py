"""The ramp scenario's stepped concurrency, as a locust ``LoadTestShape`` (imports locust).

The plugin sets it on the environment for ``--scenario ramp``; a locustfile never names it.
"""

from __future__ import annotations

from locust import LoadTestShape

from gatecheck.load.workload import RampPlan


class RampShape(LoadTestShape):
    """Stepped concurrency for the ``ramp`` scenario (set by the plugin, not found in the locustfile)."""

    abstract = True

    def __init__(self, plan: RampPlan, spawn_rate: float) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # locust leaves it unannotated
        self.plan = plan
        self.spawn_rate = spawn_rate

    def tick(self) -> tuple[int, float] | None:
        """The user count of the current step; None ends the test after the last step."""
        users = self.plan.users_at(self.get_run_time())  # type: ignore[no-untyped-call]
        return None if users is None else (users, self.spawn_rate)
