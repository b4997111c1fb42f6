"""The reference gateway's sans-IO parts: fake model, instance generator, limiter, schedule, config."""

from __future__ import annotations

import itertools
import json
import math
import random

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gatecheck._resources import data_dir
from gatecheck.errors import ConfigError
from gatecheck.reference import FAULTS, GatewayConfig, KeySpec
from gatecheck.reference.chat import BODY_FAULTS, STREAM_FAULTS
from gatecheck.reference.errors import ApiError
from gatecheck.reference.fakemodel import (
    COUNT_RE,
    MAX_ANSWER_CHARS,
    MAX_ANSWER_TOKENS,
    MAX_COUNT_DIGITS,
    MAX_OUTPUT_TOKENS,
    MAX_SOURCE_WORDS,
    QUIRK_FAULTS,
    Prompt,
    Quirks,
    Tool,
    chosen_tools,
    complete,
    complete_all,
    count_range,
    count_tokens,
    pieces,
    reply_source,
)
from gatecheck.reference.instances import Limit, instance, invalid_instance
from gatecheck.reference.limiter import RateLimiter
from gatecheck.reference.messages import MESSAGE_FAULTS
from gatecheck.reference.streaming import Schedule
from gatecheck.reference.validation import RequestValidator, param_name, relaxed
from gatecheck.schemas import default_store

COUNT = "Count from 1 to 20 separated by spaces"
WEATHER = Tool(
    "get_weather", {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
)
TIME = Tool("get_time", {"type": "object", "properties": {"zone": {"type": "string"}}})


def prompt(text: str = "alpha beta gamma", **fields: object) -> Prompt:
    return Prompt(text=text, prompt_tokens=count_tokens(text), **fields)


def test_pieces_concatenate_back_and_count_one_word_each() -> None:
    for text in ["1 2 3", "a  b\tc ", '{"answer": "x y"}', "", "single"]:
        parts = pieces(text)
        assert "".join(parts) == text.strip() or "".join(parts) == text
        assert len(parts) == count_tokens(text)


def test_count_rule_with_stop_cuts_before_the_stop_text() -> None:
    done = complete(prompt(COUNT, stop=("12",)), 0, 32)
    assert done.text == "1 2 3 4 5 6 7 8 9 10 11 "
    assert (done.finish, done.stop_sequence, done.tokens) == ("stop", "12", 11)


def test_count_rule_natural_end_and_descending() -> None:
    assert complete(prompt(COUNT), 0, 32).text == " ".join(str(i) for i in range(1, 21))
    assert complete(prompt("count from 3 to 1"), 0, 32).text == "3 2 1"
    assert complete(prompt("Please count to 4"), 0, 32).text == "1 2 3 4"


def test_max_tokens_cuts_with_length_and_wins_over_a_later_stop() -> None:
    done = complete(prompt(COUNT, max_tokens=5, stop=("9",)), 0, 32)
    assert (done.text, done.finish, done.tokens) == ("1 2 3 4 5", "length", 5)


def test_echo_rule_is_cyclic_with_choice_offset_and_deterministic() -> None:
    first = complete(prompt("a b c"), 0, 7)
    assert first.text == "a b c a b c a"
    assert complete(prompt("a b c"), 1, 4).text == "b c a b"
    assert complete(prompt("a b c"), 0, 7) == first


def test_empty_prompt_echoes_the_fallback_words() -> None:
    assert complete(prompt(""), 0, 3).text == "Hello from the"


def test_ignore_eos_runs_to_max_tokens() -> None:
    done = complete(prompt("x y", max_tokens=50, ignore_eos=True), 0, 4)
    assert done.tokens == 50
    assert done.finish == "length"


def test_reasoning_comes_first_and_counts_against_max_tokens() -> None:
    done = complete(prompt("why", reasoning_words=8, max_tokens=10), 0, 32)
    assert len(done.reasoning) == 8
    assert done.reasoning[0] == "Considering:"
    assert (len(done.content), done.finish) == (2, "length")


def test_json_object_output_is_an_object() -> None:
    text = complete(prompt(output="json_object"), 0, 5).text
    assert isinstance(json.loads(text), dict)


SCHEMAS = [
    {
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 12},
            "age": {"type": "integer", "minimum": 18, "maximum": 30},
        },
        "required": ["name", "age"],
        "additionalProperties": False,
    },
    {"type": "array", "items": {"enum": ["r", "g", "b"]}, "minItems": 2, "maxItems": 3, "uniqueItems": True},
    {
        "type": "object",
        "properties": {
            "p": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
            "m": {"type": "integer", "multipleOf": 7, "minimum": 10},
            "when": {"type": "string", "format": "date-time"},
            "tag": {"const": "x"},
            "opt": {"type": ["null", "boolean"]},
            "s": {"type": "string", "maxLength": 2},
        },
    },
    {
        "definitions": {
            "item": {"type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"]}
        },
        "type": "object",
        "properties": {"items": {"type": "array", "items": {"$ref": "#/definitions/item"}}},
    },
    {
        "allOf": [
            {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
            {
                "properties": {"b": {"anyOf": [{"type": "integer", "maximum": -5}, {"type": "string"}]}},
                "required": ["b"],
            },
        ]
    },
]


