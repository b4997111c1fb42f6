"""The faithful reference gateway over real HTTP: endpoints, streams, errors, auth, shaping, stop()."""

from __future__ import annotations

import base64
import json
import socket
import struct
import time
import zlib
from typing import Any

import httpx
import jsonschema
import pytest
from _gateway_helpers import (
    AUTH,
    CHAT,
    CLIENT,
    MESSAGES,
    assert_valid,
    chat_body,
    message_body,
    post,
    stream,
    user,
)

from gatecheck.reference import DEMO_KEY, MIDSTREAM_ERROR_MODEL, TINY_MODEL, KeySpec, RunningGateway
from gatecheck.reference.extras import PRICE_PER_TOKEN

COUNT = "Count from 1 to 20 separated by spaces"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get weather information for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def test_chat_non_streaming(reference_gateway: RunningGateway) -> None:
    response = post(reference_gateway, CHAT, chat_body(COUNT, stop="12", temperature=0))
    assert response.status_code == 200
    body = response.json()
    assert_valid("openai.chat.response", body)
    (choice,) = body["choices"]
    assert choice["message"] == {"role": "assistant", "content": "1 2 3 4 5 6 7 8 9 10 11 "}
    assert choice["finish_reason"] == "stop"
    usage = body["usage"]
    assert usage == {
        "prompt_tokens": 8,
        "completion_tokens": 11,
        "total_tokens": 19,
        "prompt_tokens_details": {"cached_tokens": 0},
    }
    assert response.headers["x-request-id"].startswith("req-")
    assert int(response.headers["X-RateLimit-Remaining"]) < int(response.headers["X-RateLimit-Limit"])


def test_chat_stream_matches_the_non_streamed_answer(reference_gateway: RunningGateway) -> None:
    request = chat_body("the quick brown fox", temperature=0, max_tokens=9)
    whole = post(reference_gateway, CHAT, request).json()
    streamed = stream(reference_gateway, CHAT, {**request, "stream": True})
    assert streamed.status == 200
    assert streamed.headers["content-type"].startswith("text/event-stream")
    assert streamed.events[-1].data == "[DONE]"
    assert streamed.raw.endswith(b"data: [DONE]\n\n")
    chunks = streamed.payloads()
    for chunk in chunks:
        assert_valid("openai.chat.chunk", chunk)
        assert "usage" not in chunk
    assert [("role" in c["choices"][0]["delta"]) for c in chunks] == [True] + [False] * (len(chunks) - 1)
    assert len({(c["id"], c["created"], c["model"]) for c in chunks}) == 1
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"][0]["finish_reason"]]
    assert finishes == ["length"] == [whole["choices"][0]["finish_reason"]]
    assert streamed.text() == whole["choices"][0]["message"]["content"]


def test_include_usage_gives_one_final_usage_chunk(reference_gateway: RunningGateway) -> None:
    streamed = stream(
        reference_gateway, CHAT, chat_body("a b c", stream=True, stream_options={"include_usage": True})
    )
    chunks = streamed.payloads()
    for chunk in chunks:
        assert_valid("openai.chat.chunk", chunk)
    *rest, last = chunks
    assert last["choices"] == []
    assert (
        last["usage"]["total_tokens"] == last["usage"]["prompt_tokens"] + last["usage"]["completion_tokens"]
    )
    assert last["usage"]["completion_tokens"] == 32
    assert all(c["usage"] is None for c in rest)


def test_n_choices_streamed_and_not(reference_gateway: RunningGateway) -> None:
    body = post(reference_gateway, CHAT, chat_body("one two three", n=3)).json()
    assert [c["index"] for c in body["choices"]] == [0, 1, 2]
    assert len({c["message"]["content"] for c in body["choices"]}) == 3
    chunks = stream(reference_gateway, CHAT, chat_body("one two three", n=3, stream=True)).payloads()
    texts: dict[int, str] = {}
    for chunk in chunks:
        for choice in chunk["choices"]:
            texts[choice["index"]] = texts.get(choice["index"], "") + (choice["delta"].get("content") or "")
    assert texts == {c["index"]: c["message"]["content"] for c in body["choices"]}
    assert body["usage"]["completion_tokens"] == 3 * 32


