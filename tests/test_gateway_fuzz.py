"""Fuzzing the reference gateway: valid requests drawn from the request schema, invalid ones mutated.

Valid bodies (hypothesis-jsonschema over ``openai.chat.request``, with max_tokens and n capped so
answers stay short) must get a 200 with a schema-valid body or stream; invalid bodies must get a
400 with a valid error body. Never a 5xx, never a hang (every request has a client timeout).
Bounded: hypothesis-jsonschema needs about a second per example of this schema on a loaded machine,
hence few valid examples.
"""

from __future__ import annotations

from typing import Any

from _gateway_helpers import AUTH, CHAT, CLIENT, assert_valid, stream
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

from gatecheck.reference import MODELS, RunningGateway
from gatecheck.schemas import default_store

VALID_EXAMPLES = 12
INVALID_EXAMPLES = 40
CHAT_MODELS = sorted(
    m.id
    for m in MODELS.values()
    if m.kind == "chat" and m.id.startswith(("deepseek", "qwen", "glm", "kimi", "minimax"))
)
BASE = {"model": "deepseek-v4-flash", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 4}

SETTINGS = settings(
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
"""Shared by every test here: the gateway fixture is session-wide, so reusing it across examples is safe."""


def capped(body: dict[str, Any], model: str) -> dict[str, Any]:
    """The drawn body with a real model, few tokens and few choices."""
    out = {**body, "model": model, "max_tokens": min(body.get("max_tokens") or 8, 8)}
    out.pop("max_completion_tokens", None)
    if out.get("n") is not None:
        out["n"] = min(out["n"], 3)
    return out


@settings(SETTINGS, max_examples=VALID_EXAMPLES)
@given(body=from_schema(default_store().bundled("openai.chat.request")), model=st.sampled_from(CHAT_MODELS))
def test_valid_requests_get_a_valid_answer(
    reference_gateway: RunningGateway, body: dict[str, Any], model: str
) -> None:
    request = capped(body, model)
    if request.get("stream") is True:
        streamed = stream(reference_gateway, CHAT, request)
        assert streamed.status == 200, streamed.raw[:300]
        assert streamed.events[-1].data == "[DONE]"
        for chunk in streamed.payloads():
            assert_valid("openai.chat.chunk", chunk)
        return
    response = CLIENT.post(reference_gateway.url + CHAT, json=request, headers=AUTH)
    assert response.status_code == 200, response.text[:300]
    assert_valid("openai.chat.response", response.json())


INVALID_FIELDS = st.one_of(
    st.tuples(
        st.just("temperature"),
        st.floats(min_value=2.001, max_value=1e9) | st.floats(min_value=-1e9, max_value=-0.001),
    ),
    st.tuples(st.just("top_p"), st.floats(min_value=1.001, max_value=1e9)),
    st.tuples(st.just("presence_penalty"), st.floats(min_value=2.001, max_value=1e6)),
    st.tuples(st.just("frequency_penalty"), st.floats(max_value=-2.001, min_value=-1e6)),
    st.tuples(st.just("n"), st.integers(max_value=0) | st.integers(min_value=129)),
    st.tuples(st.just("max_tokens"), st.integers(max_value=0)),
    st.tuples(st.just("max_completion_tokens"), st.integers(max_value=0) | st.text(max_size=5)),
    st.tuples(
        st.just("messages"), st.sampled_from([[], "hello", [{"role": "wizard", "content": "x"}], [{}], [1]])
    ),
    st.tuples(st.just("model"), st.integers() | st.none() | st.just("")),
    st.tuples(st.just("stop"), st.lists(st.text(max_size=3), min_size=5, max_size=8) | st.integers()),
    st.tuples(
        st.just("reasoning_effort"), st.text(max_size=8).filter(lambda t: t not in ("low", "medium", "high"))
    ),
    st.tuples(
        st.just("response_format"), st.sampled_from([{"type": "xml"}, "json", {"type": "json_schema"}])
    ),
    st.tuples(st.just("stream"), st.sampled_from(["yes", 1, [True]])),
)


@settings(SETTINGS, max_examples=INVALID_EXAMPLES)
@given(mutation=INVALID_FIELDS)
def test_invalid_requests_get_400_with_a_valid_error(
    reference_gateway: RunningGateway, mutation: tuple[str, Any]
) -> None:
    field, value = mutation
    response = CLIENT.post(reference_gateway.url + CHAT, json={**BASE, field: value}, headers=AUTH)
    assert response.status_code == 400, (field, value, response.text[:300])
    assert_valid("error.gateway", response.json())
    assert response.json()["error"]["code"] == "INVALID_PARAMS"


@settings(SETTINGS, max_examples=INVALID_EXAMPLES)
@given(raw=st.binary(max_size=48))
def test_malformed_or_incomplete_bodies_get_400(reference_gateway: RunningGateway, raw: bytes) -> None:
    response = CLIENT.post(reference_gateway.url + CHAT, content=raw, headers=AUTH)
    assert response.status_code == 400, (raw, response.text[:300])
    assert_valid("error.gateway", response.json())
