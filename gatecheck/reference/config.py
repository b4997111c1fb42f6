"""The reference gateway's options, as one frozen dataclass mirroring ``gatecheck serve``.

Validated once at construction, so the server never meets an impossible setting mid-request and
the command line can turn a bad value into one ``ConfigError`` line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from gatecheck.errors import ConfigError
from gatecheck.reference.faults import FAULTS

DEMO_KEY = "gatecheck-demo-key"
"""The key accepted when no key is configured, so a fresh machine can try gatecheck at once."""

ErrorDialect = Literal["gateway", "openai"]
ERROR_DIALECTS: tuple[ErrorDialect, ...] = ("gateway", "openai")

MAX_LIMIT = 10**15
"""Largest RPM/TPM: "unlimited" in practice (gatecheck uses 10**9 and 10**12), still exact as a double."""
MAX_DELAY_MS = 600_000.0
"""Largest TTFT, ITL or jitter: ten minutes; beyond that a request would look hung, not slow."""
MAX_SECONDS = 86_400.0
"""Largest window, hold or timeout: one day."""
MAX_CNY = 10**9
"""Largest balance or daily budget."""
MAX_BODY_MIB = 1024
"""Largest request-body limit (MiB)."""


@dataclass(frozen=True, slots=True)
class KeySpec:
    """One accepted API key, with optional per-key limits and models it may not use (403)."""

    key: str
    rpm: int | None = None
    tpm: int | None = None
    denied_models: frozenset[str] = frozenset()

    def __repr__(self) -> str:
        return (
            f"KeySpec(key='***', rpm={self.rpm}, tpm={self.tpm}, denied_models={sorted(self.denied_models)})"
        )


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """Every option of the reference gateway; defaults are the documented ones (002 Rate Limits).

    ``keys`` empty means: accept only ``DEMO_KEY``. ``port`` 0 picks a free port. Latency shaping
    is ``ttft_ms`` to the first token, then ``itl_ms`` between tokens, each gap moved by a uniform
    draw in ``[-jitter_ms, +jitter_ms]`` from a generator seeded with ``seed``. Bodies over
    ``max_body_mib`` get 413; a connection is closed when a new connection's first request head, or a
    head once begun, takes over ``header_timeout_seconds``, when a kept-alive connection stays idle
    ``idle_timeout_seconds``, or when a body takes over ``body_timeout_seconds`` (see ``guard``).
    Every number is bounded (finite, not negative, not absurd), so a typo cannot hang every request.
    """

    host: str = "127.0.0.1"
    port: int = 0
    keys: tuple[KeySpec, ...] = ()
    rpm: int = 60
    tpm: int = 100_000
    window_seconds: float = 60.0
    ttft_ms: float = 0.0
    itl_ms: float = 0.0
    jitter_ms: float = 0.0
    seed: int = 0
    errors: ErrorDialect = "gateway"
    faults: frozenset[str] = frozenset()
    reply_words: int = 32
    keep_open_seconds: float = 30.0
    daily_budget: float | None = 20.0
    balance: float = 138.5
    max_body_mib: int = 8
    header_timeout_seconds: float = 10.0
    idle_timeout_seconds: float = 60.0
    body_timeout_seconds: float = 30.0
    upstream: str | None = None
    """Proxy mode (``gatecheck serve --upstream URL``): chat and messages are forwarded there."""
    upstream_api_key: str | None = field(default=None, repr=False)
    upstream_timeout_s: float = 30.0
    """Longest wait for the upstream's answer to start, and between two of its stream reads."""
    upstream_retries: int = 1
    """Retries after an upstream 5xx, reset or short 429, before the client gets the error."""

    def __post_init__(self) -> None:
        _check_range("port", self.port, 0, 65535)
        _check_range("rpm", self.rpm, 1, MAX_LIMIT)
        _check_range("tpm", self.tpm, 1, MAX_LIMIT)
        _check_range("seed", self.seed, 0, 2**63 - 1)
        for name in (
            "window_seconds",
            "header_timeout_seconds",
            "idle_timeout_seconds",
            "body_timeout_seconds",
        ):
            _check_number(name, getattr(self, name), 0, MAX_SECONDS, low_allowed=False)
        for name in ("ttft_ms", "itl_ms", "jitter_ms"):
            _check_number(name, getattr(self, name), 0, MAX_DELAY_MS)
        _check_number("keep_open_seconds", self.keep_open_seconds, 0, MAX_SECONDS)
        _check_number("balance", self.balance, 0, MAX_CNY)
        if self.daily_budget is not None:
            _check_number("daily_budget", self.daily_budget, 0, MAX_CNY)
        _check_range("reply_words", self.reply_words, 1, 4096)
        _check_range("max_body_mib", self.max_body_mib, 1, MAX_BODY_MIB)
        if self.errors not in ERROR_DIALECTS:
            raise ConfigError("errors", self.errors, " or ".join(ERROR_DIALECTS))
        unknown = sorted(set(self.faults) - FAULTS.keys())
        if unknown:
            raise ConfigError("fault", unknown[0], "one of the names `gatecheck serve --list-faults` prints")
        _check_upstream(self)
        for spec in self.keys:
            if not spec.key:
                raise ConfigError("api_key", "", "a non-empty key")
            _check_range("key rpm", spec.rpm, 1, MAX_LIMIT)
            _check_range("key tpm", spec.tpm, 1, MAX_LIMIT)

    def key_specs(self) -> dict[str, KeySpec]:
        """Accepted keys by value (the demo key when none is configured); later specs win."""
        specs = self.keys or (KeySpec(DEMO_KEY),)
        return {spec.key: spec for spec in specs}

    def limits_for(self, key: str) -> tuple[int, int]:
        """(RPM, TPM) for ``key``: its own limits where set, the gateway defaults otherwise."""
        spec = self.key_specs().get(key)
        rpm = spec.rpm if spec is not None and spec.rpm is not None else self.rpm
        tpm = spec.tpm if spec is not None and spec.tpm is not None else self.tpm
        return rpm, tpm

    @property
    def max_body_bytes(self) -> int:
        """The largest request body read (413 beyond it)."""
        return self.max_body_mib * 1024 * 1024


def _check_upstream(config: GatewayConfig) -> None:
    """The proxy options: an http(s) origin, a positive timeout, a small retry count."""
    if config.upstream is not None:
        parts = urlsplit(config.upstream)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ConfigError(
                "upstream", config.upstream, "an http:// or https:// URL like http://127.0.0.1:8090"
            )
    _check_number("upstream_timeout_s", config.upstream_timeout_s, 0, MAX_SECONDS, low_allowed=False)
    _check_range("upstream_retries", config.upstream_retries, 0, 10)


def _check_range(name: str, value: int | None, low: int, high: int) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(name, value, f"an integer from {low} to {high:,}")


def _check_number(name: str, value: float, low: float, high: float, *, low_allowed: bool = True) -> None:
    """A finite number in [low, high] (or (low, high] when ``low_allowed`` is False)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not (low <= value if low_allowed else low < value)
        or value > high
    ):
        above = f">= {low:g}" if low_allowed else f"> {low:g}"
        raise ConfigError(name, value, f"a finite number {above} and <= {high:,.0f}")
