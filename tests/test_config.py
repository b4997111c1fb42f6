"""Target configuration: precedence, the option table, multi-target files, and every kind of bad input."""

from __future__ import annotations

import argparse
import json
import secrets
from pathlib import Path

import pytest

from gatecheck.config import (
    CAPABILITIES,
    PROFILES,
    TARGET_OPTIONS,
    Models,
    Target,
    TargetOption,
    add_target_arguments,
    load_target,
    load_targets,
    targets_from_args,
)
from gatecheck.errors import ConfigError
from gatecheck.redaction import Secret

REPO = Path(__file__).resolve().parent.parent
KEY = f"canary-{secrets.token_hex(8)}"
KEY_2 = f"canary-{secrets.token_hex(8)}"
ENV = {"GATECHECK_API_KEY": KEY, "GATECHECK_API_KEY_2": KEY_2}


def write(tmp_path: Path, text: str, name: str = "gatecheck.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------- defaults and a full file


def test_defaults_mean_the_reference_gateway_and_every_claim() -> None:
    target = load_target(None, {}, {})
    assert target == Target()
    assert target.base_url is None
    assert target.name == "reference"
    assert target.api_key is None
    assert target.models == Models("deepseek-v4-flash", "deepseek-v4-pro", "gpt-image-2", "deepseek-v4-flash")
    assert target.capabilities == frozenset(CAPABILITIES)
    assert (target.rpm, target.tpm, target.profile, target.auth) == (60, 100_000, "gateway", "bearer")
    assert target.max_response_bytes == 8 * 1024 * 1024


def test_a_full_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        name = "staging"
        base_url = "https://gw.example.com/prefix/"
        api_key_env = "STAGING_KEY"
        auth = "x-api-key"
        profile = "openai"
        rpm = 30
        tpm = 50_000
        max_requests = 200
        max_output_tokens = 32
        connect_timeout = 2
        read_timeout = 7.5
        total_timeout = 30
        max_response_bytes = 1_048_576

        [models]
        chat = "chat-model"
        images = "image-model"

        [capabilities]
        images = false
        search = false
        streaming = true
        """,
    )
    target = load_target(path, {}, {"STAGING_KEY": KEY})
    assert target.name == "staging"
    assert target.base_url == "https://gw.example.com/prefix"
    assert target.api_key == Secret(KEY)
    assert target.api_key_env == "STAGING_KEY"
    assert target.auth == "x-api-key"
    assert target.profile == "openai"
    assert (target.rpm, target.tpm, target.max_requests, target.max_output_tokens) == (30, 50_000, 200, 32)
    assert (target.connect_timeout, target.read_timeout, target.total_timeout) == (2.0, 7.5, 30.0)
    assert target.max_response_bytes == 1_048_576
    assert target.models == Models(chat="chat-model", images="image-model")
    assert target.capabilities == frozenset(CAPABILITIES) - {"images", "search"}
    assert not target.claims("images")
    assert target.claims("streaming")


def test_the_documented_example_file_loads() -> None:
    target = load_target(REPO / "gatecheck.example.toml", {}, ENV)
    assert target.api_key == Secret(KEY)
    assert target.base_url is not None


def test_claims_rejects_an_unknown_capability() -> None:
    with pytest.raises(ValueError, match="unknown capability"):
        Target().claims("telepathy")


@pytest.mark.parametrize(
    ("path", "base_url", "expected"),
    [
        ("prod.toml", None, "prod"),
        (None, "https://gw.example.com:8443", "gw.example.com"),
        (None, None, "reference"),
    ],
)
def test_default_names(tmp_path: Path, path: str | None, base_url: str | None, expected: str) -> None:
    file_path = write(tmp_path, "", path) if path else None
    assert load_target(file_path, {"base_url": base_url}, {}).name == expected


# ---------------------------------------------------------------- precedence: cli > env > file > default

SAMPLES: dict[str, tuple[str, str, str, object, object, object]] = {
    # field: (file TOML value, env value, cli value, parsed file, parsed env, parsed cli)
    "name": ('"f"', "e", "c", "f", "e", "c"),
    "base_url": (
        '"http://f.test"',
        "http://e.test",
        "http://c.test",
        "http://f.test",
        "http://e.test",
        "http://c.test",
    ),
    "auth": ('"x-api-key"', "bearer", "x-api-key", "x-api-key", "bearer", "x-api-key"),
    "models.chat": ('"f-chat"', "e-chat", "c-chat", "f-chat", "e-chat", "c-chat"),
    "models.reasoning": ('"f-r"', "e-r", "c-r", "f-r", "e-r", "c-r"),
    "models.images": ('"f-i"', "e-i", "c-i", "f-i", "e-i", "c-i"),
    "models.search": ('"f-s"', "e-s", "c-s", "f-s", "e-s", "c-s"),
    "capabilities": (
        "{ images = false }",
        "streaming",
        "tools,n",
        frozenset(CAPABILITIES) - {"images"},
        frozenset({"streaming"}),
        frozenset({"tools", "n"}),
    ),
    "rpm": ("10", "20", "30", 10, 20, 30),
    "tpm": ("1000", "2000", "3000", 1000, 2000, 3000),
    "rpm_2": ("11", "21", "31", 11, 21, 31),
    "tpm_2": ("1001", "2001", "3001", 1001, 2001, 3001),
    "ratelimit_window": ("3", "4.5", "60", 3.0, 4.5, 60.0),
    "profile": ('"openai"', "lenient", "gateway", "openai", "lenient", "gateway"),
    "max_requests": ("5", "6", "7", 5, 6, 7),
    "max_output_tokens": ("8", "9", "10", 8, 9, 10),
    "connect_timeout": ("1.5", "2.5", "3.5", 1.5, 2.5, 3.5),
    "read_timeout": ("4", "5", "6", 4.0, 5.0, 6.0),
    "total_timeout": ("7", "8", "9", 7.0, 8.0, 9.0),
    "max_response_bytes": ("2048", "4096", "8192", 2048, 4096, 8192),
    "stall_seconds": ("1", "2.5", "3", 1.0, 2.5, 3.0),
    "ca_bundle": ('"/"', "/tmp", "/usr", "/", "/tmp", "/usr"),
    "insecure": ("true", "0", "yes", True, False, True),
    "upstream": (
        '"http://127.0.0.1:1"',
        "http://127.0.0.1:2",
        "http://127.0.0.1:3",
        "http://127.0.0.1:1",
        "http://127.0.0.1:2",
        "http://127.0.0.1:3",
    ),
    "upstream_model": ('"f-u"', "e-u", "c-u", "f-u", "e-u", "c-u"),
    "upstream_timeout_s": ("11", "12.5", "13", 11.0, 12.5, 13.0),
    "retries": ("0", "1", "3", 0, 1, 3),
}
ENV_OPTIONS = [option for option in TARGET_OPTIONS if option.env is not None]


def read_field(target: Target, field: str) -> object:
    value: object = target
    for part in field.split("."):
        value = getattr(value, part)
    return value


def test_every_option_with_an_environment_twin_has_a_precedence_sample() -> None:
    assert {option.field for option in ENV_OPTIONS} == set(SAMPLES)


@pytest.mark.parametrize("opt", ENV_OPTIONS, ids=lambda opt: opt.field)
def test_precedence_cli_over_env_over_file_over_default(tmp_path: Path, opt: TargetOption) -> None:
    assert opt.env is not None
    file_text, env_text, cli_text, from_file, from_env, from_cli = SAMPLES[opt.field]
    section, _, key = opt.field.rpartition(".")
    toml = f"[{section}]\n{key} = {file_text}\n" if section else f"{key} = {file_text}\n"
    path = write(tmp_path, toml)
    default = read_field(Target(), opt.field)
    assert read_field(load_target(None, {}, {}), opt.field) == default
    assert read_field(load_target(path, {}, {}), opt.field) == from_file
    assert read_field(load_target(path, {}, {opt.env: env_text}), opt.field) == from_env
    assert read_field(load_target(path, {opt.dest: cli_text}, {opt.env: env_text}), opt.field) == from_cli
    assert read_field(load_target(path, {opt.dest: None}, {opt.env: ""}), opt.field) == from_file


def test_key_precedence_and_sources(tmp_path: Path) -> None:
    assert load_target(None, {}, {}).api_key is None
    from_env = load_target(None, {}, ENV)
    assert (from_env.api_key, from_env.api_key_2) == (Secret(KEY), Secret(KEY_2))
    assert from_env.key_state(1) == "$GATECHECK_API_KEY (set)"
    from_cli = load_target(None, {"api_key": "cli-key", "api_key_2": "cli-key-2"}, ENV)
    assert (from_cli.api_key, from_cli.api_key_2) == (Secret("cli-key"), Secret("cli-key-2"))
    assert from_cli.key_state(1) == "--api-key (set)"
    named = write(tmp_path, 'api_key_env = "TEAM_KEY"\napi_key_2_env = "TEAM_KEY_2"\n')
    target = load_target(named, {}, {**ENV, "TEAM_KEY": "team", "TEAM_KEY_2": "team-2"})
    assert (target.api_key, target.api_key_2) == (Secret("team"), Secret("team-2"))
    assert target.key_state(2) == "$TEAM_KEY_2 (set)"
    renamed = load_target(named, {"api_key_env": "OTHER"}, {"OTHER": "other", "TEAM_KEY_2": "x"})
    assert (renamed.api_key, renamed.api_key_env) == (Secret("other"), "OTHER")


def test_an_empty_default_key_variable_is_unset() -> None:
    target = load_target(None, {}, {"GATECHECK_API_KEY": ""})
    assert target.api_key is None
    assert target.key_state(1) == "$GATECHECK_API_KEY (not set)"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("all", set(CAPABILITIES)),
        ("none", set()),
        ("streaming, tools", {"streaming", "tools"}),
        ("-images,-search", set(CAPABILITIES) - {"images", "search"}),
        ("all,-images", set(CAPABILITIES) - {"images"}),
        ("none,models", {"models"}),
    ],
)
def test_capabilities_grammar(text: str, expected: set[str]) -> None:
    assert load_target(None, {"capabilities": text}, {}).capabilities == frozenset(expected)


# ---------------------------------------------------------------- describe() and redacted()


def test_describe_is_one_line_with_key_sources_and_no_key(tmp_path: Path) -> None:
    target = load_target(None, {"base_url": "https://gw.example.com", "capabilities": "-images"}, ENV)
    line = target.describe()
    assert "\n" not in line
    assert line.startswith("gw.example.com: https://gw.example.com (")
    assert "key $GATECHECK_API_KEY (set)" in line
    assert "key 2 $GATECHECK_API_KEY_2 (set)" in line
    assert "not claimed: images" in line
    assert KEY not in line and KEY_2 not in line
    assert "embedded reference gateway" in Target().describe()
    assert "key $GATECHECK_API_KEY (not set)" in Target().describe()
    assert Target(api_key=Secret(KEY)).key_state(1) == "key (set)"


def test_redacted_is_json_without_keys() -> None:
    target = load_target(None, {"base_url": "https://gw.example.com"}, ENV)
    text = json.dumps(target.redacted())
    assert KEY not in text and KEY_2 not in text
    assert target.redacted()["api_key"] == "$GATECHECK_API_KEY (set)"
    assert target.redacted()["capabilities"] == list(CAPABILITIES)


def test_reprs_hide_keys() -> None:
    target = load_target(None, {}, ENV)
    assert KEY not in repr(target) and KEY not in str(target)


# ---------------------------------------------------------------- the option table and argparse


def test_option_table_is_consistent() -> None:
    dests = [option.dest for option in TARGET_OPTIONS]
    assert len(set(dests)) == len(dests)
    assert all(option.flag.startswith("--") for option in TARGET_OPTIONS)
    assert all(option.env is None or option.env.startswith("GATECHECK_") for option in TARGET_OPTIONS)
    assert {o.flag for o in TARGET_OPTIONS} >= {
        "--base-url",
        "--api-key",
        "--api-key-2",
        "--model",
        "--profile",
    }
    assert {o.flag for o in TARGET_OPTIONS} >= {"--rpm", "--tpm", "--budget-requests"}
    assert all(option.help and (option.metavar or option.kind == "flag") for option in TARGET_OPTIONS)


def test_argparse_front(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_target_arguments(parser)
    a, b = (
        write(tmp_path, 'name = "a"\nbase_url = "http://a.test"\n', "a.toml"),
        write(tmp_path, "", "b.toml"),
    )
    args = parser.parse_args(["--target", str(a), "--target", str(b), "--rpm", "12", "--model", "m"])
    first, second = targets_from_args(args, {})
    assert (first.name, first.base_url, first.rpm, first.models.chat) == ("a", "http://a.test", 12, "m")
    assert (second.name, second.base_url, second.rpm) == ("b", None, 12)
    assert targets_from_args(parser.parse_args([]), {}) == [Target()]
    assert "[env GATECHECK_RPM]" in " ".join(parser.format_help().split())


def test_load_targets_without_files_gives_one_target() -> None:
    assert load_targets([], {"rpm": "5"}, {}) == [Target(rpm=5)]


# ---------------------------------------------------------------- every kind of bad input

BAD_FILES: list[tuple[str, str, dict[str, str], str]] = [
    # (id, file text, extra env, text the message must contain)
    ("wrong-type-int", 'rpm = "many"', {}, "rpm (from"),
    ("wrong-type-bool", "rpm = true", {}, "an integer"),
    ("wrong-type-float-for-int", "tpm = 1.5", {}, "tpm (from"),
    ("wrong-type-url", "base_url = 5", {}, "base_url (from"),
    ("wrong-type-models", 'models = "m"', {}, "models (in"),
    ("wrong-type-capabilities", 'capabilities = ["streaming"]', {}, "capabilities (in"),
    ("wrong-type-capability-flag", 'capabilities = { images = "no" }', {}, "capabilities.images"),
    ("wrong-type-model", "[models]\nchat = 3", {}, "models.chat (from"),
    ("model-with-spaces", '[models]\nchat = "two words"', {}, "without spaces"),
    ("empty-name", 'name = ""', {}, "name (from"),
    ("range-rpm-zero", "rpm = 0", {}, "from 1 to"),
    ("range-tpm-negative", "tpm = -1", {}, "tpm (from"),
    ("range-max-requests", "max_requests = 0", {}, "max_requests"),
    ("range-max-output-tokens", "max_output_tokens = 10_000_000", {}, "max_output_tokens"),
    ("range-size-cap", "max_response_bytes = 10", {}, "max_response_bytes"),
    ("range-timeout-zero", "total_timeout = 0", {}, "total_timeout"),
    ("range-timeout-nan", "read_timeout = nan", {}, "read_timeout"),
    ("range-timeout-huge", "connect_timeout = 1e9", {}, "connect_timeout"),
    ("unknown-key", "rmp = 60", {}, "did you mean 'rpm'?"),
    ("unknown-table", "[limits]\nrpm = 60", {}, "key (in"),
    ("unknown-model-role", '[models]\nchatt = "m"', {}, "did you mean 'chat'?"),
    ("unknown-capability", "[capabilities]\nstream = true", {}, "did you mean 'streaming'?"),
    ("bad-auth", 'auth = "Bearer"', {}, "did you mean 'bearer'?"),
    ("bad-profile", 'profile = "strict"', {}, "gateway, openai, lenient"),
    ("bad-url-scheme", 'base_url = "ftp://gw.example.com"', {}, "http:// or https://"),
    ("bad-url-no-host", 'base_url = "http://"', {}, "base_url (from"),
    ("bad-url-port", 'base_url = "http://gw.example.com:99999"', {}, "base_url (from"),
    ("bad-url-query", 'base_url = "https://gw.example.com?x=1"', {}, "no credentials, query"),
    ("bad-url-v1", 'base_url = "https://gw.example.com/v1/"', {}, "trailing /v1"),
    (
        "bad-url-credentials",
        f'base_url = "https://user:{KEY}@gw.example.com"',
        {},
        "https://***@gw.example.com",
    ),
    ("invalid-toml", 'rpm = 60\nbase_url = "unclosed\n', {}, "line 2"),
    ("key-in-file", f'api_key = "{KEY}"', {}, "environment variable"),
    ("key-2-in-file", f'api_key_2 = "{KEY_2}"', {}, "api_key_2 (in"),
    ("key-pasted-as-variable-name", f'api_key_env = "{KEY}"', {}, "NAME of an environment variable"),
    ("named-variable-missing", 'api_key_env = "TEAM_KEY"', {}, "$TEAM_KEY is empty or unset"),
    ("named-variable-empty", 'api_key_2_env = "TEAM_KEY_2"', {"TEAM_KEY_2": ""}, "api_key_2_env (from"),
    ("key-pasted-in-another-field", f'[models]\nchat = "{KEY} x"', {}, "models.chat (from"),
]


def assert_one_clear_error(exc: ConfigError, expected: str) -> None:
    """Names the field (the expected text), one line, and no key anywhere in it."""
    message = str(exc)
    assert message.startswith("invalid configuration: ")
    assert expected in message
    assert "\n" not in message
    assert KEY not in message and KEY_2 not in message
    assert KEY not in repr(exc.value) and KEY_2 not in repr(exc.value)
    assert exc.__cause__ is None


@pytest.mark.parametrize(
    ("text", "extra_env", "expected"), [c[1:] for c in BAD_FILES], ids=[c[0] for c in BAD_FILES]
)
def test_bad_file_values(tmp_path: Path, text: str, extra_env: dict[str, str], expected: str) -> None:
    path = write(tmp_path, text + "\n")
    with pytest.raises(ConfigError) as caught:
        load_target(path, {}, {**ENV, **extra_env})
    assert_one_clear_error(caught.value, expected)


BAD_OPTIONS: list[tuple[str, dict[str, object], dict[str, str], str]] = [
    # (id, cli, extra env, text the message must contain)
    ("cli-not-a-number", {"rpm": "sixty"}, {}, "rpm (from --rpm) = 'sixty'"),
    ("env-not-a-number", {}, {"GATECHECK_TPM": "lots"}, "tpm (from $GATECHECK_TPM) = 'lots'"),
    (
        "env-bad-timeout",
        {},
        {"GATECHECK_TOTAL_TIMEOUT": "-1"},
        "total_timeout (from $GATECHECK_TOTAL_TIMEOUT)",
    ),
    ("cli-unknown-capability", {"capabilities": "streaming,vision"}, {}, "'vision'"),
    ("env-unknown-capability", {}, {"GATECHECK_CAPABILITIES": "-image"}, "did you mean 'images'?"),
    ("cli-capabilities-wrong-type", {"capabilities": 3}, {}, "comma-separated"),
    ("cli-bad-url", {"base_url": "gw.example.com"}, {}, "base_url (from --base-url)"),
    ("env-bad-auth", {}, {"GATECHECK_AUTH": "basic"}, "auth (from $GATECHECK_AUTH)"),
    ("env-bad-profile", {}, {"GATECHECK_PROFILE": "gatway"}, "did you mean 'gateway'?"),
    ("key-with-newline", {}, {"GATECHECK_API_KEY": KEY + "\n"}, "trailing newline"),
    ("key-with-space", {"api_key": f"{KEY} x"}, {}, "api_key (from --api-key)"),
    ("key-2-non-ascii", {}, {"GATECHECK_API_KEY_2": KEY_2 + "é"}, "api_key_2 (from $GATECHECK_API_KEY_2)"),
    ("named-variable-missing-cli", {"api_key_env": "NOPE"}, {}, "api_key_env (from --api-key-env) = 'NOPE'"),
    ("key-pasted-in-rpm", {"rpm": KEY}, {}, "rpm (from --rpm) = '***'"),
    (
        "key-pasted-in-base-url",
        {},
        {"GATECHECK_BASE_URL": KEY},
        "base_url (from $GATECHECK_BASE_URL) = '***'",
    ),
]


@pytest.mark.parametrize(
    ("cli", "extra_env", "expected"), [c[1:] for c in BAD_OPTIONS], ids=[c[0] for c in BAD_OPTIONS]
)
def test_bad_options_and_environment(
    cli: dict[str, object], extra_env: dict[str, str], expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_target(None, cli, {**ENV, **extra_env})
    assert_one_clear_error(caught.value, expected)


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("missing.toml", None, "No such file"),
        (".", None, "a readable TOML file"),
        ("latin1.toml", b"x = 'caf\xe9'", "UTF-8"),
    ],
    ids=["missing", "directory", "not-utf8"],
)
def test_unreadable_files(tmp_path: Path, name: str, content: bytes | None, expected: str) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError) as caught:
        load_target(path, {}, ENV)
    assert_one_clear_error(caught.value, expected)
    assert caught.value.field == "target file"


def test_several_targets_refuse_shared_per_target_settings(tmp_path: Path) -> None:
    a, b = write(tmp_path, "", "a.toml"), write(tmp_path, "", "b.toml")
    cases: list[tuple[dict[str, object], dict[str, str], str]] = [
        ({"base_url": "http://x.test"}, {}, "base_url (from --base-url)"),
        ({}, {"GATECHECK_BASE_URL": "http://x.test"}, "base_url (from $GATECHECK_BASE_URL)"),
        ({"api_key": KEY}, {}, "api_key (from --api-key) = '***'"),
        ({"target_name": "x"}, {}, "name (from --target-name)"),
    ]
    for cli, env, expected in cases:
        with pytest.raises(ConfigError) as caught:
            load_targets([a, b], cli, {**ENV, **env})
        assert_one_clear_error(caught.value, expected)
    assert [t.name for t in load_targets([a, b], {"rpm": "5"}, ENV)] == ["a", "b"]


def test_several_targets_need_distinct_names(tmp_path: Path) -> None:
    a = write(tmp_path, 'name = "same"', "a.toml")
    b = write(tmp_path, 'name = "same"', "b.toml")
    with pytest.raises(ConfigError) as caught:
        load_targets([a, b], {}, ENV)
    assert_one_clear_error(caught.value, "a name of its own")


def test_every_profile_and_auth_style_is_accepted() -> None:
    for profile in PROFILES:
        assert load_target(None, {"profile": profile}, {}).profile == profile
    for auth in ("bearer", "x-api-key"):
        assert load_target(None, {"auth": auth}, {}).auth == auth


def test_the_configuration_doc_lists_every_option() -> None:
    doc = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    for option in TARGET_OPTIONS:
        assert f"`{option.flag}`" in doc
        assert option.env is None or f"`{option.env}`" in doc


def test_models_tables_declare_context_lengths_per_model(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[models]\nchat = "team-llm"\n[models.team-llm]\ncontext_length = 131_072\n'
        '[models."org/small-1"]\ncontext_length = 8192\n',
    )
    target = load_target(path, {}, ENV)
    assert target.models.chat == "team-llm"
    assert target.context_length("team-llm") == 131_072 and target.context_length("org/small-1") == 8192
    assert target.context_length("unknown") is None and Target().context_lengths == ()
    assert target.redacted()["context_lengths"] == {"team-llm": 131_072, "org/small-1": 8192}
    for table, words in (
        ("[models.m]\ncontext_lenght = 5\n", "did you mean 'context_length'?"),
        ('[models.m]\ncontext_length = "5"\n', "an integer from 1 to 1000000000"),
        ("[models.m]\ncontext_length = 0\n", "an integer from 1 to 1000000000"),
        ('[models]\nvision = "m"\n', "or a [models.<id>] table"),
    ):
        with pytest.raises(ConfigError) as caught:
            load_target(write(tmp_path, table), {}, ENV)
        assert_one_clear_error(caught.value, words)


def test_rate_limits_of_the_second_key_window_and_the_ratelimit_capability(tmp_path: Path) -> None:
    plain = load_target(None, {}, ENV)
    assert plain.limits(2) == (60, 100_000) and plain.ratelimit_window == 60.0
    assert plain.claims("ratelimit")
    own = load_target(None, {"rpm": "1000", "rpm_2": "3", "tpm_2": "2000", "ratelimit_window": "3"}, ENV)
    assert own.limits(2) == (3, 2000) and (own.rpm, own.tpm) == (1000, 100_000)
    assert "key 2 limits 3 rpm / 2000 tpm" in own.describe()
    path = write(tmp_path, "[capabilities]\nratelimit = false\n")
    assert not load_target(path, {}, ENV).claims("ratelimit")
