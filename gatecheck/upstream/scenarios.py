"""Scenarios: what the upstream harness does with one request, chosen by a nonce in its prompt.

A check registers a scenario for a nonce (``POST /_gatecheck/scenarios``), puts the nonce in its
prompt (prompts pass through gateways unchanged, whatever model aliases they map) and reads the
log back. A request without a registered nonce gets ``ok``. Every parameter has a default; an
unknown scenario or parameter is refused with the list of what is allowed.

Failing scenarios (``status``, ``flap``, ``reset``, ``silent``) fail ``times`` attempts of the
same nonce and answer ``ok`` after that (``times`` absent: every attempt fails; ``flap`` defaults
to one failure). Stream scenarios act after ``after`` content chunks (a request that does not
stream gets the same fault on its body: cut, stalled, error or malformed halfway).
"""

from __future__ import annotations

import math
import re
import secrets
from dataclasses import dataclass, fields
from typing import Any

from gatecheck._types import JSONObject

NONCE_RE = re.compile(r"gcnonce-[0-9a-f]{16}")
"""A nonce as the harness finds it in a request body (hex and a dash survive any JSON escaping)."""

SCENARIOS: dict[str, str] = {
    "ok": "answer like the reference model (itl_ms, ttft_ms, words, usage, finish_reason)",
    "usage": "ok, with scripted usage figures (usage: prompt_tokens, completion_tokens, ...)",
    "status": "answer an HTTP error (status 429/500/503..., retry_after seconds) for times attempts",
    "flap": "fail times attempts (default 1) with status (default 503), then answer ok",
    "reset": "reset the connection (when: before-headers or after-headers)",
    "silent": "accept and never answer (until hold_s, then reset)",
    "slow-first-token": "send the first token delay_ms late (headers and the role chunk at once)",
    "stream-cut": "after `after` content chunks, end it (how: close, without finish or [DONE]; or reset)",
    "stream-stall": "after `after` content chunks, send nothing more (until hold_s, then reset)",
    "stream-error-event": "after `after` content chunks, send an error event and close",
    "malformed-chunk": "after `after` content chunks, send a chunk that is not JSON, then go on to the end",
}
"""Every scenario and what it does."""

DEFAULT_USAGE: JSONObject = {
    "prompt_tokens": 1237,
    "completion_tokens": 41,
    "total_tokens": 1278,
    "cached_tokens": 1024,
    "reasoning_tokens": 13,
}
"""The ``usage`` scenario's figures when none are given: unlike anything a gateway could count itself."""

_USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens", "cached_tokens", "reasoning_tokens")
_FAILING = ("status", "flap", "reset", "silent")
_COMMON = ("itl_ms", "ttft_ms", "words", "usage", "finish_reason")
_PARAMS: dict[str, tuple[str, ...]] = {
    "ok": _COMMON,
    "usage": _COMMON,
    "status": ("status", "retry_after", "times", "message", *_COMMON),
    "flap": ("status", "retry_after", "times", "message", *_COMMON),
    "reset": ("when", "times", *_COMMON),
    "silent": ("hold_s", "times", *_COMMON),
    "slow-first-token": ("delay_ms", *_COMMON),
    "stream-cut": ("after", "how", *_COMMON),
    "stream-stall": ("after", "hold_s", *_COMMON),
    "stream-error-event": ("after", "message", *_COMMON),
    "malformed-chunk": ("after", *_COMMON),
}
FINISH_REASONS = ("stop", "length", "tool_calls", "content_filter")


class ScenarioError(ValueError):
    """A registration the harness refuses: the message says what is allowed."""


@dataclass(frozen=True, slots=True)
class Scenario:
    """One scripted behaviour and its parameters."""

    name: str = "ok"
    status: int = 503
    retry_after: float | None = None
    times: int | None = None
    message: str = "The upstream model service is overloaded (scripted by gatecheck upstream)"
    when: str = "before-headers"
    hold_s: float = 60.0
    delay_ms: float = 0.0
    after: int = 3
    how: str = "close"
    itl_ms: float | None = None
    ttft_ms: float | None = None
    words: int | None = None
    usage: JSONObject | None = None
    finish_reason: str | None = None

    def fails(self, attempt: int) -> bool:
        """Whether attempt ``attempt`` (1-based, per nonce) gets the failure rather than ``ok``."""
        if self.name not in _FAILING:
            return self.name != "ok" and self.name != "usage"
        return self.times is None or attempt <= self.times

    def to_json(self) -> JSONObject:
        """The scenario with its parameters (defaults included), as the control API shows it."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def new_nonce() -> str:
    """A fresh nonce for one check's requests."""
    return f"gcnonce-{secrets.token_hex(8)}"