def test_streamed_tool_call_fragments(reference_gateway: RunningGateway) -> None:
    request = chat_body("What's the weather like in Beijing today?", tools=[WEATHER_TOOL], stream=True)
    chunks = stream(reference_gateway, CHAT, request).payloads()
    fragments = [
        c["choices"][0]["delta"]["tool_calls"][0]
        for c in chunks
        if c["choices"][0]["delta"].get("tool_calls")
    ]
    first, *later = fragments
    assert first["id"] and first["type"] == "function" and first["function"]["name"] == "get_weather"
    assert all(set(f) == {"index", "function"} and set(f["function"]) == {"arguments"} for f in later)
    arguments = json.loads("".join(f["function"]["arguments"] for f in fragments))
    jsonschema.validate(arguments, WEATHER_TOOL["function"]["parameters"])
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"][0]["finish_reason"]] == [
        "tool_calls"
    ]


def test_tool_choice_none_and_named(reference_gateway: RunningGateway) -> None:
    none = post(
        reference_gateway, CHAT, chat_body("weather?", tools=[WEATHER_TOOL], tool_choice="none")
    ).json()
    assert none["choices"][0]["finish_reason"] == "stop"
    assert "tool_calls" not in none["choices"][0]["message"]
    named = chat_body(
        "hello", tools=[WEATHER_TOOL], tool_choice={"type": "function", "function": {"name": "get_weather"}}
    )
    body = post(reference_gateway, CHAT, named).json()
    assert_valid("openai.chat.response", body)
    assert body["choices"][0]["message"]["content"] is None
    assert body["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "get_weather"


def test_tool_result_turn_is_answered_in_text(reference_gateway: RunningGateway) -> None:
    messages = [
        *user("weather in Paris?"),
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny and warm"},
    ]
    body = post(
        reference_gateway,
        CHAT,
        {"model": "deepseek-v4-flash", "messages": messages, "tools": [WEATHER_TOOL], "max_tokens": 3},
    ).json()
    assert body["choices"][0]["message"]["content"] == "sunny and warm"


def test_reasoning_model_streams_reasoning_first(reference_gateway: RunningGateway) -> None:
    request = chat_body("why is the sky blue", model="deepseek-v4-pro", reasoning_effort="low", stream=True)
    kinds = [
        "reasoning" if c["choices"][0]["delta"].get("reasoning_content") else "content"
        for c in stream(reference_gateway, CHAT, request).payloads()
        if c["choices"][0]["delta"].get("reasoning_content") or c["choices"][0]["delta"].get("content")
    ]
    assert kinds == ["reasoning"] * 8 + ["content"] * 32
    body = post(reference_gateway, CHAT, {**request, "stream": False}).json()
    assert body["usage"]["completion_tokens_details"] == {"reasoning_tokens": 8}


def test_json_modes(reference_gateway: RunningGateway) -> None:
    plain = post(
        reference_gateway, CHAT, chat_body("list three things", response_format={"type": "json_object"})
    )
    assert isinstance(json.loads(plain.json()["choices"][0]["message"]["content"]), dict)
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "score": {"type": "integer", "minimum": 5}},
        "required": ["name", "score"],
        "additionalProperties": False,
    }
    request = chat_body(
        "rate it",
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "r", "schema": schema, "strict": True},
        },
    )
    content = post(reference_gateway, CHAT, request).json()["choices"][0]["message"]["content"]
    jsonschema.validate(json.loads(content), schema)


def test_multimodal_parts_cost_a_fixed_amount(reference_gateway: RunningGateway) -> None:
    content = [
        {"type": "text", "text": "describe this"},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
    ]
    body = post(
        reference_gateway,
        CHAT,
        {
            "model": "deepseek-v4-flash",
            "messages": [{"role": "user", "content": content}],
            "max_completion_tokens": 2,
        },
    ).json()
    assert body["usage"]["prompt_tokens"] == 2 + 85
    assert body["choices"][0]["message"]["content"] == "describe this"


