"""``gatecheck upstream``: the scripted provider a gateway under test is configured to call.

The first line printed is its URL, the second ``key <KEY>``: the key the gateway must send it
(``--api-key``, ``$GATECHECK_UPSTREAM_API_KEY``, or a generated canary). Put both in the gateway's
provider configuration, then run the ``upstream`` area with ``--upstream URL``
(docs/behind-the-gateway.md). The control API (``/_gatecheck/...``) answers loopback clients only.
"""

from __future__ import annotations

import argparse
import os

from gatecheck.commands.serve import serve_until_signal
from gatecheck.reference.config import GatewayConfig
from gatecheck.upstream.harness import harness_config, harness_site
from gatecheck.upstream.scenarios import SCENARIOS

KEY_ENV = "GATECHECK_UPSTREAM_API_KEY"
"""The key the harness requires, when --api-key is not given (else a canary is generated)."""


def configure(parser: argparse.ArgumentParser) -> None:
    """Where it listens, the key it requires, its default pacing."""
    parser.usage = argparse.SUPPRESS
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    add("--port", type=int, default=8090, help="port (default 8090; 0 picks a free one)")
    add(
        "--api-key", metavar="KEY", help=f"the key the gateway must send (also ${KEY_ENV}; default: a canary)"
    )
    add("--ttft-ms", type=float, default=0.0, help="time to first token unless a scenario says (default 0)")
    add("--itl-ms", type=float, default=0.0, help="time between tokens unless a scenario says (default 0)")
    add(
        "--log-writes",
        action="store_true",
        help="log the stamp of every token write (per-chunk gateway overhead in gatecheck load --upstream)",
    )
    add("--list-scenarios", action="store_true", help="print every scenario and what it does, then exit")


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM (exit 0), or list the scenarios."""
    if args.list_scenarios:
        width = max(len(name) for name in SCENARIOS)
        for name, what in SCENARIOS.items():
            print(f"{name:<{width}}  {what}")
        return 0
    config = harness_config(
        key=args.api_key or os.environ.get(KEY_ENV) or None,
        host=args.host,
        port=args.port,
        ttft_ms=args.ttft_ms,
        itl_ms=args.itl_ms,
    )
    serve_until_signal(config, harness_site(log_writes=args.log_writes), announce)
    return 0


def announce(config: GatewayConfig, url: str) -> None:
    """The URL, then the key the gateway must send (scripts read both)."""
    print(url, flush=True)
    print(f"key {config.keys[0].key}", flush=True)