@pytest.mark.parametrize("schema", SCHEMAS)
def test_instances_are_valid_and_invalid_instances_are_not(schema: dict[str, object]) -> None:
    validator = jsonschema.Draft7Validator(schema)
    good = instance(schema, ["word", "other"])
    assert validator.is_valid(good), good
    found, bad = invalid_instance(schema, ["word"])
    assert found
    assert not validator.is_valid(bad)


def test_json_schema_output_validates() -> None:
    for schema in SCHEMAS:
        text = complete(prompt(output="json_schema", json_schema=schema), 0, 8).text
        assert jsonschema.Draft7Validator(schema).is_valid(json.loads(text))


def test_tool_rule() -> None:
    both = (WEATHER, TIME)
    assert chosen_tools(prompt("hello", tools=(WEATHER,))) == (WEATHER,)
    assert chosen_tools(prompt("hello", tools=both)) == ()
    assert chosen_tools(prompt("call get_time and GET_WEATHER", tools=both)) == both
    assert chosen_tools(prompt("call get_time and get_weather", tools=both, parallel_tool_calls=False)) == (
        WEATHER,
    )
    assert chosen_tools(prompt("hello", tools=both, tool_choice="required")) == (WEATHER,)
    assert chosen_tools(prompt("hello", tools=both, tool_choice="named", tool_name="get_time")) == (TIME,)
    assert chosen_tools(prompt("get_weather", tools=both, tool_choice="none")) == ()
    assert chosen_tools(prompt("get_weather", tools=both, after_tool_result=True)) == ()


def test_tool_call_arguments_satisfy_the_schema_and_cost_name_plus_words() -> None:
    done = complete(prompt("weather in Paris", tools=(WEATHER,)), 0, 32)
    (call,) = done.tool_calls
    assert jsonschema.Draft7Validator(WEATHER.schema).is_valid(json.loads(call.arguments))
    assert done.finish == "tool_calls"
    assert done.tokens == 1 + count_tokens(call.arguments)


def test_tool_call_cut_by_max_tokens() -> None:
    done = complete(prompt("weather", tools=(WEATHER,), max_tokens=2), 0, 32)
    assert done.finish == "length"
    assert done.tokens == 2


def test_quirks_break_only_their_rule() -> None:
    base = prompt(COUNT, stop=("12",), max_tokens=15)
    assert "12" in complete(base, 0, 32, Quirks(ignore_stop=True)).text
    assert (
        complete(base, 0, 32, Quirks(ignore_max_tokens=True)).text
        == complete(prompt(COUNT, stop=("12",)), 0, 32).text
    )
    args = (
        complete(prompt("x", tools=(WEATHER,)), 0, 32, Quirks(break_tool_args=True)).tool_calls[0].arguments
    )
    assert not jsonschema.Draft7Validator(WEATHER.schema).is_valid(json.loads(args))
    forced = prompt("x", tools=(WEATHER,), tool_choice="required")
    assert complete(forced, 0, 32, Quirks(ignore_tool_choice=True)).tool_calls == ()


