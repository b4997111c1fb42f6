"""Every fault mode breaks its rule: a probe of the rule holds without the fault and fails with it.

One probe per fault (a rule check written directly against the wire, independent of the
conformance suite's checks), run on two gateways with the same options, one with the fault.
"""

from __future__ import annotations

import base64
import datetime
import itertools
import json
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import jsonschema
import pytest
from _gateway_helpers import (
    AUTH,
    CHAT,
    CLIENT,
    MESSAGES,
    chat_body,
    message_body,
    post,
    stream,
    user,
)

from gatecheck.reference import DEMO_KEY, FAULTS, TINY_MODEL, RunningGateway
from gatecheck.schemas import default_store

Check = Callable[[RunningGateway], bool]


@dataclass(frozen=True)
class Probe:
    """A rule check and the gateway options it needs."""

    check: Check
    options: dict[str, Any] = field(default_factory=dict)


PROBES: dict[str, Probe] = {}

COUNT = "Count from 1 to 20 separated by spaces"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {
            "type": "object",
            "properties": {"zone": {"type": "string", "minLength": 3}},
            "required": ["zone"],
        },
    },
}
SCHEMA = {
    "type": "object",
    "properties": {"title": {"type": "string"}, "year": {"type": "integer", "minimum": 1900}},
    "required": ["title", "year"],
    "additionalProperties": False,
}


def probe(fault: str, **options: Any) -> Callable[[Check], Check]:
    """Register ``check`` as the probe of ``fault``."""

    def register(check: Check) -> Check:
        PROBES[fault] = Probe(check, options)
        return check

    return register


def chat_stream(gw: RunningGateway, **extra: Any) -> list[Any]:
    return stream(gw, CHAT, chat_body("one two three four", stream=True, **extra)).payloads()


def deltas(chunks: list[Any]) -> list[dict[str, Any]]:
    return [c["choices"][0]["delta"] for c in chunks if c.get("choices")]


def tool_fragments(gw: RunningGateway) -> list[dict[str, Any]]:
    chunks = chat_stream(gw, tools=[WEATHER])
    return [d["tool_calls"][0] for d in deltas(chunks) if d.get("tool_calls")]


def first_message(gw: RunningGateway, **extra: Any) -> dict[str, Any]:
    return post(gw, CHAT, chat_body(COUNT, **extra)).json()["choices"][0]["message"]


# --- SSE framing ---------------------------------------------------------------------------


@probe("sse-no-blank-line")
def _blank_lines(gw: RunningGateway) -> bool:
    raw = stream(gw, CHAT, chat_body(stream=True)).raw
    return raw.count(b"data: ") == raw.count(b"\n\n")


@probe("sse-missing-done")
def _done_last(gw: RunningGateway) -> bool:
    return stream(gw, CHAT, chat_body(stream=True)).events[-1].data == "[DONE]"


@probe("sse-data-after-done")
def _nothing_after_done(gw: RunningGateway) -> bool:
    return stream(gw, CHAT, chat_body(stream=True)).raw.endswith(b"data: [DONE]\n\n")


@probe("sse-wrong-content-type")
def _event_stream_type(gw: RunningGateway) -> bool:
    return stream(gw, CHAT, chat_body(stream=True)).headers["content-type"].startswith("text/event-stream")


@probe("sse-keep-open")
def _closes_after_done(gw: RunningGateway) -> bool:
    timeout = httpx.Timeout(5.0, read=1.0)
    try:
        with httpx.stream(
            "POST", gw.url + CHAT, json=chat_body(stream=True), headers=AUTH, timeout=timeout
        ) as r:
            r.read()
    except httpx.ReadTimeout:
        return False
    return True


@probe("sse-invalid-json")
def _json_payloads(gw: RunningGateway) -> bool:
    try:
        chat_stream(gw)
    except json.JSONDecodeError:
        return False
    return True


