"""Shared fixtures of gatecheck's own tests.

``gateway``: a factory that starts the reference gateway in-process (its own event loop in a
daemon thread, port 0) and stops every gateway it started at teardown::

    def test_something(gateway):
        gw = gateway(faults={"sse-missing-done"}, rpm=5, window_seconds=0.5)
        httpx.post(gw.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {DEMO_KEY}"}, ...)

It takes a ``GatewayConfig`` and/or any of its fields as keywords (``faults`` and ``keys`` accept
any iterable; a plain string in ``keys`` is a key with the default limits). With no ``keys`` the
gateway accepts only ``gatecheck.reference.DEMO_KEY``.

``reference_gateway``: one faithful gateway for the whole session, with limits high enough that
tests sharing it never meet a 429 (use ``gateway`` to test limits or faults).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from _counting_proxy import CountingProxy

from gatecheck.reference import GatewayConfig, KeySpec, RunningGateway, start_in_thread

GatewayFactory = Callable[..., RunningGateway]

_UNLIMITED = {"rpm": 1_000_000_000, "tpm": 1_000_000_000_000}


def _config(base: GatewayConfig | None, options: dict[str, Any]) -> GatewayConfig:
    if "faults" in options:
        options["faults"] = frozenset(options["faults"])
    if "keys" in options:
        options["keys"] = tuple(_key_spec(k) for k in options["keys"])
    return dataclasses.replace(base or GatewayConfig(), **options)


def _key_spec(key: str | KeySpec) -> KeySpec:
    return KeySpec(key) if isinstance(key, str) else key


@pytest.fixture
def gateway() -> Iterator[GatewayFactory]:
    """Start reference gateways with given options; all are stopped when the test ends."""
    started: list[RunningGateway] = []

    def start(config: GatewayConfig | None = None, /, **options: Any) -> RunningGateway:
        running = start_in_thread(_config(config, options))
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


@pytest.fixture(scope="session")
def reference_gateway() -> Iterator[RunningGateway]:
    """A faithful gateway shared by the session (demo key, no shaping, effectively no limits)."""
    with start_in_thread(GatewayConfig(**_UNLIMITED)) as running:
        yield running


@pytest.fixture
def counting_proxy(gateway: GatewayFactory) -> Iterator[CountingProxy]:
    """An unlimited, fast reference gateway behind a ``CountingProxy``."""
    gw = gateway(ttft_ms=5, itl_ms=1, rpm=1_000_000_000, tpm=1_000_000_000_000)
    proxy = CountingProxy(int(gw.url.rsplit(":", 1)[1]))
    proxy.start()
    yield proxy
    proxy.stop()
