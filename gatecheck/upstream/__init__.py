"""The upstream harness: a scripted provider behind the gateway under test (``gatecheck upstream``).

A gateway is a proxy; what it does with its provider's failures can only be seen from both sides.
The harness is the provider side: it answers like the reference gateway's fake model unless a
check scripted otherwise for the nonce in the prompt, and logs every attempt the gateway made
(``harness``, ``scenarios``, ``log``). ``control`` is the checks' client of its control API;
``embedded`` starts the harness with a proxying reference gateway in front of it.
"""

from __future__ import annotations

from gatecheck.upstream.harness import Harness, harness_config, is_loopback, start_harness
from gatecheck.upstream.scenarios import DEFAULT_USAGE, SCENARIOS, Scenario, ScenarioError, new_nonce

__all__ = [
    "DEFAULT_USAGE",
    "SCENARIOS",
    "Harness",
    "Scenario",
    "ScenarioError",
    "harness_config",
    "is_loopback",
    "new_nonce",
    "start_harness",
]