@probe("stream-burst", ttft_ms=10, itl_ms=25)
def _really_streams(gw: RunningGateway) -> bool:
    streamed = stream(gw, CHAT, chat_body(stream=True, max_tokens=5))
    times = [
        e.t_ns
        for e in streamed.events
        if e.data != "[DONE]" and json.loads(e.data)["choices"][0]["delta"].get("content")
    ]
    return times[-1] - times[0] >= 50e6


def _runs_to_done(gw: RunningGateway) -> bool:
    """The chat stream is read to its end within 5 s and its last event is data: [DONE]."""
    try:
        streamed = stream(gw, CHAT, chat_body("one two three four five six", stream=True))
    except httpx.HTTPError:
        return False
    return bool(streamed.events) and streamed.events[-1].data == "[DONE]"


@probe("stream-error-event")
def _no_error_event(gw: RunningGateway) -> bool:
    return _runs_to_done(gw) and all("error" not in p for p in chat_stream(gw))


@probe("stream-cut")
def _not_cut(gw: RunningGateway) -> bool:
    return _runs_to_done(gw)


@probe("stream-stall", keep_open_seconds=10.0)
def _not_stalled(gw: RunningGateway) -> bool:
    timeout = httpx.Timeout(5.0, read=1.0)
    try:
        with httpx.stream(
            "POST", gw.url + CHAT, json=chat_body(stream=True), headers=AUTH, timeout=timeout
        ) as r:
            return r.read().endswith(b"data: [DONE]\n\n")
    except httpx.ReadTimeout:
        return False


# --- chunks --------------------------------------------------------------------------------


@probe("chunk-role-repeated")
def _role_once(gw: RunningGateway) -> bool:
    return ["role" in d for d in deltas(chat_stream(gw))].count(True) == 1


@probe("chunk-id-changes")
def _same_ids(gw: RunningGateway) -> bool:
    return len({(c["id"], c["created"], c["model"]) for c in chat_stream(gw)}) == 1


@probe("chunk-wrong-object")
def _chunk_object(gw: RunningGateway) -> bool:
    return {c["object"] for c in chat_stream(gw)} == {"chat.completion.chunk"}


@probe("chunk-finish-reason-twice")
def _one_finish(gw: RunningGateway) -> bool:
    return sum(1 for c in chat_stream(gw) if c["choices"][0]["finish_reason"]) == 1


@probe("chunk-usage-missing")
def _usage_chunk(gw: RunningGateway) -> bool:
    last = chat_stream(gw, stream_options={"include_usage": True})[-1]
    return last["choices"] == [] and bool(last.get("usage"))


@probe("chunk-usage-every-chunk")
def _usage_only_last(gw: RunningGateway) -> bool:
    chunks = chat_stream(gw, stream_options={"include_usage": True})
    return all(c.get("usage") is None for c in chunks[:-1])


@probe("tool-call-id-repeated")
def _ids_first_fragment_only(gw: RunningGateway) -> bool:
    return all("id" not in f and "name" not in f["function"] for f in tool_fragments(gw)[1:])


@probe("tool-call-bad-arguments")
def _arguments_json(gw: RunningGateway) -> bool:
    try:
        json.loads("".join(f["function"]["arguments"] for f in tool_fragments(gw)))
    except json.JSONDecodeError:
        return False
    return True


@probe("reasoning-after-content")
def _reasoning_first(gw: RunningGateway) -> bool:
    kinds = [
        "r" if d.get("reasoning_content") else "c"
        for d in deltas(chat_stream(gw, model="deepseek-v4-pro"))
        if d.get("reasoning_content") or d.get("content")
    ]
    return "".join(kinds).startswith("r") and "cr" not in "".join(kinds)


BOTH_TOOLS = "Call get_weather and get_time for Beijing"


def two_call_fragments(gw: RunningGateway) -> list[dict[str, Any]]:
    chunks = chat_stream(gw, tools=[WEATHER, TIME], tool_choice="required", messages=user(BOTH_TOOLS))
    return [f for d in deltas(chunks) for f in d.get("tool_calls") or []]


