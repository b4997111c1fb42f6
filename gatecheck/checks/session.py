"""Opening a session on a target, starting the embedded reference gateway when it has no base URL.

The embedded gateway is started for the suite's needs: a main key with limits no check can reach
(so nothing is paced or waited for) and a second key with small limits and a short window, on
which the rate-limit checks burst, wait and retry in a few seconds. A real target gets a pacer
per key under that key's declared limits (``--rpm``/``--tpm``, ``--rpm-2``/``--tpm-2``), its second
key (if configured) for the rate-limit checks, and a short-bounded client for liveness probes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from typing import Any

from gatecheck import clock
from gatecheck.calibration import DOCUMENTED_CONTEXT_LENGTHS
from gatecheck.checks.base import PlanSettings
from gatecheck.checks.context import PROBE_TIMEOUT_S, RateLimitSetup, RunSettings, Session
from gatecheck.checks.pacing import Pacer
from gatecheck.config import Target
from gatecheck.profiles import load_profile
from gatecheck.redaction import Secret
from gatecheck.schemas import default_store

EMBEDDED_MAIN_KEY = "gatecheck-conformance-main-key"
EMBEDDED_LIMITS_KEY = "gatecheck-conformance-limits-key"
EMBEDDED_RPM = 5
"""The embedded second key's RPM: a burst is 8 requests."""
EMBEDDED_TPM = 600
"""The embedded second key's TPM: three ~270-word prompts pass it."""
EMBEDDED_WINDOW_S = 2.0
"""The embedded gateway's rate-limit window (Retry-After is then at most 2 s)."""
EMBEDDED_ITL_MS = 1.0
"""A token every millisecond, so the embedded gateway's streams really stream."""
UNREACHABLE = 1_000_000_000
"""The embedded main key's limits: never reached by the suite."""


def embedded_gateway_config(**overrides: Any) -> Any:
    """The GatewayConfig the suite starts the reference gateway with (``overrides`` win)."""
    from gatecheck.reference import GatewayConfig, KeySpec

    keys = (
        KeySpec(EMBEDDED_MAIN_KEY, rpm=UNREACHABLE, tpm=UNREACHABLE),
        KeySpec(EMBEDDED_LIMITS_KEY, rpm=EMBEDDED_RPM, tpm=EMBEDDED_TPM),
    )
    options: dict[str, Any] = {"keys": keys, "window_seconds": EMBEDDED_WINDOW_S, "itl_ms": EMBEDDED_ITL_MS}
    return GatewayConfig(**{**options, **overrides})


def embedded_target(target: Target, url: str) -> Target:
    """``target`` pointed at an embedded gateway at ``url``, with its keys and limits."""
    return dataclasses.replace(
        target,
        base_url=url,
        api_key=Secret(EMBEDDED_MAIN_KEY, source="embedded gateway key"),
        api_key_2=Secret(EMBEDDED_LIMITS_KEY, source="embedded gateway key 2"),
        rpm=UNREACHABLE,
        tpm=UNREACHABLE,
    )


def ratelimit_limits(target: Target) -> tuple[int, int]:
    """(RPM, TPM) the rate-limit checks will find on their key: the second key's when there is one."""
    if target.base_url is None:
        return EMBEDDED_RPM, EMBEDDED_TPM
    return target.limits(2) if target.api_key_2 is not None else target.limits(1)


def plan_settings(target: Target, fuzz_examples: int) -> PlanSettings:
    """The plan parameters of a run against ``target``."""
    rpm, tpm = ratelimit_limits(target)
    chat = target.models.chat
    return PlanSettings(
        rpm=rpm,
        tpm=tpm,
        fuzz_examples=fuzz_examples,
        max_output_tokens=target.max_output_tokens,
        context_length=target.context_length(chat) or DOCUMENTED_CONTEXT_LENGTHS.get(chat),
    )


@contextmanager
def open_session(
    target: Target, settings: RunSettings | None = None, gateway_overrides: Mapping[str, Any] | None = None
) -> Iterator[Session]:
    """A session on ``target`` (the embedded gateway started and stopped around it when needed)."""
    settings = settings or RunSettings()
    profile = load_profile(target.profile)
    with ExitStack() as stack:
        embedded = target.base_url is None
        wire = settings.wire
        if embedded:
            # The reference gateway speaks either error dialect: the one the profile expects.
            errors = "openai" if profile.error_dialect == "openai" else "gateway"
            config = embedded_gateway_config(**{"errors": errors, **(gateway_overrides or {})})
            target = embedded_target(target, stack.enter_context(wire.embedded_gateway(config)))
        client = stack.enter_context(wire.client(target))
        probe = dataclasses.replace(
            target,
            connect_timeout=min(target.connect_timeout, PROBE_TIMEOUT_S),
            read_timeout=min(target.read_timeout, PROBE_TIMEOUT_S),
            total_timeout=min(target.total_timeout, PROBE_TIMEOUT_S),
        )
        rpm, tpm = (EMBEDDED_RPM, EMBEDDED_TPM) if embedded else ratelimit_limits(target)
        window = EMBEDDED_WINDOW_S if embedded else target.ratelimit_window
        if embedded:
            pacer, pacer_2 = Pacer(None, None), None
        else:
            pacer = Pacer(*target.limits(1), window_s=window, label="key 1", notify=settings.notify)
            second = target.api_key_2 is not None
            pacer_2 = (
                Pacer(*target.limits(2), window_s=window, label="key 2", notify=settings.notify)
                if second
                else None
            )
        ratelimit = RateLimitSetup(
            client=client,
            key=target.api_key_2 or target.api_key,
            rpm=rpm,
            tpm=tpm,
            dedicated=target.api_key_2 is not None,
            window_s=window,
        )
        session = Session(
            target=target,
            profile=profile,
            client=client,
            store=default_store(),
            pacer=pacer,
            ratelimit=ratelimit,
            settings=settings,
            secrets=tuple(k for k in (target.api_key, target.api_key_2) if k is not None)
            + target.header_secrets,
            pacer_2=pacer_2,
            probe_client=stack.enter_context(wire.client(probe)),
            embedded=embedded,
            # The keys may have been used just before this session (the preflight's request on each,
            # the user's own traffic): a rate-limit burst's fresh window is counted from here.
            last_sent={} if embedded else dict.fromkeys(("main", "ratelimit"), clock.monotonic()),
        )
        stack.enter_context(session.resources)
        yield session
