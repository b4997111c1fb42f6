"""The upstream harness: a scripted provider behind the gateway under test (``gatecheck upstream``).

A gateway is a proxy; what it does with its provider's failures can only be seen from both sides.
The harness is the provider side: it answers like the reference gateway's fake model unless a
check scripted otherwise for the nonce in the prompt, and logs every attempt the gateway made
(``harness``, ``scenarios``, ``log``). ``control`` is the checks' client of its control API;
``embedded`` starts the harness with a proxying reference gateway in front of it.

The names below load on first use: ``gatecheck.upstream.control`` (what a load process imports,
after gevent has patched it) must not pull in the harness's aiohttp server.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gatecheck.upstream.harness import Harness, harness_config, is_loopback, start_harness
    from gatecheck.upstream.scenarios import DEFAULT_USAGE, SCENARIOS, Scenario, ScenarioError, new_nonce

_WHERE = {
    "DEFAULT_USAGE": "scenarios",
    "SCENARIOS": "scenarios",
    "Harness": "harness",
    "Scenario": "scenarios",
    "ScenarioError": "scenarios",
    "harness_config": "harness",
    "is_loopback": "harness",
    "new_nonce": "scenarios",
    "start_harness": "harness",
}

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


def __getattr__(name: str) -> Any:
    """Load a public name from its module on first use."""
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"gatecheck.upstream.{module}"), name)