@probe("tool-calls-same-index")
def _one_index_per_call(gw: RunningGateway) -> bool:
    headers = [f["index"] for f in two_call_fragments(gw) if "id" in f]
    return len(headers) == 2 and len(set(headers)) == 2


@probe("tool-calls-interleaved")
def _calls_in_runs(gw: RunningGateway) -> bool:
    order = [f["index"] for f in two_call_fragments(gw)]
    return order == sorted(order) and len(set(order)) == 2


@probe("stream-nondeterministic")
def _stream_equals_body(gw: RunningGateway) -> bool:
    request = chat_body("same answer please", temperature=0)
    whole = post(gw, CHAT, request).json()["choices"][0]["message"]["content"]
    return stream(gw, CHAT, {**request, "stream": True}).text() == whole


# --- non-streaming bodies and parameters ----------------------------------------------------


@probe("body-usage-total-wrong")
def _usage_total(gw: RunningGateway) -> bool:
    usage = post(gw, CHAT, chat_body()).json()["usage"]
    return bool(usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"])


@probe("body-wrong-object")
def _body_object(gw: RunningGateway) -> bool:
    return bool(post(gw, CHAT, chat_body()).json()["object"] == "chat.completion")


@probe("body-role-not-assistant")
def _assistant(gw: RunningGateway) -> bool:
    return bool(first_message(gw)["role"] == "assistant")


@probe("body-bad-finish-reason")
def _finish_enum(gw: RunningGateway) -> bool:
    return post(gw, CHAT, chat_body()).json()["choices"][0]["finish_reason"] in {
        "stop",
        "length",
        "tool_calls",
        "content_filter",
    }


def reasoning_usage(gw: RunningGateway, **extra: Any) -> dict[str, Any]:
    body = chat_body(COUNT, model="deepseek-v4-pro", reasoning_effort="low", **extra)
    return dict(post(gw, CHAT, body).json()["usage"])


@probe("usage-reasoning-excluded")
def _reasoning_in_completion(gw: RunningGateway) -> bool:
    usage = reasoning_usage(gw, max_completion_tokens=12)
    return bool(usage["completion_tokens_details"]["reasoning_tokens"] <= usage["completion_tokens"] == 12)


@probe("usage-cached-over-prompt")
def _cached_within_prompt(gw: RunningGateway) -> bool:
    usage = post(gw, CHAT, chat_body()).json()["usage"]
    return bool(usage["prompt_tokens_details"]["cached_tokens"] <= usage["prompt_tokens"])


@probe("tool-calls-same-id")
def _distinct_call_ids(gw: RunningGateway) -> bool:
    body = chat_body(BOTH_TOOLS, tools=[WEATHER, TIME], tool_choice="required")
    calls = post(gw, CHAT, body).json()["choices"][0]["message"]["tool_calls"]
    return len(calls) == 2 and len({c["id"] for c in calls}) == 2


@probe("stream-by-default")
def _not_streamed_by_default(gw: RunningGateway) -> bool:
    response = post(gw, CHAT, chat_body())
    return response.headers["content-type"].startswith("application/json")


@probe("ignore-n")
def _n(gw: RunningGateway) -> bool:
    return [c["index"] for c in post(gw, CHAT, chat_body(n=2)).json()["choices"]] == [0, 1]


@probe("ignore-stop")
def _stop(gw: RunningGateway) -> bool:
    return "12" not in first_message(gw, stop=["12"])["content"]


@probe("ignore-max-tokens")
def _max_tokens(gw: RunningGateway) -> bool:
    body = post(gw, CHAT, chat_body(COUNT, max_tokens=5)).json()
    return bool(body["usage"]["completion_tokens"] <= 5 and body["choices"][0]["finish_reason"] == "length")


@probe("ignore-response-format")
def _json_object(gw: RunningGateway) -> bool:
    try:
        return isinstance(
            json.loads(first_message(gw, response_format={"type": "json_object"})["content"]), dict
        )
    except json.JSONDecodeError:
        return False


@probe("ignore-json-schema")
def _json_schema(gw: RunningGateway) -> bool:
    fmt = {"type": "json_schema", "json_schema": {"name": "film", "schema": SCHEMA}}
    try:
        value = json.loads(first_message(gw, response_format=fmt)["content"])
    except json.JSONDecodeError:
        return False
    return bool(jsonschema.Draft7Validator(SCHEMA).is_valid(value))


@probe("ignore-tool-choice")
def _forced_tool(gw: RunningGateway) -> bool:
    message = first_message(gw, tools=[WEATHER, TIME], tool_choice="required")
    return bool(message.get("tool_calls"))


@probe("tool-args-invalid")
def _tool_args(gw: RunningGateway) -> bool:
    message = first_message(
        gw, tools=[TIME], tool_choice={"type": "function", "function": {"name": "get_time"}}
    )
    arguments = json.loads(message["tool_calls"][0]["function"]["arguments"])
    return bool(jsonschema.Draft7Validator(TIME["function"]["parameters"]).is_valid(arguments))


@probe("reasoning-effort-rejected")
def _effort_accepted(gw: RunningGateway) -> bool:
    body = chat_body(model="deepseek-v4-pro", reasoning_effort="high", max_completion_tokens=8)
    return post(gw, CHAT, body).status_code == 200


@probe("reasoning-outside-cap")
def _cap_includes_reasoning(gw: RunningGateway) -> bool:
    return reasoning_usage(gw, max_completion_tokens=12)["completion_tokens"] <= 12


IMAGE_PART = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}


