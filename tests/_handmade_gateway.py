"""A small hand-made chat gateway on 127.0.0.1 that implements the documents *differently* from ours.

It exists to reproduce the errors-area and rate-limit false alarms of issue 9 on a real socket and
show the checks now say PASS, WARN or SKIP there. Every behaviour is a switch of ``Handmade``:

- tokens are characters / ``chars_per_token`` (4 by default: a word of filler is half a token),
  plus 3 per message, in usage and in the limits alike;
- the RPM limiter is a sliding log, a fixed window, a token bucket, or absent; ``short_by`` admits
  fewer than the RPM it reports (under-admission);
- TPM is charged before serving (the whole cost), after serving (the request that crosses the TPM
  is served, the next refused), or not at all; a 429 names its limit in its message or not;
- errors are in 002's dialect (``INVALID_PARAMS`` with a message, no ``context_length_exceeded``
  code) or OpenAI's; request validation enforces the documents' constraints only (the request
  schema without its ``x-rule`` OpenAI-only constraints: ``stop`` with 5 items is accepted);
- quirks: relayed upstream rate-limit headers on 2xx, a plain-text 429, plain-text errors, a
  redirect loop, 413 for big bodies.

It shares no code with the reference gateway; it validates with gatecheck's schema store only to
state "the documents' constraints" without restating them.
"""

from __future__ import annotations

import json
import math
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

from gatecheck.checks import RateLimitSetup, RunSettings, Session, run_checks, select
from gatecheck.checks.pacing import Pacer
from gatecheck.client import Client
from gatecheck.config import Models, Target
from gatecheck.profiles import load_profile
from gatecheck.redaction import Secret
from gatecheck.results import CheckResult
from gatecheck.schemas import default_store

MAIN_KEY = "handmade-main-key"
LIMITED_KEY = "handmade-limited-key"
UNLIMITED = 10**9


@dataclass(frozen=True)
class Handmade:
    """The behaviours of one hand-made gateway (defaults: a faithful 002-dialect gateway)."""

    rpm: int = 5
    tpm: int = 2000
    window_s: float = 1.0
    limiter: Literal["sliding", "fixed", "bucket", "none"] = "sliding"
    bucket_capacity: int | None = None
    short_by: int = 0
    tpm_charge: Literal["before", "after", "off"] = "before"
    names_limit: bool = True
    chars_per_token: int = 4
    dialect: Literal["gateway", "openai"] = "gateway"
    context_lengths: dict[str, int] = field(default_factory=lambda: {"hm-chat": 8192})
    listed_context: bool = False
    context_message: str = "This model's maximum context length is {limit} tokens; the prompt has {tokens}"
    header_dialect: Literal["x-ratelimit", "openai"] = "x-ratelimit"
    headers_on_success: bool = True
    relayed_headers: bool = False
    plain_text_429: bool = False
    plain_text_errors: bool = False
    redirect_loop: bool = False
    max_body_bytes: int = 4 * 1024 * 1024
    validates: bool = True