@pytest.mark.parametrize("dialect", ["gateway", "openai"])
def test_error_statuses_and_bodies(gateway: Any, dialect: str) -> None:
    gw = gateway(
        errors=dialect,
        keys=[KeySpec(DEMO_KEY), KeySpec("limited", denied_models=frozenset({"deepseek-v4-pro"}))],
    )
    schema = f"error.{dialect}"
    cases = [
        (post(gw, CHAT, chat_body(), headers={}), 401, "UNAUTHORIZED", "invalid_api_key"),
        (
            post(gw, CHAT, chat_body(), headers={"Authorization": "Bearer nope"}),
            401,
            "UNAUTHORIZED",
            "invalid_api_key",
        ),
        (
            post(gw, CHAT, chat_body(model="deepseek-v4-pro"), headers={"x-api-key": "limited"}),
            403,
            "FORBIDDEN",
            "model_not_allowed",
        ),
        (post(gw, CHAT, chat_body(model="no-such-model")), 404, "MODEL_NOT_FOUND", "model_not_found"),
        (post(gw, CHAT, chat_body(temperature=2.5)), 400, "INVALID_PARAMS", "invalid_value"),
        (post(gw, CHAT, {"messages": user("x")}), 400, "INVALID_PARAMS", "missing_required_parameter"),
        (
            post(gw, MESSAGES, {"model": "deepseek-v4-flash", "messages": user("x")}),
            400,
            "INVALID_PARAMS",
            "missing_required_parameter",
        ),
    ]
    for response, status, gateway_code, openai_code in cases:
        assert response.status_code == status
        assert response.headers["content-type"].startswith("application/json")
        assert response.headers["x-request-id"].startswith("req-")
        body = response.json()
        assert_valid(schema, body)
        assert body["error"]["code"] == (gateway_code if dialect == "gateway" else openai_code)
        if dialect == "gateway":
            assert body["error"]["request_id"] == response.headers["x-request-id"]


def test_invalid_params_name_the_field(gateway: Any) -> None:
    openai = gateway(errors="openai")
    body = post(openai, CHAT, chat_body(messages=[{"role": "wizard", "content": "x"}])).json()
    assert body["error"]["param"].startswith("messages[0]")
    assert post(openai, CHAT, chat_body(n=0)).json()["error"]["param"] == "n"
    message = post(gateway(), CHAT, chat_body(top_p=7)).json()["error"]["message"]
    assert "'top_p'" in message


def test_malformed_json_and_unknown_route(reference_gateway: RunningGateway) -> None:
    broken = CLIENT.post(reference_gateway.url + CHAT, content=b'{"model": ', headers=AUTH)
    assert broken.status_code == 400
    assert_valid("error.gateway", broken.json())
    missing = CLIENT.get(reference_gateway.url + "/v1/nowhere", headers=AUTH)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "NOT_FOUND"


@pytest.mark.parametrize("dialect", ["gateway", "openai"])
def test_context_length_exceeded(gateway: Any, dialect: str) -> None:
    gw = gateway(errors=dialect)
    response = post(gw, CHAT, chat_body("word " * 1025, model=TINY_MODEL))
    assert response.status_code == 400
    error = response.json()["error"]
    if dialect == "openai":
        assert (error["code"], error["param"]) == ("context_length_exceeded", "messages")
    else:
        assert error["message"].startswith("context_length_exceeded:")
    assert post(gw, CHAT, chat_body("word " * 1024, model=TINY_MODEL, max_tokens=1)).status_code == 200


def test_million_token_context_is_checked_quickly(reference_gateway: RunningGateway) -> None:
    response = post(reference_gateway, CHAT, chat_body("w " * 1_000_001))
    assert response.status_code == 400
    assert "1000000" in response.json()["error"]["message"]


def test_x_api_key_and_bearer_everywhere(reference_gateway: RunningGateway) -> None:
    for headers in ({"x-api-key": DEMO_KEY}, AUTH):
        assert post(reference_gateway, CHAT, chat_body(max_tokens=1), headers=headers).status_code == 200
        assert (
            post(reference_gateway, MESSAGES, message_body(max_tokens=1), headers=headers).status_code == 200
        )
        assert CLIENT.get(reference_gateway.url + "/v1/models", headers=headers).status_code == 200