def test_limiter_fixed_window_rpm_then_reset() -> None:
    now = [100.0]
    limiter = RateLimiter(10.0, clock=lambda: now[0])
    decisions = [limiter.check("k", 3, 1000, 1) for _ in range(4)]
    assert [d.admitted for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    assert decisions[-1].reason == "rpm"
    now[0] = 107.2
    assert limiter.check("k", 3, 1000, 1).retry_after == 3
    now[0] = 110.0
    assert limiter.check("k", 3, 1000, 1).admitted
    assert limiter.check("other", 3, 1000, 1).remaining == 2


def test_limiter_tpm_charges_the_whole_cost_and_rejections_consume_nothing() -> None:
    limiter = RateLimiter(60.0, clock=lambda: 0.0)
    assert limiter.check("k", 100, 100, 60).admitted
    refused = limiter.check("k", 100, 100, 50)
    assert (refused.admitted, refused.reason, refused.tokens_used) == (False, "tpm", 60)
    assert limiter.check("k", 100, 100, 40).admitted


def test_limiter_fault_switches() -> None:
    over = RateLimiter(60.0, clock=lambda: 0.0, over_admit=True)
    assert sum(over.check("k", 4, 10**6, 1).admitted for _ in range(10)) == 6
    under = RateLimiter(60.0, clock=lambda: 0.0, under_admit=True)
    assert sum(under.check("k", 4, 10**6, 1).admitted for _ in range(10)) == 3
    lax = RateLimiter(60.0, clock=lambda: 0.0, enforce_tpm=False)
    assert lax.check("k", 10, 5, 50).admitted


def test_schedule_is_absolute_and_jitter_is_seeded() -> None:
    plain = Schedule(10.0, 0.1, 0.02, 0.0, None)
    assert plain.at(-1) == 10.0
    assert plain.at(0) == pytest.approx(10.1)
    assert plain.at(50) == pytest.approx(11.1)
    jittered = [Schedule(0.0, 0.1, 0.02, 0.005, random.Random("s")) for _ in range(2)]
    series = [[s.at(k) for k in range(20)] for s in jittered]
    assert series[0] == series[1]
    assert all(b >= a for a, b in itertools.pairwise(series[0]))
    assert series[0] != [0.1 + 0.02 * k for k in range(20)]


def test_param_names_and_relaxed_schema() -> None:
    assert param_name(["messages", 0, "role"]) == "messages[0].role"
    assert param_name([]) == "body"
    schema = {"properties": {"minimum": {"type": "integer", "minimum": 1}, "n": {"maxItems": 2}}}
    assert relaxed(schema) == {"properties": {"minimum": {"type": "integer"}, "n": {}}}


def test_config_validation_and_key_limits() -> None:
    with pytest.raises(ConfigError, match="fault"):
        GatewayConfig(faults=frozenset({"no-such-fault"}))
    with pytest.raises(ConfigError, match="window_seconds"):
        GatewayConfig(window_seconds=0)
    with pytest.raises(ConfigError, match="errors"):
        GatewayConfig(errors="xml")
    for field, value in [
        ("balance", math.nan),
        ("balance", -1.0),
        ("daily_budget", math.inf),
        ("ttft_ms", 1e20),
        ("itl_ms", -0.5),
        ("jitter_ms", math.nan),
        ("window_seconds", 1e9),
        ("keep_open_seconds", math.inf),
        ("header_timeout_seconds", 0.0),
        ("idle_timeout_seconds", math.nan),
        ("body_timeout_seconds", -1.0),
        ("rpm", 10**16),
        ("tpm", 0),
        ("seed", -1),
        ("max_body_mib", 0),
        ("max_body_mib", 2048),
        ("ttft_ms", True),
    ]:
        with pytest.raises(ConfigError, match=field):
            GatewayConfig(**{field: value})
    with pytest.raises(ConfigError, match="key rpm"):
        GatewayConfig(keys=(KeySpec("k", rpm=10**16),))
    config = GatewayConfig(keys=(KeySpec("a"), KeySpec("b", rpm=2)), rpm=9, tpm=99)
    assert config.limits_for("a") == (9, 99)
    assert config.limits_for("b") == (2, 99)
    assert "'***'" in repr(KeySpec("secret-value")) and "secret-value" not in repr(KeySpec("secret-value"))


REQUEST_SCHEMAS = (
    "openai.chat.request",
    "anthropic.messages.request",
    "gateway.images.request",
    "gateway.search.request",
)


def _examples(name: str) -> list[tuple[bool, object]]:
    root = data_dir("schemas") / "examples" / name
    valid = [(True, json.loads(p.read_text())) for p in sorted((root / "valid").glob("*.json"))]
    invalid = [
        (False, json.loads(p.read_text())["instance"]) for p in sorted((root / "invalid").glob("*.json"))
    ]
    return valid + invalid


def test_compiled_validation_agrees_with_jsonschema_on_the_schema_examples() -> None:
    store = default_store()
    checked = 0
    for name in REQUEST_SCHEMAS:
        validator = RequestValidator(store, name)
        for expected, body in _examples(name):
            assert store.is_valid(name, body) is expected
            try:
                validator.check(body)
                accepted = True
            except ApiError:
                accepted = False
            assert accepted is expected, (name, body)
            checked += 1
    assert checked >= 10


def test_fault_switch_tables_name_real_faults() -> None:
    for table in (BODY_FAULTS, STREAM_FAULTS, MESSAGE_FAULTS, QUIRK_FAULTS):
        assert set(table.values()) <= FAULTS.keys()


def test_public_surface() -> None:
    import gatecheck.reference as reference

    assert sorted(reference.__all__) == sorted(
        [
            "DEMO_KEY",
            "FAULTS",
            "MIDSTREAM_ERROR_MODEL",
            "MODELS",
            "TINY_MODEL",
            "Fault",
            "GatewayConfig",
            "KeySpec",
            "ModelInfo",
            "RunningGateway",
            "start_in_thread",
        ]
    )
    assert all(hasattr(reference, name) for name in reference.__all__)
    assert {reference.TINY_MODEL, reference.MIDSTREAM_ERROR_MODEL} <= reference.MODELS.keys()


# --- bounded work on hostile prompts ----------------------------------------------------------------


def test_count_tokens_counts_words_cut_by_its_slices() -> None:
    """count_tokens splits long texts a slice at a time and must equal len(text.split())."""
    rng = random.Random(7)
    alphabet = ["a", "bb", " ", "\n", "\u3000", "\x1f", "\u2028", "é", "\t\t"]
    for size in (65535, 65536, 65537, 200_000):
        text = "".join(rng.choice(alphabet) for _ in range(size))
        assert count_tokens(text) == len(text.split())
    for edge in ("a" * 65536 + "b", "a" * 65535 + " " + "b", "a" * 65536 + "\u3000b", " " * 65536 + "x"):
        assert count_tokens(edge) == len(edge.split())


_COUNT_PIECES = [
    "count",
    "COUNT",
    "Count",
    "from",
    "to",
    "1",
    "-2",
    "30",
    " ",
    "  ",
    "\n",
    "x",
    "İ",
    "ß",
    "_",
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_COUNT_PIECES), max_size=20))
def test_count_range_is_the_regex_search(parts: list[str]) -> None:
    """The fast count-rule search finds what the case-insensitive regex search finds."""
    text = "".join(parts)
    match = COUNT_RE.search(text)
    expected = None if match is None else (int(match.group(1) or 1), int(match.group(2)))
    assert count_range(text) == expected