def parts_usage(gw: RunningGateway, *parts: dict[str, Any]) -> httpx.Response:
    content = [{"type": "text", "text": "what is this"}, *parts]
    return post(gw, CHAT, chat_body(messages=[{"role": "user", "content": content}], max_tokens=4))


@probe("content-parts-rejected")
def _text_parts_accepted(gw: RunningGateway) -> bool:
    return parts_usage(gw).status_code == 200


@probe("media-parts-dropped")
def _media_counted(gw: RunningGateway) -> bool:
    return bool(
        parts_usage(gw, IMAGE_PART).json()["usage"]["prompt_tokens"]
        > parts_usage(gw).json()["usage"]["prompt_tokens"]
    )


@probe("tool-results-parallel-refused")
def _two_tool_results(gw: RunningGateway) -> bool:
    calls = [
        {"id": f"c{i}", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
        for i in (1, 2)
    ]
    messages = [
        *user("weather twice"),
        {"role": "assistant", "content": None, "tool_calls": calls},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "c2", "content": "rain"},
    ]
    return post(gw, CHAT, chat_body(messages=messages, tools=[WEATHER])).status_code == 200


# --- auth and errors -------------------------------------------------------------------------


@probe("auth-accept-any-key")
def _bad_key_401(gw: RunningGateway) -> bool:
    return post(gw, CHAT, chat_body(), headers={"Authorization": "Bearer not-a-key"}).status_code == 401


@probe("auth-key-optional")
def _no_key_401(gw: RunningGateway) -> bool:
    return post(gw, CHAT, chat_body(), headers={}).status_code == 401


@probe("auth-reject-x-api-key")
def _x_api_key(gw: RunningGateway) -> bool:
    return post(gw, MESSAGES, message_body(), headers={"x-api-key": DEMO_KEY}).status_code == 200


@probe("error-unknown-model-400")
def _unknown_model_404(gw: RunningGateway) -> bool:
    return post(gw, CHAT, chat_body(model="no-such-model")).status_code == 404


@probe("error-body-plain-text")
def _json_errors(gw: RunningGateway) -> bool:
    response = post(gw, CHAT, chat_body(), headers={})
    return response.headers["content-type"].startswith("application/json") and "error" in response.json()


@probe("error-no-request-id")
def _request_id(gw: RunningGateway) -> bool:
    return "request_id" in post(gw, CHAT, chat_body(), headers={}).json()["error"]


