"""Small HTTP helpers shared by the reference gateway's tests (raw httpx + the project's SSE decoder)."""

from __future__ import annotations

import atexit
import json
import time
from dataclasses import dataclass
from typing import Any

import httpx

from gatecheck.reference import DEMO_KEY, RunningGateway
from gatecheck.schemas import default_store
from gatecheck.sse import SSEDecoder, SSEEvent

AUTH = {"Authorization": f"Bearer {DEMO_KEY}"}
TIMEOUT = httpx.Timeout(10.0)
CHAT = "/v1/chat/completions"
MESSAGES = "/v1/messages"

CLIENT = httpx.Client(timeout=TIMEOUT)
"""One pooled client for every test: a new httpx client per request costs tens of milliseconds."""
atexit.register(CLIENT.close)


def user(text: str) -> list[dict[str, Any]]:
    """A one-message conversation."""
    return [{"role": "user", "content": text}]


def chat_body(text: str = "Say hello to the gateway", **extra: Any) -> dict[str, Any]:
    """A minimal valid chat request."""
    return {"model": "deepseek-v4-flash", "messages": user(text), **extra}


def message_body(text: str = "Say hello to the gateway", **extra: Any) -> dict[str, Any]:
    """A minimal valid Anthropic messages request."""
    return {"model": "deepseek-v4-flash", "max_tokens": 256, "messages": user(text), **extra}


def post(gw: RunningGateway, path: str, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    """POST ``body`` as JSON with the demo key (unless ``headers`` says otherwise)."""
    return CLIENT.post(gw.url + path, json=body, headers=AUTH if headers is None else headers)


@dataclass
class Streamed:
    """A streamed response: status, headers, raw bytes, events and when each chunk arrived."""

    status: int
    headers: httpx.Headers
    raw: bytes
    events: list[SSEEvent]
    t_start_ns: int

    def payloads(self) -> list[Any]:
        """The JSON of every data payload but ``[DONE]``."""
        return [json.loads(e.data) for e in self.events if e.data != "[DONE]"]

    def text(self) -> str:
        """Concatenated ``choices[0].delta.content`` of an OpenAI stream."""
        return "".join(
            c["choices"][0]["delta"].get("content") or "" for c in self.payloads() if c.get("choices")
        )


def stream(gw: RunningGateway, path: str, body: Any, headers: dict[str, str] | None = None) -> Streamed:
    """POST and read the whole event stream, decoding it with the project's SSE decoder."""
    decoder = SSEDecoder()
    events: list[SSEEvent] = []
    raw = b""
    start = time.perf_counter_ns()
    with CLIENT.stream(
        "POST", gw.url + path, json=body, headers=AUTH if headers is None else headers
    ) as response:
        for chunk in response.iter_raw():
            raw += chunk
            events += decoder.feed(chunk, time.perf_counter_ns())
        status, response_headers = response.status_code, response.headers
    decoder.close()
    return Streamed(status, response_headers, raw, events, start)


def assert_valid(schema: str, instance: Any) -> None:
    """Fail with every schema issue of ``instance`` against ``schema``."""
    issues = default_store().issues(schema, instance)
    assert not issues, f"{schema}: " + "; ".join(str(i) for i in issues[:3])
