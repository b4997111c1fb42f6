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
    Fault(
        "stream-error-event",
        "sse",
        "a valid stream request is not answered with a mid-stream error event",
        "000 Quick Start; OpenAI (the SDK raises on an error payload)",
    ),
    Fault(
        "stream-cut",
        "sse",
        "a stream is not cut off before `data: [DONE]`",
        "000 Streaming SSE Chunks; SSE",
    ),
    Fault(
        "stream-stall",
        "sse",
        "a stream does not stall before `data: [DONE]`",
        "000 Streaming SSE Chunks; SSE",
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
        "tool-calls-same-index",
        "chunk",
        "two streamed tool calls never share an index",
        "OpenAI streaming tool calls",
    ),
    Fault(
        "tool-calls-interleaved",
        "chunk",
        "a streamed tool call's argument fragments come in one run, not interleaved with another call's",
        "OpenAI streaming tool calls",
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
    Fault(
        "usage-reasoning-excluded",
        "body",
        "completion_tokens include the reasoning tokens (reasoning_tokens <= completion_tokens)",
        "OpenAI usage; 004 Request Body (max_completion_tokens)",
    ),
    Fault(
        "usage-cached-over-prompt",
        "body",
        "prompt_tokens_details.cached_tokens <= prompt_tokens",
        "OpenAI usage",
    ),
    Fault(
        "tool-calls-same-id",
        "body",
        "the tool calls of one answer have distinct ids",
        "OpenAI function calling",
    ),
    Fault(
        "stream-by-default",
        "body",
        "a request without stream is answered non-streaming",
        "004 Request Body (stream); 001 Request Parameters",
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
    Fault(
        "reasoning-effort-rejected",
        "params",
        "reasoning_effort is accepted on reasoning models",
        "000/001 Request Parameters (reasoning_effort); 004 Request Body",
    ),
    Fault(
        "reasoning-outside-cap",
        "params",
        "max_completion_tokens caps completion tokens, reasoning tokens included",
        "004 Request Body (max_completion_tokens)",
    ),
    Fault(
        "content-parts-rejected",
        "params",
        "message content as an array of parts is accepted",
        "004 Request Body (content)",
    ),
    Fault(
        "media-parts-dropped",
        "params",
        "an accepted media content part reaches the model",
        "004 Request Body (content parts); 000 Compatibility (multimodal input)",
    ),
    Fault(
        "tool-results-parallel-refused",
        "params",
        "two tool messages in a row (results of parallel calls) are accepted",
        "000 Message Roles (tool); OpenAI function calling",
    ),
    # --- auth --------------------------------------------------------------------------------
    Fault("auth-accept-any-key", "auth", "an invalid key gets 401", "002 Error Codes (401 UNAUTHORIZED)"),
    Fault(
        "auth-key-optional", "auth", "a request without a key gets 401", "002 Error Codes (401 UNAUTHORIZED)"
    ),
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
    Fault(
        "ratelimit-under-admit",
        "ratelimit",
        "a key gets its RPM: RPM requests are admitted per window",
        "002 Rate Limits (RPM configurable per key)",
    ),
    Fault("ratelimit-no-retry-after", "ratelimit", "a 429 carries Retry-After", "002 Rate Limits"),
    Fault(
        "ratelimit-no-headers",
        "ratelimit",
        "a 429 carries X-RateLimit-Limit and X-RateLimit-Remaining",
        "002 Rate Limits",
    ),
    Fault(
        "ratelimit-headers-relayed",
        "ratelimit",
        "rate-limit headers describe the key's own limit, not an upstream's (limit 10000, remaining 9999)",
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
    Fault(
        "anthropic-end-turn-as-stop-sequence",
        "anthropic",
        "a natural end says stop_reason end_turn (chat completions' stop), not stop_sequence",
        "002 finish_reason Mapping",
    ),
    Fault(
        "anthropic-input-tokens-zero",
        "anthropic",
        "message_start carries the request's input_tokens, not 0",
        "Anthropic streaming; 002 Messages Streaming",
    ),
    Fault(
        "anthropic-error-openai-envelope",
        "anthropic",
        "a /v1/messages error is in 002's envelope or Anthropic's, not OpenAI's",
        "002 Error Codes; 002 Messages (Anthropic compatible)",
    ),
    Fault(
        "anthropic-tool-stop-reason-wrong",
        "anthropic",
        "a message ending with a tool call says stop_reason tool_use",
        "Anthropic tool use",
    ),
    Fault(
        "anthropic-tool-input-invalid",
        "anthropic",
        "a tool_use block's input_json_delta fragments concatenate to JSON",
        "Anthropic streaming",
    ),
    Fault(
        "anthropic-ignore-stop-sequences",
        "anthropic",
        "generation ends before a stop sequence, which is not returned",
        "002 Messages Parameters (stop_sequences)",
    ),
    Fault(
        "anthropic-stop-sequence-unreported",
        "anthropic",
        "an answer ended by a stop sequence says stop_reason stop_sequence and names it",
        "Anthropic Messages",
    ),
    Fault(
        "anthropic-temperature-lax",
        "anthropic",
        "temperature above 1 gets 400 on /v1/messages",
        "002 Messages Parameters (temperature 0-1)",
    ),
    Fault(
        "anthropic-top-p-lax",
        "anthropic",
        "top_p above 1 gets 400 on /v1/messages",
        "002 Messages Parameters (top_p 0-1)",
    ),
    Fault(
        "anthropic-system-blocks-rejected",
        "anthropic",
        "system given as content blocks is accepted",
        "002 Messages Parameters (system: string or content blocks)",
    ),
    Fault(
        "anthropic-content-blocks-rejected",
        "anthropic",
        "message content given as content blocks is accepted",
        "002 Messages Parameters (messages.content: string or content blocks)",
    ),
    # --- auxiliary endpoints -----------------------------------------------------------------
    Fault(
        "models-missing-model",
        "aux",
        "GET /v1/models lists the served models",
        "004 Request Body (Model List)",
    ),
    Fault("balance-arithmetic", "aux", "daily_remaining = daily_budget - daily_used", "002 Balance"),
    Fault("balance-currency-usd", "aux", "currency is the fixed CNY", "002 Balance (currency)"),
    Fault("balance-reset-past", "aux", "daily_reset_at is the next reset, in the future", "002 Balance"),
    Fault("images-bad-png", "aux", "a generated image decodes to a real image", "002 Images Generations"),
    Fault(
        "images-ignore-response-format",
        "aux",
        "response_format b64_json gives base64 images",
        "002 Images Generations (response_format)",
    ),
    Fault("images-ignore-n", "aux", "n images are generated", "002 Images Generations (n)"),
    Fault(
        "images-ignore-size",
        "aux",
        "an image has the requested size",
        "002 Images Generations (size)",
    ),
    Fault(
        "search-bad-shape",
        "aux",
        "search completions have the chat completion shape",
        "002 Search Completions",
    ),
    Fault(
        "search-no-citations",
        "aux",
        "a search answer cites its sources",
        "002 Search Completions (search source citations included in the answer)",
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