@probe("error-5xx-on-invalid")
def _invalid_not_5xx(gw: RunningGateway) -> bool:
    return post(gw, CHAT, chat_body(temperature=5)).status_code < 500


@probe("validation-lax")
def _out_of_range_400(gw: RunningGateway) -> bool:
    return post(gw, CHAT, chat_body(temperature=5)).status_code == 400


@probe("context-length-unchecked")
def _context_400(gw: RunningGateway) -> bool:
    return post(gw, CHAT, chat_body("w " * 2000, model=TINY_MODEL)).status_code == 400


# --- rate limits ---------------------------------------------------------------------------


def burst(gw: RunningGateway, count: int) -> list[httpx.Response]:
    return [post(gw, CHAT, chat_body(max_tokens=1)) for _ in range(count)]


@probe("ratelimit-never-429", rpm=2)
def _gets_429(gw: RunningGateway) -> bool:
    return 429 in [r.status_code for r in burst(gw, 3)]


@probe("ratelimit-over-admit", rpm=2)
def _admits_rpm(gw: RunningGateway) -> bool:
    return [r.status_code for r in burst(gw, 5)].count(200) == 2


@probe("ratelimit-under-admit", rpm=3)
def _admits_its_rpm(gw: RunningGateway) -> bool:
    return [r.status_code for r in burst(gw, 4)].count(200) == 3


@probe("ratelimit-headers-relayed", rpm=3)
def _headers_are_the_keys(gw: RunningGateway) -> bool:
    headers = burst(gw, 1)[0].headers
    return headers["X-RateLimit-Limit"] == "3" and int(headers["X-RateLimit-Remaining"]) <= 3


@probe("ratelimit-no-retry-after", rpm=1)
def _retry_after(gw: RunningGateway) -> bool:
    return "Retry-After" in burst(gw, 2)[-1].headers


@probe("ratelimit-no-headers", rpm=1)
def _limit_headers(gw: RunningGateway) -> bool:
    headers = burst(gw, 2)[-1].headers
    return "X-RateLimit-Limit" in headers and "X-RateLimit-Remaining" in headers


@probe("ratelimit-remaining-increases", rpm=6)
def _remaining_monotonic(gw: RunningGateway) -> bool:
    remaining = [int(r.headers["X-RateLimit-Remaining"]) for r in burst(gw, 7)]
    return all(b <= a for a, b in itertools.pairwise(remaining))


@probe("ratelimit-retry-after-short", rpm=1, window_seconds=1.2)
def _waiting_works(gw: RunningGateway) -> bool:
    refused = burst(gw, 2)[-1]
    time.sleep(int(refused.headers["Retry-After"]))
    return burst(gw, 1)[0].status_code == 200


@probe("tpm-unenforced", tpm=100, rpm=1000)
def _tpm(gw: RunningGateway) -> bool:
    statuses = [post(gw, CHAT, chat_body("a b c d e", max_tokens=30)).status_code for _ in range(3)]
    return 429 in statuses


# --- Anthropic -----------------------------------------------------------------------------


def message_events(gw: RunningGateway, **extra: Any) -> list[tuple[str, Any]]:
    events = stream(gw, MESSAGES, message_body("hello there world", stream=True, **extra)).events
    return [(e.event, json.loads(e.data)) for e in events]


@probe("anthropic-no-message-start")
def _message_start_first(gw: RunningGateway) -> bool:
    return message_events(gw)[0][1]["type"] == "message_start"


@probe("anthropic-event-name-mismatch")
def _names_match(gw: RunningGateway) -> bool:
    return all(name == data["type"] for name, data in message_events(gw))


@probe("anthropic-delta-type-mismatch")
def _text_deltas(gw: RunningGateway) -> bool:
    return all(
        d["delta"]["type"] == "text_delta"
        for _, d in message_events(gw)
        if d["type"] == "content_block_delta"
    )


