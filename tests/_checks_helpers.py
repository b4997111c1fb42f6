"""Helpers for the checks' unit tests: sessions on a mock transport, hand-made exchanges.

A hand-made ``Exchange`` carries exactly the bytes and arrival times a test wants (a real socket
cannot promise two chunks arrive apart, or together), so a check's verdict on a given wire can be
pinned down without a server.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx

from gatecheck.checks import RateLimitSetup, RunSettings, Session
from gatecheck.checks.pacing import Pacer
from gatecheck.client import Client, ErrorKind, Exchange, Request
from gatecheck.config import Target
from gatecheck.profiles import load_profile
from gatecheck.redaction import Secret
from gatecheck.schemas import default_store

CANARY_KEY = "canary-3f1c9a7e5b2d4c6a8e0f"
BASE_URL = "http://gateway.test"
MS = 1_000_000

Handler = Callable[[httpx.Request], httpx.Response]


def _refuse(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"unexpected request {request.method} {request.url}")


def make_session(
    handler: Handler = _refuse, *, profile: str = "gateway", max_requests: int = 100, **target_fields: object
) -> Session:
    """A session whose client talks to ``handler`` (an httpx MockTransport) instead of a socket."""
    target = Target(
        name="mock",
        base_url=BASE_URL,
        api_key=Secret(CANARY_KEY),
        profile=profile,
        max_requests=max_requests,
        **target_fields,  # type: ignore[arg-type]
    )
    client = Client(target, transport=httpx.MockTransport(handler))
    return Session(
        target=target,
        profile=load_profile(profile),
        client=client,
        store=default_store(),
        pacer=Pacer(None, None),
        ratelimit=RateLimitSetup(client=client, key=target.api_key, rpm=5, tpm=600, dedicated=False),
        settings=RunSettings(fuzz_examples=3, fuzz_seed=1, close_grace_s=0.5),
        secrets=(Secret(CANARY_KEY),),
    )


def stream_exchange(
    events: list[bytes],
    *,
    gaps_ms: float = 5.0,
    content_type: str = "text/event-stream",
    closed: bool = True,
    linger_ms: float = 0.0,
    status: int = 200,
    error: str | None = None,
    error_kind: ErrorKind | None = None,
) -> Exchange:
    """An exchange whose body arrived as one chunk per item of ``events``, ``gaps_ms`` apart.

    Not ``closed``: reading stopped at the total timeout, unless ``error`` says what stopped it.
    """
    request = Request(
        "POST",
        f"{BASE_URL}/v1/chat/completions",
        {"Content-Type": "application/json"},
        b'{"stream":true}',
        Secret(CANARY_KEY),
        "GATECHECK_API_KEY",
        (Secret(CANARY_KEY),),
    )
    start = 1_000 * MS
    chunks = [(start + int((i + 1) * gaps_ms * MS), data) for i, data in enumerate(events)]
    end = (chunks[-1][0] if chunks else start) + int(linger_ms * MS)
    return Exchange(
        request=request,
        status=status,
        headers=httpx.Headers({"content-type": content_type}),
        chunks=chunks,
        t_start_ns=start,
        t_headers_ns=start,
        t_end_ns=end,
        server_closed=closed,
        error=error or (None if closed else "total timeout: no end within 2 s"),
        error_kind=error_kind or (None if closed and error is None else "total_timeout"),
    )
