"""The double's models, its error type and the reproduction switches (quirks).

Models: the six chat models of 000/001's Supported Models table with their documented context
lengths, the image model of 002's example, and two models of the double's own (a gateway's console
lists more than the documents do): one with a small context and one with a larger one. Context
lengths are published in ``GET /v1/models`` as ``context_length`` (the field OpenRouter and others
use; no document names one).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Model:
    """One model the double serves."""

    id: str
    owned_by: str
    context_length: int | None = None
    kind: str = "chat"
    reasoning: bool = False
    search: bool = False


MODELS: dict[str, Model] = {
    m.id: m
    for m in (
        Model("deepseek-v4-flash", "DeepSeek", 1_000_000, search=True),
        Model("deepseek-v4-pro", "DeepSeek", 1_000_000, reasoning=True, search=True),
        Model("qwen3.7-max", "Qwen", 1_000_000, search=True),
        Model("glm-5.7", "Zhipu AI", 200_000),
        Model("kimi-k2.6", "Moonshot AI", 256_000),
        Model("minimax-m3", "MiniMax", 1_000_000),
        Model("gpt-image-2", "OpenAI", kind="images"),
        Model("double-8k", "independent-double", 8_192),
        Model("double-2m", "independent-double", 2_000_000),
    )
}


class ApiError(Exception):
    """An error answer: HTTP status, 002's code, a message; rate-limit headers when there are some."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def invalid(message: str) -> ApiError:
    """002: 400 INVALID_PARAMS."""
    return ApiError(400, "INVALID_PARAMS", message)


QUIRKS: dict[str, str] = {
    "tool-calls-null": 'every content delta also carries "tool_calls": null (valid for the OpenAI SDK)',
    "verbose": "replies of 40-60 words (over 48 tokens) that never contain a digit",
    "long-json": "JSON-mode objects longer than 48 tokens, so a 48-token cap cuts them (finish length)",
    "no-ratelimit": "no rate limiting at all: never a 429, no rate-limit headers",
    "relayed-headers": "2xx responses carry an upstream's rate-limit headers (limit 10000, remaining 9999)",
    "tpm-off-bucket": "no TPM; RPM by a token bucket whose Retry-After frees one request slot",
    "stall-after-headers": "chat streams send 200 and their headers, then nothing",
    "model-name-field": 'stream chunks name the model "model_name" instead of "model"',
    "index-in-delta": "stream chunks put the choice index inside delta",
    "openai-envelope-on-messages": "/v1/messages errors use the OpenAI envelope (type, param, code)",
    "zero-input-tokens-start": "message_start says usage.input_tokens 0",
    "anthropic-tool-use-broken": "/v1/messages tool use ends with end_turn and partial_json not JSON",
    "under-admission": "admits one request fewer than the RPM it declares",
    "plain-text-429": "429 bodies are plain text",
    "redirect-loop": "every request is answered 307 to its own URL",
}
"""Switches that make the double reproduce one behaviour of issue 9 each (all off: the faithful double)."""
