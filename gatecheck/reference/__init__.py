"""The reference gateway: a faithful, fast, fault-injectable OpenAI/Anthropic-compatible server.

It is the embedded default target (``gatecheck serve``), the test double of gatecheck's own
tests (``start_in_thread`` and the fault modes in ``faults``) and the target of load-test
benchmarks (exact latency shaping). Its rules are documented in docs/reference-gateway.md.
"""

from __future__ import annotations

from gatecheck.reference.catalogue import MIDSTREAM_ERROR_MODEL, MODELS, TINY_MODEL, ModelInfo
from gatecheck.reference.config import DEMO_KEY, GatewayConfig, KeySpec
from gatecheck.reference.faults import FAULTS, Fault
from gatecheck.reference.runner import RunningGateway, start_in_thread

__all__ = [
    "DEMO_KEY",
    "FAULTS",
    "MIDSTREAM_ERROR_MODEL",
    "MODELS",
    "TINY_MODEL",
    "Fault",
    "GatewayConfig",
    "KeySpec",
    "ModelInfo",
    "RunningGateway",
    "start_in_thread",
]
