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
    draw in ``[-jitter_ms, +jitter_ms]`` from a generator seeded with ``seed``.
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
    upstream: str | None = None
    """Proxy mode (``gatecheck serve --upstream URL``): chat and messages are forwarded there."""
    upstream_api_key: str | None = field(default=None, repr=False)
    upstream_timeout_s: float = 30.0
    """Longest wait for the upstream's answer to start, and between two of its stream reads."""
    upstream_retries: int = 1
    """Retries after an upstream 5xx, reset or short 429, before the client gets the error."""

    def __post_init__(self) -> None:
        _check_range("port", self.port, 0, 65535)
        _check_range("rpm", self.rpm, 1, None)
        _check_range("tpm", self.tpm, 1, None)
        _check_positive("window_seconds", self.window_seconds)
        for name in ("ttft_ms", "itl_ms", "jitter_ms", "keep_open_seconds"):
            _check_non_negative(name, getattr(self, name))
        _check_range("reply_words", self.reply_words, 1, 4096)
        if self.errors not in ERROR_DIALECTS:
            raise ConfigError("errors", self.errors, " or ".join(ERROR_DIALECTS))
        unknown = sorted(set(self.faults) - FAULTS.keys())
        if unknown:
            raise ConfigError("fault", unknown[0], "one of the names `gatecheck serve --list-faults` prints")
        _check_upstream(self)
        for spec in self.keys:
            if not spec.key:
                raise ConfigError("api_key", "", "a non-empty key")
            _check_range("key rpm", spec.rpm, 1, None)
            _check_range("key tpm", spec.tpm, 1, None)

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


def _check_upstream(config: GatewayConfig) -> None:
    """The proxy options: an http(s) origin, a positive timeout, a small retry count."""
    if config.upstream is not None:
        parts = urlsplit(config.upstream)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ConfigError(
                "upstream", config.upstream, "an http:// or https:// URL like http://127.0.0.1:8090"
            )
    _check_positive("upstream_timeout_s", config.upstream_timeout_s)
    _check_range("upstream_retries", config.upstream_retries, 0, 10)


def _check_range(name: str, value: int | None, low: int, high: int | None) -> None:
    if value is None:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < low
        or (high is not None and value > high)
    ):
        allowed = f"an integer >= {low}" if high is None else f"an integer from {low} to {high}"
        raise ConfigError(name, value, allowed)


def _check_positive(name: str, value: float) -> None:
    if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise ConfigError(name, value, "a number > 0")


def _check_non_negative(name: str, value: float) -> None:
    if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ConfigError(name, value, "a number >= 0")