def parse_scenario(data: object) -> tuple[str, Scenario]:
    """``(nonce, scenario)`` from a registration body; ``ScenarioError`` says what is wrong."""
    if not isinstance(data, dict):
        raise ScenarioError('the body must be a JSON object like {"nonce": "gcnonce-...", "scenario": "ok"}')
    nonce = data.get("nonce")
    if not isinstance(nonce, str) or not NONCE_RE.fullmatch(nonce):
        raise ScenarioError("nonce: a string gcnonce- followed by 16 lower-case hex digits")
    name = data.get("scenario", "ok")
    if name not in SCENARIOS:
        raise ScenarioError(f"scenario {name!r}: one of {', '.join(SCENARIOS)}")
    allowed = _PARAMS[name]
    unknown = sorted(set(data) - {"nonce", "scenario", *allowed})
    if unknown:
        raise ScenarioError(f"{name} takes {', '.join(allowed)}; not {', '.join(unknown)}")
    values: dict[str, Any] = {"name": name}
    if name == "flap":
        values["times"] = 1
    if name == "usage":
        values["usage"] = dict(DEFAULT_USAGE)
    for key in allowed:
        if key in data:
            values[key] = _PARSERS[key](data[key], key)
    return nonce, Scenario(**values)


def _number(low: float, high: float) -> Any:
    def parse(value: object, key: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ScenarioError(f"{key}: a number from {low:g} to {high:g}")
        if not low <= value <= high:
            raise ScenarioError(f"{key}: a number from {low:g} to {high:g}")
        return float(value)

    return parse


def _integer(low: int, high: int) -> Any:
    def parse(value: object, key: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ScenarioError(f"{key}: an integer from {low} to {high}")
        return value

    return parse


def _choice(*choices: str) -> Any:
    def parse(value: object, key: str) -> str:
        if value not in choices:
            raise ScenarioError(f"{key}: one of {', '.join(choices)}")
        return str(value)

    return parse


def _text(value: object, key: str) -> str:
    if not isinstance(value, str) or len(value) > 1000:
        raise ScenarioError(f"{key}: a string of at most 1000 characters")
    return value


def _usage(value: object, key: str) -> JSONObject:
    """Usage figures: prompt and completion tokens required, total defaulting to their sum."""
    if not isinstance(value, dict) or set(value) - set(_USAGE_KEYS):
        raise ScenarioError(f"{key}: an object with {', '.join(_USAGE_KEYS)}")
    for name, figure in value.items():
        if isinstance(figure, bool) or not isinstance(figure, int) or figure < 0:
            raise ScenarioError(f"{key}.{name}: an integer >= 0")
    if "prompt_tokens" not in value or "completion_tokens" not in value:
        raise ScenarioError(f"{key}: prompt_tokens and completion_tokens are required")
    return {"total_tokens": value["prompt_tokens"] + value["completion_tokens"], **value}


_PARSERS: dict[str, Any] = {
    "status": _integer(400, 599),
    "retry_after": _number(0, 3600),
    "times": _integer(0, 1000),
    "message": _text,
    "when": _choice("before-headers", "after-headers"),
    "hold_s": _number(0, 3600),
    "delay_ms": _number(0, 3_600_000),
    "after": _integer(0, 100_000),
    "how": _choice("close", "reset"),
    "itl_ms": _number(0, 60_000),
    "ttft_ms": _number(0, 600_000),
    "words": _integer(1, 4096),
    "usage": _usage,
    "finish_reason": _choice(*FINISH_REASONS),
}


def openai_usage(figures: JSONObject) -> JSONObject:
    """Scripted figures as an OpenAI usage object (details only when given)."""
    usage: JSONObject = {k: figures[k] for k in ("prompt_tokens", "completion_tokens", "total_tokens")}
    if "cached_tokens" in figures:
        usage["prompt_tokens_details"] = {"cached_tokens": figures["cached_tokens"]}
    if "reasoning_tokens" in figures:
        usage["completion_tokens_details"] = {"reasoning_tokens": figures["reasoning_tokens"]}
    return usage


def anthropic_usage(figures: JSONObject) -> JSONObject:
    """Scripted figures as an Anthropic usage object (cached tokens as cache reads)."""
    usage: JSONObject = {
        "input_tokens": figures["prompt_tokens"],
        "output_tokens": figures["completion_tokens"],
    }
    if "cached_tokens" in figures:
        usage["cache_read_input_tokens"] = figures["cached_tokens"]
    return usage
