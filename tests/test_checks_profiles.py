"""Profiles are data: each shipped file loads, names valid dialects, and bad files are one ConfigError."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gatecheck.checks import CHECKS, load_all
from gatecheck.checks.base import Failure, with_severity
from gatecheck.config import PROFILES
from gatecheck.errors import ConfigError
from gatecheck.profiles import RULES, load_profile, profile_names


def test_the_shipped_profiles_are_the_ones_the_configuration_accepts() -> None:
    assert set(profile_names()) == set(PROFILES) >= {"gateway", "openai", "lenient"}


@pytest.mark.parametrize("name", profile_names())
def test_every_profile_loads_and_says_what_it_is(name: str) -> None:
    profile = load_profile(name)
    assert profile.name == name
    assert profile.description
    assert profile.rules <= set(RULES)


def test_profiles_pick_the_documented_dialects() -> None:
    gateway, openai = load_profile("gateway"), load_profile("openai")
    assert (gateway.error_dialect, gateway.ratelimit_dialect) == ("gateway", "x-ratelimit")
    assert (openai.error_dialect, openai.ratelimit_dialect, openai.stream_usage) == (
        "openai",
        "openai",
        "separate-chunk",
    )
    assert gateway.has_rule("x_api_key_everywhere") and not openai.has_rule("x_api_key_everywhere")


def test_profile_rules_named_by_checks_exist() -> None:
    load_all()
    assert {rule for check in CHECKS.values() for rule in check.profile_rules} <= set(RULES)


def failure(rule: str) -> Failure:
    return Failure(title="t", rule=rule, expected="e", received="r")


def graded(rule: str, profile: str) -> str:
    made = with_severity(failure(rule), load_profile(profile))
    return "ignore" if made is None else made.severity


def test_profiles_grade_a_finding_by_its_rules_provenance() -> None:
    # documented: stream-missing-done; protocol: stream-created-changed; sdk: stream-invalid-json;
    # judgement: stream-nonstream-differ
    assert [graded(r, "gateway") for r in ("stream-missing-done", "stream-created-changed")] == [
        "fail",
        "warn",
    ]
    assert [graded(r, "gateway") for r in ("stream-invalid-json", "stream-nonstream-differ")] == [
        "fail",
        "warn",
    ]
    assert graded("stream-created-changed", "openai") == "fail"
    assert graded("stream-nonstream-differ", "openai") == "warn"
    assert [graded(r, "lenient") for r in ("stream-missing-done", "stream-invalid-json")] == ["warn", "fail"]


def test_a_profile_overrides_the_grade_of_one_rule() -> None:
    assert graded("stream-role-missing", "lenient") == "ignore"
    assert graded("tool-choice-finish-stop", "openai") == "warn"


def test_a_null_optional_field_and_an_openai_only_constraint_never_fail_under_gateway_or_lenient() -> None:
    for rule in ("null-optional-field", "request-protocol-constraint"):
        assert (graded(rule, "gateway"), graded(rule, "lenient"), graded(rule, "openai")) == (
            "warn",
            "warn",
            "fail",
        )


def test_an_unknown_profile_names_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match="gateway, lenient, openai"):
        load_profile("strict")


VALID = {
    "error_dialect": '"openai"',
    "ratelimit_dialect": '"openai"',
    "stream_usage": '"last-chunk"',
    "reasoning_field": '"reasoning"',
}
GRADING = '\n[grading]\ndocumented = "fail"\nsdk = "fail"\nprotocol = "warn"\njudgement = "warn"\n'


def profile_text(grading: str = GRADING, **changes: str) -> str:
    """A profile file: the valid settings with ``changes`` applied."""
    return "\n".join(f"{key} = {value}" for key, value in {**VALID, **changes}.items()) + grading


@pytest.mark.parametrize(
    ("text", "field"),
    [
        (profile_text(error_dialect='"xml"'), "error_dialect"),
        (profile_text(messages_error_dialect='"openai"'), "messages_error_dialect"),
        (profile_text(stream_usage='"sometimes"'), "stream_usage"),
        (profile_text(reasoning_field='"thoughts"'), "reasoning_field"),
        (profile_text(colour='"red"'), "colour"),
        (profile_text(grading="") + "\n[rules]\nunknown_rule = true", "unknown_rule"),
        (profile_text() + '\n[severity]\nstream-burst = "panic"', "stream-burst"),
        (profile_text() + '\n[severity]\nno-such-rule = "warn"', "no-such-rule"),
        (profile_text(grading='\n[grading]\ndocumented = "fail"\n'), "grading.protocol"),
        (profile_text(grading=GRADING.replace('"warn"', '"maybe"', 1)), "grading.protocol"),
        ("not toml [", "TOML"),
    ],
)
def test_a_bad_profile_file_is_one_config_error(tmp_path: Path, text: str, field: str) -> None:
    (tmp_path / "mine.toml").write_text(text)
    with pytest.raises(ConfigError, match=field):
        load_profile("mine", tmp_path)


def rules_checks_can_emit() -> set[str]:
    """The ``rule="..."`` ids of the check modules, and the assembler's rules as stream checks name them."""
    from gatecheck.assemble import CHAT_RULES, MESSAGE_RULES

    source = "".join(
        p.read_text() for p in (Path(__file__).resolve().parent.parent / "gatecheck" / "checks").glob("*.py")
    )
    static = set(re.findall(r'rule=f?"([a-z0-9-]+)"', source))
    return static | {f"stream-{r}" for r in CHAT_RULES} | {f"anthropic-{r}" for r in MESSAGE_RULES}


@pytest.mark.parametrize("name", profile_names())
def test_every_severity_a_profile_sets_is_for_a_rule_that_exists(name: str) -> None:
    unknown = set(load_profile(name).severity) - rules_checks_can_emit()
    assert not unknown, f"profile {name} grades rules no check emits: {sorted(unknown)}"
