"""The embedded pair: the harness, and the reference gateway in proxy mode in front of it.

The ``upstream`` area's default target (a run without a base URL), ``gatecheck demo``'s and the
fault tests': both in-process on free loopback ports, the gateway with the suite's keys and its
upstream timeout and retries set short so the area runs in seconds.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from gatecheck.reference.runner import RunningGateway, start_in_thread
from gatecheck.upstream.harness import harness_config, start_harness

EMBEDDED_TIMEOUT_S = 1.0
"""The embedded proxy's upstream timeout: the silent and stalled scenarios cost about this much."""

EMBEDDED_RETRIES = 1
"""The embedded proxy retries a failed upstream attempt once."""


@dataclass(frozen=True)
class Pair:
    """A running harness and the proxying gateway in front of it."""

    harness: RunningGateway
    gateway: RunningGateway

    @property
    def harness_key(self) -> str:
        """The key the gateway sends the harness (a canary: no client may ever see it)."""
        return self.harness.config.keys[0].key


@contextmanager
def start_pair(**gateway_overrides: Any) -> Iterator[Pair]:
    """Start the harness, then the suite's embedded gateway proxying to it; stop both at the end.

    ``gateway_overrides`` go to ``embedded_gateway_config`` (faults, errors, upstream_timeout_s...).
    """
    from gatecheck.checks.session import embedded_gateway_config

    with start_harness(harness_config()) as harness:
        options: dict[str, Any] = {
            "upstream": harness.url,
            "upstream_api_key": harness.config.keys[0].key,
            "upstream_timeout_s": EMBEDDED_TIMEOUT_S,
            "upstream_retries": EMBEDDED_RETRIES,
            **gateway_overrides,
        }
        with start_in_thread(embedded_gateway_config(**options)) as gateway:
            yield Pair(harness, gateway)
