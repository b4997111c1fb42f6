"""The official openai and anthropic SDKs as clients of the reference gateway.

What the SDKs parse is dumped back to JSON (the fields that were on the wire) and validated
against schemas/, so the gateway is proven both SDK-compatible and schema-faithful.
"""

from __future__ import annotations

import json
import time
from typing import Any

import anthropic
import openai
import pytest
from _gateway_helpers import assert_valid, user

from gatecheck.reference import DEMO_KEY, KeySpec, RunningGateway

MODEL = "deepseek-v4-flash"
COUNT = "Count from 1 to 20 separated by spaces"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get weather information for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def wire(model: Any) -> Any:
    """The JSON an SDK object was parsed from (fields that were present)."""
    return model.model_dump(mode="json", exclude_unset=True)


def openai_client(gw: RunningGateway, key: str = DEMO_KEY, max_retries: int = 0) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=max_retries, timeout=10)


def anthropic_client(gw: RunningGateway, key: str = DEMO_KEY) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0, timeout=10)


def test_openai_non_streaming(reference_gateway: RunningGateway) -> None:
    completion = openai_client(reference_gateway).chat.completions.create(
        model=MODEL, messages=user(COUNT), stop="12", temperature=0
    )
    assert_valid("openai.chat.response", wire(completion))
    assert completion.choices[0].message.content == "1 2 3 4 5 6 7 8 9 10 11 "
    assert completion.usage is not None
    assert (
        completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    )


def test_openai_streaming_with_usage(reference_gateway: RunningGateway) -> None:
    client = openai_client(reference_gateway)
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=user(COUNT),
            max_tokens=5,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    for chunk in chunks:
        assert_valid("openai.chat.chunk", wire(chunk))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "1 2 3 4 5"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5


def test_openai_n_and_json_mode(reference_gateway: RunningGateway) -> None:
    client = openai_client(reference_gateway)
    several = client.chat.completions.create(model=MODEL, messages=user("red green blue"), n=3, max_tokens=4)
    assert_valid("openai.chat.response", wire(several))
    assert [c.index for c in several.choices] == [0, 1, 2]
    as_json = client.chat.completions.create(
        model=MODEL, messages=user("List three algorithms as JSON"), response_format={"type": "json_object"}
    )
    assert_valid("openai.chat.response", wire(as_json))
    assert isinstance(json.loads(as_json.choices[0].message.content or ""), dict)


def test_openai_tools_streamed_and_not(reference_gateway: RunningGateway) -> None:
    client = openai_client(reference_gateway)
    request: dict[str, Any] = {
        "model": MODEL,
        "messages": user("What's the weather like in Beijing today?"),
        "tools": [WEATHER],
    }
    whole = client.chat.completions.create(**request)
    assert_valid("openai.chat.response", wire(whole))
    call = whole.choices[0].message.tool_calls[0]
    assert whole.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"
    arguments = ""
    for chunk in client.chat.completions.create(**request, stream=True):
        assert_valid("openai.chat.chunk", wire(chunk))
        for fragment in chunk.choices[0].delta.tool_calls or []:
            arguments += fragment.function.arguments or ""
    assert json.loads(arguments) == json.loads(call.function.arguments)


@pytest.mark.parametrize(
    ("key", "model", "error"),
    [
        ("wrong-key", MODEL, openai.AuthenticationError),
        (DEMO_KEY, "no-such-model", openai.NotFoundError),
        ("limited", "deepseek-v4-pro", openai.PermissionDeniedError),
    ],
)
def test_openai_exception_classes(
    gateway: Any, key: str, model: str, error: type[openai.APIStatusError]
) -> None:
    gw = gateway(keys=[KeySpec(DEMO_KEY), KeySpec("limited", denied_models=frozenset({"deepseek-v4-pro"}))])
    with pytest.raises(error) as caught:
        openai_client(gw, key).chat.completions.create(model=model, messages=user("hi"))
    assert_valid("error.gateway", caught.value.response.json())