@probe("anthropic-missing-block-stop")
def _block_stops(gw: RunningGateway) -> bool:
    kinds = [d["type"] for _, d in message_events(gw)]
    return kinds.count("content_block_start") == kinds.count("content_block_stop")


@probe("anthropic-max-tokens-optional")
def _max_tokens_required(gw: RunningGateway) -> bool:
    return post(gw, MESSAGES, {"model": "deepseek-v4-flash", "messages": user("hi")}).status_code == 400


@probe("anthropic-usage-decreases")
def _usage_grows(gw: RunningGateway) -> bool:
    data = [d for _, d in message_events(gw)]
    start = data[0]["message"]["usage"]["output_tokens"]
    return bool(start <= next(d for d in data if d["type"] == "message_delta")["usage"]["output_tokens"])


@probe("anthropic-stop-reason-wrong")
def _stop_reason_max_tokens(gw: RunningGateway) -> bool:
    return bool(post(gw, MESSAGES, message_body(max_tokens=2)).json()["stop_reason"] == "max_tokens")


@probe("anthropic-end-turn-as-stop-sequence")
def _natural_end_turn(gw: RunningGateway) -> bool:
    return bool(post(gw, MESSAGES, message_body("hello there")).json()["stop_reason"] == "end_turn")


@probe("anthropic-input-tokens-zero")
def _start_input_tokens(gw: RunningGateway) -> bool:
    whole = post(gw, MESSAGES, message_body("hello there world")).json()["usage"]["input_tokens"]
    start = message_events(gw)[0][1]["message"]["usage"]["input_tokens"]
    return bool(start == whole > 0)


@probe("anthropic-error-openai-envelope")
def _anthropic_error_envelope(gw: RunningGateway) -> bool:
    body = post(gw, MESSAGES, {"model": "deepseek-v4-flash", "messages": user("hi")}).json()
    return default_store().is_valid("anthropic.error", body) and default_store().is_valid(
        "error.gateway", body
    )


MESSAGE_TOOL = {"name": "get_weather", "input_schema": WEATHER["function"]["parameters"]}


@probe("anthropic-tool-stop-reason-wrong")
def _tool_use_stop_reason(gw: RunningGateway) -> bool:
    body = post(gw, MESSAGES, message_body("weather in Oslo", tools=[MESSAGE_TOOL])).json()
    return bool(body["content"][0]["type"] == "tool_use" and body["stop_reason"] == "tool_use")


@probe("anthropic-tool-input-invalid")
def _tool_input_json(gw: RunningGateway) -> bool:
    events = message_events(gw, tools=[MESSAGE_TOOL])
    fragments = [d["delta"]["partial_json"] for _, d in events if d["type"] == "content_block_delta"]
    try:
        return isinstance(json.loads("".join(fragments)), dict)
    except ValueError:
        return False


@probe("anthropic-ignore-stop-sequences")
def _stop_sequences(gw: RunningGateway) -> bool:
    return (
        "12"
        not in post(gw, MESSAGES, message_body(COUNT, stop_sequences=["12"])).json()["content"][0]["text"]
    )


@probe("anthropic-stop-sequence-unreported")
def _stop_sequence_named(gw: RunningGateway) -> bool:
    body = post(gw, MESSAGES, message_body(COUNT, stop_sequences=["12"])).json()
    return bool(body["stop_reason"] == "stop_sequence" and body["stop_sequence"] == "12")


@probe("anthropic-temperature-lax")
def _temperature_range(gw: RunningGateway) -> bool:
    return post(gw, MESSAGES, message_body(temperature=1.5)).status_code == 400


@probe("anthropic-top-p-lax")
def _top_p_range(gw: RunningGateway) -> bool:
    return post(gw, MESSAGES, message_body(top_p=1.5)).status_code == 400


@probe("anthropic-system-blocks-rejected")
def _system_blocks(gw: RunningGateway) -> bool:
    system = [{"type": "text", "text": "Be brief."}]
    return post(gw, MESSAGES, message_body(system=system)).status_code == 200