def count_tokens(text: str, per: int) -> int:
    """The hand-made tokenizer: characters / ``per``, rounded up."""
    return -(-len(text) // per)


class _Limits:
    """The limited key's RPM and TPM state (the main key is never limited)."""

    def __init__(self, spec: Handmade) -> None:
        self.spec = spec
        self.lock = threading.Lock()
        self.log: deque[float] = deque()
        self.fixed_start: float | None = None
        self.fixed_count = 0
        self.bucket = float(spec.bucket_capacity or spec.rpm)
        self.bucket_at = time.monotonic()
        self.charged: deque[tuple[float, int]] = deque()

    def admit(self, cost: int) -> tuple[bool, str, float, int]:
        """(admitted, which limit refused, seconds to wait, requests remaining)."""
        spec, now = self.spec, time.monotonic()
        with self.lock:
            while self.charged and self.charged[0][0] <= now - spec.window_s:
                self.charged.popleft()
            used = sum(t for _, t in self.charged)
            ok, wait, remaining = self._requests(now)
            if not ok:
                return False, "requests", wait, 0
            if spec.tpm_charge == "before" and used + cost > spec.tpm:
                self._undo(now)
                return (
                    False,
                    "tokens",
                    self.charged[0][0] + spec.window_s - now if self.charged else 1,
                    remaining,
                )
            if spec.tpm_charge == "after" and used >= spec.tpm:
                self._undo(now)
                return False, "tokens", self.charged[0][0] + spec.window_s - now, remaining
            if spec.tpm_charge == "before":
                self.charged.append((now, cost))
            return True, "", 0.0, remaining

    def charge_after(self, tokens: int) -> None:
        if self.spec.tpm_charge == "after":
            with self.lock:
                self.charged.append((time.monotonic(), tokens))

    def tokens_left(self) -> int:
        with self.lock:
            return max(0, self.spec.tpm - sum(t for _, t in self.charged))

    def _requests(self, now: float) -> tuple[bool, float, int]:
        spec = self.spec
        allowed = spec.rpm - spec.short_by
        if spec.limiter == "none":
            return True, 0.0, spec.rpm
        if spec.limiter == "sliding":
            while self.log and self.log[0] <= now - spec.window_s:
                self.log.popleft()
            if len(self.log) >= allowed:
                return False, self.log[len(self.log) - allowed] + spec.window_s - now, 0
            self.log.append(now)
            return True, 0.0, max(0, allowed - len(self.log))
        if spec.limiter == "fixed":
            if self.fixed_start is None or now >= self.fixed_start + spec.window_s:
                self.fixed_start, self.fixed_count = now, 0
            if self.fixed_count >= allowed:
                return False, self.fixed_start + spec.window_s - now, 0
            self.fixed_count += 1
            return True, 0.0, allowed - self.fixed_count
        period = spec.window_s / spec.rpm
        self.bucket = min(
            float(spec.bucket_capacity or spec.rpm), self.bucket + (now - self.bucket_at) / period
        )
        self.bucket_at = now
        if self.bucket < 1:
            return False, (1 - self.bucket) * period, 0
        self.bucket -= 1
        return True, 0.0, int(self.bucket)

    def _undo(self, now: float) -> None:
        """A request refused for tokens does not count against the RPM."""
        if self.spec.limiter == "sliding" and self.log:
            self.log.pop()
        elif self.spec.limiter == "fixed":
            self.fixed_count -= 1
        elif self.spec.limiter == "bucket":
            self.bucket += 1


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    spec: Handmade
    limits: _Limits
    seen: list[int]
    """The tokens of every admitted chat request."""
    prompts: list[int]
    """The prompt tokens of every chat request that passed validation."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 5
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        """Silent."""

    def do_GET(self) -> None:
        if self._refused():
            return
        spec = self.server.spec
        models = [
            {"id": m, "object": "model", "created": 0, "owned_by": "handmade"}
            | ({"context_length": n} if spec.listed_context else {})
            for m, n in spec.context_lengths.items()
        ]
        self._json(200, {"object": "list", "data": models})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > self.server.spec.max_body_bytes:
            self.close_connection = True
            self._error(413, "INVALID_PARAMS", "request body too large")
            return
        raw = self.rfile.read(length)
        if self._refused():
            return
        try:
            body = json.loads(raw)
        except ValueError:
            self._error(400, "INVALID_PARAMS", "malformed JSON body")
            return
        self._chat(body)

    def _refused(self) -> bool:
        """Redirects and authentication; True when the request was answered."""
        if self.server.spec.redirect_loop:
            self.send_response(307)
            self.send_header("Location", self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return True
        auth = self.headers.get("Authorization", "")
        key = (
            auth.removeprefix("Bearer ").strip()
            if auth.startswith("Bearer ")
            else self.headers.get("x-api-key")
        )
        if key not in (MAIN_KEY, LIMITED_KEY):
            self._error(401, "UNAUTHORIZED", "invalid or missing API key")
            return True
        self.key = key
        return False

    def _chat(self, body: Any) -> None:
        spec = self.server.spec
        problem = _documented_problem(body) if spec.validates else ""
        if problem:
            self._error(400, "INVALID_PARAMS", problem)
            return
        model = body.get("model") if isinstance(body, dict) else None
        messages = body.get("messages") if isinstance(body, dict) else None
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            messages = []
        if model not in spec.context_lengths:
            self._error(404, "MODEL_NOT_FOUND", f"model {model} not found", openai_code="model_not_found")
            return
        prompt = sum(3 + count_tokens(str(m.get("content") or ""), spec.chars_per_token) for m in messages)
        self.server.prompts.append(prompt)
        if prompt > spec.context_lengths[model]:
            message = spec.context_message.format(limit=spec.context_lengths[model], tokens=prompt)
            self._error(400, "INVALID_PARAMS", message, openai_code="context_length_exceeded")
            return
        completion = min(2, body.get("max_tokens") or 2)
        headers: dict[str, str] = {}
        if self.key == LIMITED_KEY:
            admitted, which, wait, remaining = self.server.limits.admit(prompt + completion)
            headers = self._limit_headers(remaining)
            if not admitted:
                self._rate_limited(which, wait, headers)
                return
        self.server.seen.append(prompt + completion)
        answer = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "ok ok"[: completion * 3]},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
        }
        if not spec.headers_on_success:
            headers = {}
        if self.key == LIMITED_KEY and spec.relayed_headers:
            headers |= {
                "X-RateLimit-Limit": "10000",
                "X-RateLimit-Remaining": "9999",
                "x-ratelimit-limit-requests": "10000",
                "x-ratelimit-remaining-requests": "9999",
            }
        if body.get("stream") is True:
            self._stream(answer, headers)
        else:
            self._json(200, answer, headers)
        if self.key == LIMITED_KEY:
            self.server.limits.charge_after(prompt + completion)

    def _stream(self, answer: dict[str, Any], headers: dict[str, str]) -> None:
        """The answer as two chunks, a usage chunk and [DONE] (the body is small: sent at once)."""
        head = {k: answer[k] for k in ("id", "created", "model")} | {"object": "chat.completion.chunk"}
        message = answer["choices"][0]["message"]
        chunks = [
            {**head, "choices": [{"index": 0, "delta": message, "finish_reason": None}]},
            {**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
            {**head, "choices": [], "usage": answer["usage"]},
        ]
        data = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"
        self._send(200, data, "text/event-stream", headers)

    def _limit_headers(self, remaining: int) -> dict[str, str]:
        spec = self.server.spec
        if spec.limiter == "none":
            return {}
        if spec.header_dialect == "openai":
            return {
                "x-ratelimit-limit-requests": str(spec.rpm),
                "x-ratelimit-remaining-requests": str(remaining),
                "x-ratelimit-limit-tokens": str(spec.tpm),
                "x-ratelimit-remaining-tokens": str(self.server.limits.tokens_left()),
            }
        return {
            "X-RateLimit-Limit": str(spec.rpm),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Remaining-Tokens": str(self.server.limits.tokens_left()),
        }

    def _rate_limited(self, which: str, wait: float, headers: dict[str, str]) -> None:
        spec = self.server.spec
        headers = {**headers, "Retry-After": str(max(1, math.ceil(wait)))}
        zero = "remaining-tokens" if which == "tokens" else "remaining"
        headers = {
            k: "0" if k.lower().endswith(zero) or k.lower() == f"x-ratelimit-{zero}-requests" else v
            for k, v in headers.items()
        }
        said = f"{which} per minute"
        if not spec.names_limit:
            said = "quota"
            headers = {k: v for k, v in headers.items() if "tokens" not in k.lower()}
        message = f"Rate limit exceeded: {said}. Please retry later."
        if spec.plain_text_429:
            self._send(429, message.encode(), "text/plain", headers)
            return
        self._error(429, "RATE_LIMIT", message, headers=headers, openai_code="rate_limit_exceeded")

    def _error(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        openai_code: str | None = None,
    ) -> None:
        if self.server.spec.plain_text_errors:
            self._send(status, f"error: {message}".encode(), "text/plain", headers or {})
            return
        if self.server.spec.dialect == "openai":
            error: dict[str, Any] = {
                "message": message,
                "type": "invalid_request_error",
                "param": None,
                "code": openai_code,
            }
        else:
            error = {"code": code, "message": message, "request_id": f"req-{uuid.uuid4().hex[:12]}"}
        self._json(status, {"error": error}, headers)

    def _json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(body).encode(), "application/json", headers or {})

    def _send(self, status: int, data: bytes, ctype: str, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


def _documented_problem(body: Any) -> str:
    """The first of the request schema's issues that the documents state ("" when none does)."""
    for issue in default_store().issues("openai.chat.request", body):
        if issue.rule is None:
            return f"invalid request: {issue.path}: {issue.message}"
    return ""


@contextmanager
def serving(spec: Handmade) -> Iterator[tuple[str, _Server]]:
    """Serve ``spec`` on an ephemeral port of 127.0.0.1; yields (base URL, server); stops on exit."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.spec, server.limits, server.seen, server.prompts = spec, _Limits(spec), [], []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextmanager
def session_on(
    spec: Handmade, *, profile: str = "gateway", **target_fields: Any
) -> Iterator[tuple[Session, _Server]]:
    """A conformance session on a hand-made gateway: its limited key for the rate-limit checks."""
    with serving(spec) as (url, server):
        target = Target(
            name="handmade",
            base_url=url,
            api_key=Secret(MAIN_KEY),
            api_key_2=Secret(LIMITED_KEY),
            models=Models(chat="hm-chat"),
            profile=profile,
            total_timeout=10.0,
            **target_fields,
        )
        with Client(target) as client:
            yield (
                Session(
                    target=target,
                    profile=load_profile(profile),
                    client=client,
                    store=default_store(),
                    pacer=Pacer(None, None),
                    ratelimit=RateLimitSetup(
                        client=client,
                        key=target.api_key_2,
                        rpm=spec.rpm,
                        tpm=spec.tpm,
                        dedicated=True,
                        window_s=spec.window_s,
                    ),
                    settings=RunSettings(fuzz_examples=3, fuzz_seed=1, close_grace_s=0.5),
                    secrets=(Secret(MAIN_KEY), Secret(LIMITED_KEY)),
                ),
                server,
            )


def verdicts(session: Session, *check_ids: str) -> dict[str, CheckResult]:
    """Run ``check_ids`` (in the runner's order) and return their results by id."""
    return {r.check_id: r for r in run_checks(session, select(list(check_ids)))}
