"""The reference gateway's fault modes: each breaks exactly one documented rule.

A fault exists so that a conformance check can be shown able to fail: the conformance suite's own
tests run the suite against the gateway with each fault and assert that the checks mapped to it
fail (and pass without it). ``gatecheck serve --list-faults`` prints this table.

Document names: 000 = chat streaming, 001 = chat non-streaming, 002 = API reference,
003 = second provider's streaming guide, 004 = third provider's chat reference (all in
shared/api-docs/); "SSE" = the WHATWG HTML event-stream format; "OpenAI" = the OpenAI Chat
Completions protocol; "Anthropic" = the Anthropic Messages protocol.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Fault:
    """One rule the gateway can be told to break."""

    name: str
    area: str
    rule: str
    source: str


_FAULTS = [
    # --- SSE framing -------------------------------------------------------------------------
    Fault(
        "sse-no-blank-line", "sse", "events are separated by a blank line", "SSE; 000 Streaming SSE Chunks"
    ),
    Fault("sse-missing-done", "sse", "the stream ends with `data: [DONE]`", "000 Streaming SSE Chunks; 004"),
    Fault("sse-data-after-done", "sse", "nothing follows `data: [DONE]`", "000 Streaming SSE Chunks"),
    Fault(
        "sse-wrong-content-type",
        "sse",
        "a stream is served as text/event-stream",
        "004 Request Body (stream)",
    ),
    Fault("sse-keep-open", "sse", "the connection closes after `data: [DONE]`", "000 Best Practices; SSE"),
    Fault(
        "sse-invalid-json",
        "sse",
        "every `data:` payload but [DONE] is one JSON chunk",
        "000 Streaming SSE Chunks",
    ),
    Fault(
        "stream-burst",
        "sse",
        "a stream delivers chunks as they are generated, not in one burst",
        "000 overview (real-time responses)",
    ),
    # --- chunk contents and order ------------------------------------------------------------
    Fault(
        "chunk-role-repeated", "chunk", "delta.role appears only in the first chunk", "000 Field Reference"
    ),
    Fault(
        "chunk-id-changes",
        "chunk",
        "id, created and model are the same in every chunk",
        "000 Field Reference",
    ),
    Fault("chunk-wrong-object", "chunk", "object is always chat.completion.chunk", "000 Field Reference"),
    Fault(
        "chunk-finish-reason-twice",
        "chunk",
        "exactly one non-null finish_reason per choice",
        "000 Field Reference; OpenAI",
    ),
    Fault(
        "chunk-usage-missing", "chunk", "include_usage gives a final usage chunk", "000 Field Reference; 003"
    ),
    Fault("chunk-usage-every-chunk", "chunk", "usage appears only in the last chunk", "000 Field Reference"),
    Fault(
        "tool-call-id-repeated",
        "chunk",
        "a tool call's id/type/name come only on its first fragment",
        "OpenAI streaming tool calls; 000 Streaming with Tool Calls",
    ),
    Fault(
        "tool-call-bad-arguments",
        "chunk",
        "streamed tool-call arguments concatenate to valid JSON",
        "OpenAI streaming tool calls",
    ),
    Fault(
        "reasoning-after-content",
        "chunk",
        "reasoning_content deltas come before content",
        "003 Reasoning Models",
    ),
    Fault(
        "stream-nondeterministic",
        "chunk",
        "temperature 0 answers the same streamed and not",
        "001 Best Practices (temperature=0 for deterministic tasks)",
    ),
    # --- non-streaming bodies ----------------------------------------------------------------
    Fault(
        "body-usage-total-wrong",
        "body",
        "usage.total_tokens = prompt_tokens + completion_tokens",
        "001 Field Reference",
    ),
    Fault("body-wrong-object", "body", "object is always chat.completion", "001 Field Reference"),
    Fault(
        "body-role-not-assistant", "body", "choices[].message.role is always assistant", "001 Field Reference"
    ),
    Fault(
        "body-bad-finish-reason",
        "body",
        "finish_reason is one of stop, length, tool_calls, content_filter",
        "001 Field Reference",
    ),
    # --- parameters accepted but ignored -----------------------------------------------------
    Fault("ignore-n", "params", "n candidates are returned, indexed 0..n-1", "001 Compatibility (n > 1)"),
    Fault(
        "ignore-stop",
        "params",
        "generation stops before a stop sequence, which is not returned",
        "000/001 Request Parameters (stop)",
    ),
    Fault(
        "ignore-max-tokens",
        "params",
        "completion_tokens <= max_tokens, finish_reason length when cut",
        "000/001 Request Parameters (max_tokens)",
    ),
    Fault(
        "ignore-response-format", "params", "json_object mode returns a JSON object", "001 JSON Mode Output"
    ),
    Fault(
        "ignore-json-schema",
        "params",
        "json_schema output validates against the given schema",
        "004 Request Body (response_format json_schema)",
    ),
    Fault(
        "ignore-tool-choice",
        "params",
        "tool_choice required/named forces that tool call",
        "000 Request Parameters (tool_choice)",
    ),
    Fault(
        "tool-args-invalid",
        "params",
        "tool-call arguments satisfy the tool's parameters schema",
        "OpenAI function calling; 000 Streaming with Tool Calls",
    ),
    # --- auth --------------------------------------------------------------------------------
    Fault("auth-accept-any-key", "auth", "an invalid key gets 401", "002 Error Codes (401 UNAUTHORIZED)"),
    Fault(
        "auth-reject-x-api-key",
        "auth",
        "x-api-key authenticates like Bearer",
        "002 Overview; 002 Messages Authentication",
    ),
    # --- status codes and error bodies -------------------------------------------------------
    Fault(
        "error-unknown-model-400", "errors", "an unknown model gets 404 MODEL_NOT_FOUND", "002 Error Codes"
    ),
    Fault(
        "error-body-plain-text",
        "errors",
        "error bodies are JSON in the documented envelope",
        "002 Error Codes",
    ),
    Fault("error-no-request-id", "errors", "gateway error bodies carry request_id", "002 Error Codes"),
    Fault(
        "error-5xx-on-invalid",
        "errors",
        "invalid parameters get 400, never a 5xx",
        "002 Error Codes (400 INVALID_PARAMS)",
    ),
    Fault(
        "validation-lax",
        "errors",
        "out-of-range parameters get 400 INVALID_PARAMS",
        "000/001 Request Parameters; 002 Error Codes",
    ),
    Fault(
        "context-length-unchecked",
        "errors",
        "a prompt beyond the context length gets 400 context_length_exceeded",
        "001 Error Response",
    ),
    # --- rate limits -------------------------------------------------------------------------
    Fault("ratelimit-never-429", "ratelimit", "requests beyond the RPM get 429", "002 Rate Limits"),
    Fault(
        "ratelimit-over-admit",
        "ratelimit",
        "no more than RPM requests are admitted per window",
        "002 Rate Limits",
    ),
    Fault("ratelimit-no-retry-after", "ratelimit", "a 429 carries Retry-After", "002 Rate Limits"),
    Fault(
        "ratelimit-no-headers",
        "ratelimit",
        "a 429 carries X-RateLimit-Limit and X-RateLimit-Remaining",
        "002 Rate Limits",
    ),
    Fault(
        "ratelimit-remaining-increases",
        "ratelimit",
        "X-RateLimit-Remaining never increases within a window",
        "002 Rate Limits",
    ),
    Fault(
        "ratelimit-retry-after-short",
        "ratelimit",
        "after waiting Retry-After the request succeeds",
        "002 Rate Limits",
    ),
    Fault("tpm-unenforced", "ratelimit", "tokens beyond the TPM get 429", "002 Rate Limits"),
    # --- Anthropic event grammar -------------------------------------------------------------
    Fault(
        "anthropic-no-message-start",
        "anthropic",
        "message_start is the first event",
        "002 Messages Streaming; Anthropic",
    ),
    Fault(
        "anthropic-event-name-mismatch",
        "anthropic",
        "the `event:` name equals data.type",
        "002 Messages Streaming; Anthropic",
    ),
    Fault(
        "anthropic-delta-type-mismatch",
        "anthropic",
        "a block's deltas match its type (text -> text_delta)",
        "Anthropic streaming",
    ),
    Fault(
        "anthropic-missing-block-stop",
        "anthropic",
        "every content_block_start has its content_block_stop",
        "002 Messages Streaming; Anthropic",
    ),
    Fault(
        "anthropic-max-tokens-optional",
        "anthropic",
        "a request without max_tokens gets 400",
        "002 Messages Parameters (max_tokens required)",
    ),
    Fault(
        "anthropic-usage-decreases",
        "anthropic",
        "output_tokens in message_delta never decrease",
        "Anthropic streaming",
    ),
    Fault(
        "anthropic-stop-reason-wrong",
        "anthropic",
        "stop_reason is max_tokens when cut by max_tokens",
        "002 finish_reason Mapping",
    ),
    # --- auxiliary endpoints -----------------------------------------------------------------
    Fault(
        "models-missing-model",
        "aux",
        "GET /v1/models lists the served models",
        "004 Request Body (Model List)",
    ),
    Fault("balance-arithmetic", "aux", "daily_remaining = daily_budget - daily_used", "002 Balance"),
    Fault("images-bad-png", "aux", "a generated image decodes to a real image", "002 Images Generations"),
    Fault(
        "search-bad-shape",
        "aux",
        "search completions have the chat completion shape",
        "002 Search Completions",
    ),
    # --- proxy mode (gatecheck serve --upstream URL): what the gateway does with its upstream --
    Fault(
        "proxy-500-not-502",
        "proxy",
        "an upstream failure (5xx, reset) is answered 502 UPSTREAM_ERROR",
        "002 Error Codes (502 UPSTREAM_ERROR)",
    ),
    Fault(
        "proxy-hang-on-silent",
        "proxy",
        "a silent or stalled upstream is answered 504 GATEWAY_TIMEOUT within the timeout",
        "002 Error Codes (504 GATEWAY_TIMEOUT)",
    ),
    Fault(
        "proxy-retry-after-dropped",
        "proxy",
        "an upstream 429 reaches the client with its Retry-After",
        "002 Rate Limits (a 429 carries Retry-After)",
    ),
    Fault(
        "proxy-retry-storm",
        "proxy",
        "a retry after an upstream 429 waits what the upstream asked",
        "judgement (no retry storms; 000 Best Practices: back off on 429)",
    ),
    Fault(
        "proxy-truncated-success",
        "proxy",
        "a stream the upstream cut does not reach the client looking complete",
        "002 Error Codes (502 UPSTREAM_ERROR); the SDKs take [DONE] and message_stop as the end",
    ),
    Fault(
        "proxy-error-event-dropped",
        "proxy",
        "an upstream mid-stream error reaches the client as an error event",
        "the SDKs raise on an error event; without it a cut answer looks whole",
    ),
    Fault(
        "proxy-malformed-passthrough",
        "proxy",
        "a malformed upstream chunk is not passed through as it is",
        "000 Streaming SSE Chunks (every data payload is one JSON chunk)",
    ),
    Fault(
        "proxy-usage-dropped",
        "proxy",
        "the upstream's usage reaches the client",
        "004 Response Fields (usage, when the upstream returns it); 000 Field Reference",
    ),
    Fault(
        "proxy-param-dropped",
        "proxy",
        "the parameters a client sends reach the upstream",
        "000/001 Request Parameters (stop); 000 Compatibility",
    ),
    Fault(
        "proxy-stream-buffered",
        "proxy",
        "a proxied stream is relayed as it arrives, not buffered",
        "000 overview (real-time responses)",
    ),
    Fault(
        "proxy-key-leaked",
        "proxy",
        "the upstream's API key never reaches a client",
        "judgement (a provider credential is the gateway's secret)",
    ),
    Fault(
        "proxy-address-header",
        "proxy",
        "no response header reveals the upstream's address",
        "judgement (internal topology stays internal)",
    ),
    Fault(
        "proxy-double-charge",
        "proxy",
        "a request retried to success is charged once",
        "002 Balance (daily_used: what the key consumed)",
    ),
]

FAULTS: dict[str, Fault] = {fault.name: fault for fault in _FAULTS}
"""Every fault mode by name."""


def switches(factory: Callable[..., T], names: Mapping[str, str], active: Collection[str]) -> T:
    """``factory(field=True/False, ...)``: each field set when its fault (``names[field]``) is active."""
    return factory(**{field: name in active for field, name in names.items()})
