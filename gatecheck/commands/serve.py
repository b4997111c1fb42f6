"""``gatecheck serve``: run the reference gateway in the foreground until interrupted.

The first line printed is the URL it listens on, flushed once the gateway is ready to answer (its
request validators compiled), for scripts and tests; the second says which keys it accepts (never
the keys themselves, except the public demo key).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import signal
import socket
import sys
from collections.abc import Callable

from gatecheck.errors import ConfigError
from gatecheck.reference.config import DEMO_KEY, ERROR_DIALECTS, GatewayConfig, KeySpec
from gatecheck.reference.faults import FAULTS
from gatecheck.reference.runner import SiteStarter, bind, new_loop, start_site, stop_site, url_of

KEYS_ENV = "GATECHECK_SERVE_API_KEYS"
"""Comma-separated keys accepted in addition to those given with --api-key."""
UPSTREAM_KEY_ENV = "GATECHECK_SERVE_UPSTREAM_API_KEY"
"""The key proxy mode sends its upstream, when --upstream-api-key is not given."""


def configure(parser: argparse.ArgumentParser) -> None:
    """Declare the options (they mirror ``GatewayConfig``); usage is suppressed so errors are one line."""
    parser.usage = argparse.SUPPRESS
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    add("--port", type=int, default=8080, help="port (default 8080; 0 picks a free one)")
    add(
        "--api-key",
        action="append",
        default=[],
        metavar="KEY",
        help=f"accepted key (repeatable; also ${KEYS_ENV}, comma-separated; default: the demo key)",
    )
    add(
        "--key-limits",
        action="append",
        default=[],
        metavar="KEY:RPM:TPM",
        help="an accepted key with its own limits (repeatable)",
    )
    add(
        "--deny",
        action="append",
        default=[],
        metavar="KEY:MODEL",
        help="an accepted key that gets 403 FORBIDDEN on MODEL (repeatable)",
    )
    add("--rpm", type=int, default=60, help="requests per window per key (default 60)")
    add("--tpm", type=int, default=100_000, help="tokens per window per key (default 100000)")
    add(
        "--window-seconds",
        type=float,
        default=60.0,
        help="rate-limit window length (default 60; fractions allowed)",
    )
    add("--ttft-ms", type=float, default=0.0, help="time to first token (default 0)")
    add("--itl-ms", type=float, default=0.0, help="time between tokens (default 0)")
    add("--jitter-ms", type=float, default=0.0, help="uniform jitter on each gap, +/- this much (default 0)")
    add("--seed", type=int, default=0, help="seed of the jitter (default 0)")
    add("--reply-words", type=int, default=32, help="natural reply length of the echo rule (default 32)")
    add("--errors", choices=ERROR_DIALECTS, default="gateway", help="error body dialect (default gateway)")
    add("--fault", action="append", default=[], metavar="NAME", help="break one documented rule (repeatable)")
    add(
        "--keep-open-seconds",
        type=float,
        default=30.0,
        help="how long sse-keep-open holds a stream (default 30)",
    )
    add(
        "--balance",
        type=float,
        default=138.5,
        help="tenant balance in CNY for GET /v1/balance (default 138.5)",
    )
    add("--daily-budget", type=float, default=20.0, help="each key's daily budget in CNY (default 20)")
    add("--max-body-mib", type=int, default=8, help="largest request body, in MiB (default 8; 413 beyond)")
    add(
        "--header-timeout-seconds",
        type=float,
        default=10.0,
        help="close a connection whose request head is not complete this long after it began (default 10)",
    )
    add(
        "--idle-timeout-seconds",
        type=float,
        default=60.0,
        help="close a kept-alive connection idle this long between requests (default 60)",
    )
    add(
        "--body-timeout-seconds",
        type=float,
        default=30.0,
        help="close a connection whose request body is not in this long after reading began (default 30)",
    )
    add(
        "--list-faults",
        action="store_true",
        help="print every fault mode with its rule and source, then exit",
    )
    add(
        "--upstream",
        metavar="URL",
        help="proxy mode: forward chat and messages to this OpenAI-compatible upstream (gatecheck upstream)",
    )
    add(
        "--upstream-api-key",
        metavar="KEY",
        help=f"the key sent to the upstream (also ${UPSTREAM_KEY_ENV})",
    )
    add(
        "--upstream-timeout",
        type=float,
        default=30.0,
        help="proxy mode: upstream timeout in seconds (default 30)",
    )
    add("--upstream-retries", type=int, default=1, help="proxy mode: retries of a failed attempt (default 1)")


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM (exit 0), or list the faults."""
    if args.list_faults:
        print_faults()
        return 0
    config = config_from_args(args, os.environ.get(KEYS_ENV, ""), os.environ.get(UPSTREAM_KEY_ENV))
    serve_until_signal(config, start_site, announce)
    return 0


def serve_until_signal(
    config: GatewayConfig, site: SiteStarter, say: Callable[[GatewayConfig, str], None]
) -> None:
    """Bind, serve ``site`` until SIGINT/SIGTERM, stop; ``say`` announces it once it is ready."""
    try:
        sock = bind(config.host, config.port)
    except OSError as exc:
        raise ConfigError("port", config.port, f"a port free on {config.host} ({exc.strerror})") from None
    with asyncio.Runner(loop_factory=new_loop) as runner:
        runner.run(_serve(config, sock, site, say))