def test_openai_bad_request_and_rate_limit(gateway: Any) -> None:
    gw = gateway(rpm=1, window_seconds=30)
    client = openai_client(gw)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=MODEL, messages=user("hi"), temperature=9)
    client.chat.completions.create(model=MODEL, messages=user("hi"), max_tokens=1)
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model=MODEL, messages=user("hi"), max_tokens=1)
    assert int(caught.value.response.headers["retry-after"]) >= 29


def test_openai_retry_honours_retry_after(gateway: Any) -> None:
    gw = gateway(rpm=1, window_seconds=1.0)
    client = openai_client(gw, max_retries=1)
    client.chat.completions.create(model=MODEL, messages=user("hi"), max_tokens=1)
    started = time.perf_counter()
    retried = client.chat.completions.with_raw_response.create(model=MODEL, messages=user("hi"), max_tokens=1)
    assert retried.retries_taken == 1
    assert retried.parse().choices[0].message.content == "hi"
    assert time.perf_counter() - started >= 0.9


def test_anthropic_create_and_stream_events(reference_gateway: RunningGateway) -> None:
    client = anthropic_client(reference_gateway)
    message = client.messages.create(model=MODEL, max_tokens=5, messages=user(COUNT))
    assert_valid("anthropic.messages.response", wire(message))
    assert message.content[0].text == "1 2 3 4 5"
    assert message.stop_reason == "max_tokens"
    events = list(
        client.messages.create(model=MODEL, max_tokens=64, messages=user("hello there"), stream=True)
    )
    for event in events:
        assert_valid("anthropic.stream.event", wire(event))
    assert events[0].type == "message_start" and events[-1].type == "message_stop"


def test_anthropic_stream_helper(reference_gateway: RunningGateway) -> None:
    client = anthropic_client(reference_gateway)
    with client.messages.stream(
        model=MODEL, max_tokens=64, messages=user(COUNT), stop_sequences=["7"]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert_valid("anthropic.messages.response", wire(final))
    assert text == final.content[0].text == "1 2 3 4 5 6 "
    assert (final.stop_reason, final.stop_sequence) == ("stop_sequence", "7")
    assert final.usage.output_tokens == 6


def test_anthropic_tools_with_the_stream_helper(reference_gateway: RunningGateway) -> None:
    client = anthropic_client(reference_gateway)
    tool = {
        "name": "get_weather",
        "description": "weather",
        "input_schema": WEATHER["function"]["parameters"],
    }
    whole = client.messages.create(model=MODEL, max_tokens=64, messages=user("weather in Oslo"), tools=[tool])
    assert_valid("anthropic.messages.response", wire(whole))
    with client.messages.stream(
        model=MODEL, max_tokens=64, messages=user("weather in Oslo"), tools=[tool]
    ) as s:
        final = s.get_final_message()
    assert final.stop_reason == "tool_use"
    assert final.content[0].input == whole.content[0].input


def test_anthropic_exception_classes(gateway: Any) -> None:
    gw = gateway(rpm=1)
    with pytest.raises(anthropic.AuthenticationError):
        anthropic_client(gw, "wrong-key").messages.create(model=MODEL, max_tokens=5, messages=user("hi"))
    client = anthropic_client(gw)
    with pytest.raises(anthropic.NotFoundError):
        client.messages.create(model="no-such-model", max_tokens=5, messages=user("hi"))
    with pytest.raises(anthropic.BadRequestError):
        client.messages.create(
            model=MODEL, max_tokens=5, messages=user("hi"), extra_body={"temperature": 1.5}
        )
    client.messages.create(model=MODEL, max_tokens=5, messages=user("hi"))
    with pytest.raises(anthropic.RateLimitError):
        client.messages.create(model=MODEL, max_tokens=5, messages=user("hi"))