def test_count_rule_ignores_absurd_numbers() -> None:
    too_long = "9" * (MAX_COUNT_DIGITS + 1)
    assert count_range(f"count to {too_long}") is None
    assert complete(prompt(f"count to {too_long}"), 0, 3).text == "count to " + too_long


def test_a_huge_prompt_is_read_in_bounded_words() -> None:
    text = "w " * (MAX_SOURCE_WORDS + 10)
    assert len(reply_source(prompt(text))) == MAX_SOURCE_WORDS
    assert reply_source(prompt("a  b\tc")) == ["a", "b", "c"]


def test_an_answer_has_bounded_tokens_over_all_choices() -> None:
    many = prompt("a b c", max_tokens=MAX_OUTPUT_TOKENS, ignore_eos=True, n=128)
    choices = complete_all(many, 128, 32)
    assert sum(c.tokens for c in choices) <= MAX_ANSWER_TOKENS
    assert {c.finish for c in choices} == {"length"}
    few = prompt("a b c", max_tokens=MAX_OUTPUT_TOKENS, ignore_eos=True, n=4)
    assert [c.tokens for c in complete_all(few, 4, 32)] == [MAX_OUTPUT_TOKENS] * 4


def test_an_answer_has_bounded_characters() -> None:
    """Echoed words may be megabytes long; the answer stops at MAX_ANSWER_CHARS and says length."""
    done = complete(prompt("x" * (3 * 2**20) + " y"), 0, 32)
    assert len(done.text) <= MAX_ANSWER_CHARS and done.finish == "length"
    reasoning = complete(prompt("x" * (3 * 2**20), reasoning_words=8), 0, 32)
    assert sum(map(len, reasoning.reasoning)) <= MAX_ANSWER_CHARS


def test_instances_of_absurd_schemas_are_bounded() -> None:
    schemas = [
        {"type": "array", "minItems": 10**12, "items": {"type": "integer"}},
        {"type": "array", "minItems": 10**6, "items": {"type": "array", "minItems": 10**6}},
        {"type": "string", "minLength": 10**12},
    ]
    for schema in schemas:
        limit = Limit(1000, 1000)
        value = instance(schema, ["w"], limit)
        assert limit.spent and len(json.dumps(value)) < 10_000
    for schema in (
        {"type": "number", "minimum": 10**400},
        {"type": "integer", "multipleOf": 1e-300, "minimum": 1e10},
    ):
        assert isinstance(instance(schema, ["w"]), int | float)


def test_a_json_answer_is_what_an_unbounded_generator_would_send() -> None:
    """The value budget cuts an instance only past the answer's last token."""
    schema = {"type": "array", "minItems": 10**9, "items": {"type": "array", "items": {"type": "integer"}}}
    done = complete(prompt(output="json_schema", json_schema=schema, max_tokens=50), 0, 8)
    assert done.tokens == 50 and done.finish == "length"
    small = {
        "type": "array",
        "minItems": 30,
        "items": {"type": "object", "properties": {"n": {"type": "integer"}}},
    }
    whole = complete(prompt(output="json_schema", json_schema=small, max_tokens=500), 0, 8)
    assert json.loads(whole.text) == instance(small, ["alpha", "beta", "gamma"]) and whole.finish == "stop"