GC_YOUNG_THRESHOLD = 100_000
"""Net new container objects between young collections (CPython's default: 700)."""


def quiet_collector() -> None:
    """Keep the cycle collector from pausing streams: call once start-up is done.

    The gateway makes almost no reference cycles (measured: about 7 objects per closed connection,
    asyncio's transport on Python 3.11), yet at 256 shaped streams CPython's default thresholds ran
    a young collection every few milliseconds (0.3 ms each) and an older one every ~0.5 s (2-11 ms),
    each holding every stream's next write. Start-up objects are frozen out of collections, and
    collections become rare instead of off, so memory stays bounded if a cycle ever does leak.
    """
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


def announce(config: GatewayConfig, url: str) -> None:
    """The URL first (scripts read it), then the accepted keys (never a configured key) and faults."""
    print(url, flush=True)
    if config.keys:
        print(f"accepting {len(config.key_specs())} configured API key(s)", flush=True)
    else:
        print(f"accepting the demo API key {DEMO_KEY} (no --api-key given)", flush=True)
    if config.faults:
        print(f"fault modes: {', '.join(sorted(config.faults))}", flush=True)
    if config.upstream:
        print(f"proxy mode: chat and messages go to {config.upstream}", flush=True)


def print_faults() -> None:
    """One line per fault: name, area, the rule it breaks, the document it comes from."""
    width = max(len(name) for name in FAULTS)
    for fault in FAULTS.values():
        print(f"{fault.name:<{width}}  {fault.area:<9}  {fault.rule}  [{fault.source}]")


OPTION_OF_FIELD = {
    "key rpm": "--key-limits",
    "key tpm": "--key-limits",
    "upstream_timeout_s": "--upstream-timeout",
}
"""GatewayConfig's name of a value -> the option that sets it, where it is not ``--`` + field."""


def config_from_args(
    args: argparse.Namespace, env_keys: str, env_upstream_key: str | None = None
) -> GatewayConfig:
    """The GatewayConfig the options describe; ConfigError naming the option on a bad value."""
    try:
        return _config(args, env_keys, env_upstream_key)
    except ConfigError as exc:
        option = OPTION_OF_FIELD.get(exc.field, "--" + exc.field.replace("_", "-"))
        raise ConfigError(option, exc.value, exc.allowed) from None


def _config(args: argparse.Namespace, env_keys: str, env_upstream_key: str | None) -> GatewayConfig:
    specs: dict[str, KeySpec] = {}
    for key in [*args.api_key, *(k.strip() for k in env_keys.split(",") if k.strip())]:
        specs[key] = KeySpec(key)
    for item in args.key_limits:
        key, rpm, tpm = _split(item, 3, "--key-limits", "KEY:RPM:TPM")
        if not (rpm.isdigit() and tpm.isdigit()):
            raise ConfigError("--key-limits", "<redacted>", "KEY:RPM:TPM with whole numbers")
        old = specs.get(key, KeySpec(key))
        specs[key] = KeySpec(key, int(rpm), int(tpm), old.denied_models)
    for item in args.deny:
        key, model = _split(item, 2, "--deny", "KEY:MODEL")
        old = specs.get(key, KeySpec(key))
        specs[key] = KeySpec(key, old.rpm, old.tpm, old.denied_models | {model})
    return GatewayConfig(
        host=args.host,
        port=args.port,
        keys=tuple(specs.values()),
        rpm=args.rpm,
        tpm=args.tpm,
        window_seconds=args.window_seconds,
        ttft_ms=args.ttft_ms,
        itl_ms=args.itl_ms,
        jitter_ms=args.jitter_ms,
        seed=args.seed,
        errors=args.errors,
        faults=frozenset(args.fault),
        reply_words=args.reply_words,
        keep_open_seconds=args.keep_open_seconds,
        balance=args.balance,
        daily_budget=args.daily_budget,
        max_body_mib=args.max_body_mib,
        header_timeout_seconds=args.header_timeout_seconds,
        idle_timeout_seconds=args.idle_timeout_seconds,
        body_timeout_seconds=args.body_timeout_seconds,
        upstream=args.upstream,
        upstream_api_key=args.upstream_api_key or env_upstream_key or None,
        upstream_timeout_s=args.upstream_timeout,
        upstream_retries=args.upstream_retries,
    )


def _split(item: str, parts: int, option: str, shape: str) -> list[str]:
    """Split from the right, so a key may itself contain ':'; the key is never echoed back."""
    pieces = item.rsplit(":", parts - 1)
    if len(pieces) != parts or not all(pieces):
        raise ConfigError(option, "<redacted>", shape)
    return pieces


async def _serve(
    config: GatewayConfig, sock: socket.socket, site: SiteStarter, say: Callable[[GatewayConfig, str], None]
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    gateway, runner = await site(config, sock)
    quiet_collector()
    say(config, url_of(sock))
    try:
        await stop.wait()
    finally:
        await stop_site(gateway, runner)
    print("stopped", file=sys.stderr)