def test_anthropic_message_and_stream_grammar(reference_gateway: RunningGateway) -> None:
    body = post(reference_gateway, MESSAGES, message_body(COUNT, stop_sequences=["12"])).json()
    assert_valid("anthropic.messages.response", body)
    assert body["content"] == [{"type": "text", "text": "1 2 3 4 5 6 7 8 9 10 11 "}]
    assert (body["stop_reason"], body["stop_sequence"]) == ("stop_sequence", "12")
    cut = post(reference_gateway, MESSAGES, message_body(COUNT, max_tokens=3)).json()
    assert (cut["stop_reason"], cut["usage"]["output_tokens"]) == ("max_tokens", 3)
    streamed = stream(reference_gateway, MESSAGES, message_body("hello there", stream=True, max_tokens=4))
    names = [e.event for e in streamed.events]
    assert names == ["message_start", "content_block_start", "ping"] + ["content_block_delta"] * 4 + [
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    for event in streamed.events:
        data = json.loads(event.data)
        assert data["type"] == event.event
        assert_valid("anthropic.stream.event", data)
    text = "".join(
        json.loads(e.data)["delta"]["text"] for e in streamed.events if e.event == "content_block_delta"
    )
    assert text == "hello there hello there"


def test_anthropic_tool_use(reference_gateway: RunningGateway) -> None:
    tool = {
        "name": "get_weather",
        "description": "weather",
        "input_schema": WEATHER_TOOL["function"]["parameters"],
    }
    body = post(reference_gateway, MESSAGES, message_body("weather in Oslo", tools=[tool])).json()
    assert_valid("anthropic.messages.response", body)
    assert body["stop_reason"] == "tool_use"
    (block,) = body["content"]
    assert block["type"] == "tool_use" and block["name"] == "get_weather" and "city" in block["input"]
    events = stream(
        reference_gateway, MESSAGES, message_body("weather in Oslo", tools=[tool], stream=True)
    ).events
    partial = "".join(
        json.loads(e.data)["delta"]["partial_json"] for e in events if e.event == "content_block_delta"
    )
    assert json.loads(partial) == block["input"]


def test_midstream_errors(reference_gateway: RunningGateway) -> None:
    chat = stream(reference_gateway, CHAT, chat_body("a b c d e f", model=MIDSTREAM_ERROR_MODEL, stream=True))
    assert chat.events[-1].data != "[DONE]"
    error = json.loads(chat.events[-1].data)
    assert_valid("error.gateway", error)
    assert error["error"]["code"] == "UPSTREAM_ERROR"
    assert chat.text() == "a b c"
    anthropic = stream(
        reference_gateway, MESSAGES, message_body("a b c d", model=MIDSTREAM_ERROR_MODEL, stream=True)
    )
    assert anthropic.events[-1].event == "error"
    assert_valid("anthropic.stream.error", json.loads(anthropic.events[-1].data))
    assert post(reference_gateway, CHAT, chat_body(model=MIDSTREAM_ERROR_MODEL)).status_code == 502


def _png_size(data: bytes) -> tuple[int, int]:
    """Walk the PNG chunks, checking every CRC; return the IHDR size."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, size, kinds = 8, (0, 0), []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, payload = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(kind + payload) == crc
        if kind == b"IHDR":
            size = struct.unpack(">II", payload[:8])
        kinds.append(kind)
        pos += 12 + length
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and b"IDAT" in kinds
    return size


def test_images_url_and_b64(reference_gateway: RunningGateway) -> None:
    request = {
        "model": "gpt-image-2",
        "prompt": "A white cat sitting on a windowsill",
        "n": 2,
        "size": "64x32",
    }
    body = post(reference_gateway, "/v1/images/generations", request).json()
    assert_valid("gateway.images.response", body)
    for item in body["data"]:
        assert item["url"].startswith(reference_gateway.url + "/v1/images/files/")
        image = CLIENT.get(item["url"])
        assert image.headers["content-type"] == "image/png"
        assert _png_size(image.content) == (64, 32)
    b64 = post(reference_gateway, "/v1/images/generations", {**request, "response_format": "b64_json"}).json()
    assert_valid("gateway.images.response", b64)
    assert _png_size(base64.b64decode(b64["data"][0]["b64_json"])) == (64, 32)
    wrong = post(reference_gateway, "/v1/images/generations", {**request, "model": "deepseek-v4-flash"})
    assert wrong.status_code == 400


def test_balance_tracks_usage(gateway: Any) -> None:
    gw = gateway()
    before = CLIENT.get(gw.url + "/v1/balance", headers=AUTH).json()
    assert_valid("gateway.balance", before)
    assert before["api_key"]["daily_used"] == 0
    usage = post(gw, CHAT, chat_body("a b c", max_tokens=7)).json()["usage"]
    after = CLIENT.get(gw.url + "/v1/balance", headers=AUTH).json()["api_key"]
    assert after["daily_used"] == pytest.approx(usage["total_tokens"] * PRICE_PER_TOKEN)
    assert after["daily_remaining"] == pytest.approx(after["daily_budget"] - after["daily_used"], abs=1e-6)


def test_models_and_search(reference_gateway: RunningGateway) -> None:
    models = CLIENT.get(reference_gateway.url + "/v1/models", headers=AUTH).json()
    assert_valid("openai.models", models)
    ids = {m["id"] for m in models["data"]}
    assert {
        "deepseek-v4-flash",
        "deepseek-v4-pro",
        "qwen3.7-max",
        "glm-5.7",
        "kimi-k2.6",
        "minimax-m3",
    } <= ids
    search = post(reference_gateway, "/v1/search/completions", chat_body("What are today's tech news?"))
    assert_valid("gateway.search.response", search.json())


def test_latency_shaping_never_early(gateway: Any) -> None:
    gw = gateway(ttft_ms=120, itl_ms=15)
    streamed = stream(gw, CHAT, chat_body("a b c d", max_tokens=6, stream=True))
    content_times = [
        e.t_ns
        for e in streamed.events
        if e.data != "[DONE]"
        and json.loads(e.data)["choices"]
        and json.loads(e.data)["choices"][0]["delta"].get("content")
    ]
    assert len(content_times) == 6
    assert content_times[0] - streamed.t_start_ns >= 120e6
    assert content_times[-1] - streamed.t_start_ns >= (120 + 5 * 15) * 1e6
    started = time.perf_counter()
    post(gw, CHAT, chat_body("a b c d", max_tokens=6))
    assert time.perf_counter() - started >= 0.120 + 5 * 0.015


def test_stop_closes_the_socket_and_ends_open_streams(gateway: Any) -> None:
    gw = gateway(ttft_ms=10_000)
    port = int(gw.url.rsplit(":", 1)[1])
    with httpx.stream(
        "POST", gw.url + CHAT, json=chat_body(stream=True), headers=AUTH, timeout=5
    ) as response:
        assert response.status_code == 200
        started = time.perf_counter()
        gw.stop()
        assert time.perf_counter() - started < 2.0
        with pytest.raises(httpx.HTTPError):
            response.read()
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


def test_a_slow_reader_gets_the_whole_stream(gateway: Any) -> None:
    gw = gateway(tpm=10**9)
    body = json.dumps(chat_body("a b c", stream=True, max_tokens=30000, ignore_eos=True)).encode()
    request = (
        f"POST {CHAT} HTTP/1.1\r\nHost: gatecheck\r\nAuthorization: Bearer {DEMO_KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    host, port = gw.url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.sendall(request)
        time.sleep(0.3)  # the server's buffer fills up and it must wait for us
        received = bytearray()
        while not received.endswith(b"\r\n0\r\n\r\n"):
            received += sock.recv(1 << 20)
    assert received.count(b"\n\n") == 30000 + 3
    assert received.endswith(b"data: [DONE]\n\n\r\n0\r\n\r\n")