@probe("anthropic-content-blocks-rejected")
def _content_blocks(gw: RunningGateway) -> bool:
    blocks = [{"role": "user", "content": [{"type": "text", "text": "hello"}]}]
    return post(gw, MESSAGES, message_body(messages=blocks)).status_code == 200


# --- auxiliary endpoints -------------------------------------------------------------------


@probe("models-missing-model")
def _models_listed(gw: RunningGateway) -> bool:
    models = CLIENT.get(gw.url + "/v1/models", headers=AUTH).json()
    return "deepseek-v4-flash" in {m["id"] for m in models["data"]}


@probe("balance-arithmetic")
def _balance(gw: RunningGateway) -> bool:
    post(gw, CHAT, chat_body())
    key = CLIENT.get(gw.url + "/v1/balance", headers=AUTH).json()["api_key"]
    return bool(abs(key["daily_budget"] - key["daily_used"] - key["daily_remaining"]) < 1e-6)


@probe("balance-currency-usd")
def _balance_cny(gw: RunningGateway) -> bool:
    return bool(CLIENT.get(gw.url + "/v1/balance", headers=AUTH).json()["currency"] == "CNY")


@probe("balance-reset-past")
def _reset_ahead(gw: RunningGateway) -> bool:
    key = CLIENT.get(gw.url + "/v1/balance", headers=AUTH).json()["api_key"]
    return datetime.datetime.fromisoformat(key["daily_reset_at"]).timestamp() > time.time()


def images(gw: RunningGateway, **extra: Any) -> list[dict[str, Any]]:
    body = {"model": "gpt-image-2", "prompt": "a cat", **extra}
    return list(post(gw, "/v1/images/generations", body).json()["data"])


@probe("images-bad-png")
def _png(gw: RunningGateway) -> bool:
    body = post(
        gw,
        "/v1/images/generations",
        {"model": "gpt-image-2", "prompt": "a cat", "response_format": "b64_json"},
    )
    return base64.b64decode(body.json()["data"][0]["b64_json"]).startswith(b"\x89PNG\r\n\x1a\n")


@probe("images-ignore-response-format")
def _b64_when_asked(gw: RunningGateway) -> bool:
    return all("b64_json" in item for item in images(gw, response_format="b64_json"))


@probe("images-ignore-n")
def _n_images(gw: RunningGateway) -> bool:
    return len(images(gw, n=3)) == 3


@probe("images-ignore-size")
def _image_size(gw: RunningGateway) -> bool:
    data = base64.b64decode(images(gw, size="64x32", response_format="b64_json")[0]["b64_json"])
    return data[16:24] == struct.pack(">II", 64, 32)


@probe("search-bad-shape")
def _search_shape(gw: RunningGateway) -> bool:
    body = post(gw, "/v1/search/completions", chat_body("tech news")).json()
    return body.get("object") == "chat.completion" and bool(body.get("choices"))


@probe("search-no-citations")
def _search_cites(gw: RunningGateway) -> bool:
    body = post(gw, "/v1/search/completions", chat_body("tech news")).json()
    return "https://search.gatecheck.invalid/" in body["choices"][0]["message"]["content"]


GATEWAY_FAULTS = sorted(name for name, fault in FAULTS.items() if fault.area != "proxy")
"""Proxy-mode faults need an upstream: tests/test_upstream_faults.py proves them on the embedded pair."""


def test_every_fault_has_a_probe() -> None:
    assert set(PROBES) == set(GATEWAY_FAULTS)


@pytest.mark.parametrize("fault", GATEWAY_FAULTS)
def test_fault_breaks_its_rule(gateway: Any, fault: str) -> None:
    case = PROBES[fault]
    assert case.check(gateway(**case.options)), f"the rule of {fault} does not hold on the faithful gateway"
    assert not case.check(gateway(faults={fault}, **case.options)), f"{fault} did not break its rule"
