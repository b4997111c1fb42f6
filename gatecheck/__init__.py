"""gatecheck: conformance and load testing for OpenAI- and Anthropic-compatible LLM gateways.

The public surface is listed in ``__all__``; names load on first use, so ``import gatecheck`` stays
cheap and never imports locust (which monkey-patches the process with gevent).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "ConfigError": "gatecheck.errors",
    "GatecheckError": "gatecheck.errors",
    "SSEError": "gatecheck.errors",
    "SchemaNotFound": "gatecheck.errors",
    "TransportError": "gatecheck.errors",
    "ResponseTooLarge": "gatecheck.errors",
    "Secret": "gatecheck.redaction",
    "redact": "gatecheck.redaction",
    "Target": "gatecheck.config",
    "load_target": "gatecheck.config",
    "load_targets": "gatecheck.config",
    "Client": "gatecheck.client",
    "Request": "gatecheck.request",
    "Exchange": "gatecheck.client",
    "to_curl": "gatecheck.curl",
    "SSEDecoder": "gatecheck.sse",
    "SSEEvent": "gatecheck.sse",
    "ChatStreamAssembler": "gatecheck.assemble",
    "MessageStreamAssembler": "gatecheck.assemble",
    "Violation": "gatecheck.assemble",
    "SchemaStore": "gatecheck.schemas",
    "default_store": "gatecheck.schemas",
    "CheckResult": "gatecheck.results",
    "write_reports": "gatecheck.report",
    "GatewayConfig": "gatecheck.reference",
    "start_in_thread": "gatecheck.reference",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    """Import a public name's module on first access."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'gatecheck' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
