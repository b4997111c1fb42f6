"""gatecheck.load.workload and .options: what a load test sends, when, and with which options."""

from __future__ import annotations

import itertools
import random
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from gatecheck.errors import ConfigError
from gatecheck.load.limits import LimitKey
from gatecheck.load.options import LOAD_OPTIONS, forwarded_arguments, limits_secret, public_url, read_settings
from gatecheck.load.workload import (
    ArrivalSchedule,
    LengthDist,
    RampPlan,
    RequestFactory,
    auth_headers,
    chat_body,
    load_dataset,
    messages_body,
    parse_length,
    prompt_text,
)

KEY = "load-test-key"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("128", LengthDist("fixed", 128)),
        ("128:16", LengthDist("normal", 128, 16)),
        ("normal:128:16", LengthDist("normal", 128, 16)),
        ("uniform:100:20", LengthDist("uniform", 100, 20)),
    ],
)
def test_length_specs(spec: str, expected: LengthDist) -> None:
    assert parse_length(spec) == expected


@pytest.mark.parametrize("spec", ["", "0", "-3", "abc", "1:2:3", "uniform:10:10", "uniform:5", "12.5"])
def test_bad_length_specs_name_the_option(spec: str) -> None:
    with pytest.raises(ConfigError, match="--prompt-tokens"):
        parse_length(spec, "--prompt-tokens")


def test_length_samples_have_the_asked_mean_and_bounds() -> None:
    rng = random.Random(3)
    normal = [LengthDist("normal", 200, 20).sample(rng) for _ in range(4000)]
    assert statistics.mean(normal) == pytest.approx(200, abs=2)
    assert statistics.stdev(normal) == pytest.approx(20, abs=2)
    uniform = [LengthDist("uniform", 50, 10).sample(rng) for _ in range(2000)]
    assert min(uniform) >= 40 and max(uniform) <= 60
    assert min(LengthDist("normal", 2, 50).sample(rng) for _ in range(200)) >= 1


def test_prompts_have_exactly_the_asked_word_count() -> None:
    rng = random.Random(0)
    for words in (1, 5, 9, 10, 500):
        assert len(prompt_text(words, rng).split()) == words


def test_dataset_lines_are_message_lists_or_objects(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(
        '[{"role": "user", "content": "hi"}]\n\n'
        '{"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}]}\n',
        encoding="utf-8",
    )
    rows = load_dataset(path)
    assert len(rows) == 2 and rows[1][0]["role"] == "system"


@pytest.mark.parametrize(
    "line", ['{"messages": []}', "[1, 2]", "not json", '{"prompt": "x"}', '[{"content": 1}]']
)
def test_bad_dataset_lines_name_the_file_and_line(tmp_path: Path, line: str) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('[{"role": "user", "content": "fine"}]\n' + line + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="line 2"):
        load_dataset(path)


def test_missing_or_empty_dataset(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--dataset"):
        load_dataset(tmp_path / "absent.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="at least one"):
        load_dataset(tmp_path / "empty.jsonl")


def test_request_bodies_in_both_dialects() -> None:
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}]
    chat = chat_body("m", messages, 16, stream=True, include_usage=True)
    assert chat["stream_options"] == {"include_usage": True} and chat["max_tokens"] == 16
    assert "stream_options" not in chat_body("m", messages, 16, stream=False, include_usage=True)
    anthropic = messages_body("m", messages, 16, stream=True)
    assert anthropic["system"] == "be brief"
    assert anthropic["messages"] == [{"role": "user", "content": "hello"}]
    assert auth_headers(KEY, "bearer", "openai") == {"Authorization": f"Bearer {KEY}"}
    assert auth_headers(KEY, "x-api-key", "anthropic") == {
        "x-api-key": KEY,
        "anthropic-version": "2023-06-01",
    }


def test_request_factory_is_repeatable_with_a_seed() -> None:
    def bodies(seed: int) -> list[dict[str, object]]:
        factory = RequestFactory(
            "m",
            "openai",
            True,
            LengthDist("normal", 20, 5),
            LengthDist("uniform", 8, 4),
            rng=random.Random(seed),
        )
        return [factory.body() for _ in range(5)]

    assert bodies(1) == bodies(1)
    assert bodies(1) != bodies(2)
    probe = RequestFactory("m", "openai", True, LengthDist("fixed", 1), LengthDist("fixed", 1)).probe_body(
        30, 2
    )
    assert probe["stream"] is False and len(probe["messages"][0]["content"].split()) == 30


def test_arrival_schedules_are_absolute_and_have_the_asked_rate() -> None:
    constant = ArrivalSchedule(4.0, "constant", start_ns=1000)
    assert [constant.next_ns() for _ in range(3)] == [1000, 1000 + 250_000_000, 1000 + 500_000_000]
    poisson = ArrivalSchedule(50.0, "poisson", start_ns=0, seed=7)
    times = [poisson.next_ns() for _ in range(5001)]
    gaps = [(b - a) / 1e9 for a, b in itertools.pairwise(times)]
    assert statistics.mean(gaps) == pytest.approx(1 / 50, rel=0.05)
    assert statistics.stdev(gaps) == pytest.approx(1 / 50, rel=0.1)
    with pytest.raises(ConfigError, match="--request-rate"):
        ArrivalSchedule(0, "constant", start_ns=0)


def test_ramp_plan_steps() -> None:
    plan = RampPlan(start=2, step=4, step_s=10, max_users=12)
    assert plan.levels() == [2, 6, 10]
    assert plan.duration_s() == 30
    assert [plan.users_at(t) for t in (0, 9.9, 10, 29.9, 30)] == [2, 2, 6, 10, None]
    with pytest.raises(ConfigError):
        RampPlan(start=5, step=1, step_s=1, max_users=4)


# --- options -----------------------------------------------------------------------------------

ENV = {"GATECHECK_API_KEY": KEY}


def test_settings_defaults() -> None:
    settings = read_settings({"host": "http://127.0.0.1:9/"}, ENV)
    assert settings.host == "http://127.0.0.1:9"
    assert (settings.scenario, settings.dialect, settings.stream, settings.include_usage) == (
        "steady",
        "openai",
        True,
        True,
    )
    assert settings.model == "deepseek-v4-flash"
    assert settings.api_key == KEY and KEY not in repr(settings)
    assert settings.limits_keys == (LimitKey("main", None, 60, 100_000),)
    assert settings.slo is None and settings.window_s == 60.0


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"scenario": "spike"}, "--scenario"),
        ({"stream": "yes"}, "--stream"),
        ({"request_rate": "0"}, "--request-rate"),
        ({"max_in_flight": "many"}, "--max-in-flight"),
        ({"window_seconds": "0"}, "--window-seconds"),
        ({"limits_overdrive": "1"}, "--limits-overdrive"),
        ({"limits_key": ["a=GATECHECK_API_KEY:10:100", "a=GATECHECK_API_KEY:5:100"]}, "--limits-key"),
        ({"limits_key": ["nolimits"]}, "--limits-key"),
        ({"output_tokens": "x"}, "--output-tokens"),
        ({"slo": "/nonexistent/slo.toml"}, "--slo"),
        ({"host": ""}, "--host"),
    ],
)
def test_bad_options_are_one_config_error_naming_the_flag(values: dict[str, object], named: str) -> None:
    with pytest.raises(ConfigError) as info:
        read_settings({"host": "http://127.0.0.1:9", **values}, ENV)
    assert named in str(info.value)
    assert KEY not in str(info.value)


def test_a_key_is_required() -> None:
    with pytest.raises(ConfigError, match="GATECHECK_API_KEY"):
        read_settings({"host": "http://127.0.0.1:9"}, {})


def test_limits_keys_come_from_environment_variables() -> None:
    env = {**ENV, "KEY_B": "load-test-key-b"}
    settings = read_settings(
        {"host": "http://h", "limits_key": ["a=GATECHECK_API_KEY:20:4000", "b=KEY_B:10:2000"]}, env
    )
    a, b = settings.limits_keys
    assert (b.label, b.key_env, b.rpm, b.tpm) == ("b", "KEY_B", 10, 2000)
    assert limits_secret(b, settings, env).reveal() == "load-test-key-b"
    assert limits_secret(a, settings, env).reveal() == KEY
    with pytest.raises(ConfigError, match="KEY_B"):
        limits_secret(b, settings, ENV)


def test_forwarded_arguments_repeat_multiple_options_and_skip_unset_ones() -> None:
    argv = forwarded_arguments({"scenario": "limits", "limits_key": ["a=X:1:2", "b=Y:3:4"], "dataset": None})
    assert argv == ["--scenario", "limits", "--limits-key", "a=X:1:2", "--limits-key", "b=Y:3:4"]
    assert {o.dest for o in LOAD_OPTIONS} >= {"scenario", "slo", "baseline", "report_dir", "window_seconds"}


def test_reports_show_base_urls_without_credentials() -> None:
    assert (
        public_url("https://user:pw@gw.example.com:8443/api/?token=x#f") == "https://gw.example.com:8443/api/"
    )
    assert public_url("http://127.0.0.1:8080") == "http://127.0.0.1:8080"


def test_only_the_plugin_and_the_users_import_locust_or_gevent() -> None:
    """Importing locust monkey-patches the process: the CLI, metrics, SLO and reports must not."""
    modules = [
        "gatecheck.load",
        "gatecheck.load.timing",
        "gatecheck.load.stats",
        "gatecheck.load.summary",
        "gatecheck.load.slo",
        "gatecheck.load.workload",
        "gatecheck.load.stampers",
        "gatecheck.load.limits",
        "gatecheck.load.options",
        "gatecheck.load.html",
        "gatecheck.commands.load",
        "gatecheck.commands.slo",
        "gatecheck.cli",
    ]
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in modules)
        + "roots = {'locust', 'gevent', 'geventhttpclient'}\n"
        + "print(sorted(m for m in sys.modules if m.split('.')[0] in roots))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_settings_read_a_target_file_with_command_line_precedence(tmp_path: Path) -> None:
    target = tmp_path / "gw.toml"
    target.write_text(
        'api_key_env = "LOAD_KEY"\nauth = "x-api-key"\nrpm = 30\ntpm = 9000\n[models]\nchat = "file-model"\n',
        encoding="utf-8",
    )
    env = {"LOAD_KEY": KEY}
    settings = read_settings({"host": "http://h", "target": str(target)}, env)
    assert (settings.model, settings.auth, settings.rpm, settings.tpm) == (
        "file-model",
        "x-api-key",
        30,
        9000,
    )
    assert settings.api_key == KEY
    assert settings.limits_keys == (LimitKey("main", None, 30, 9000),)
    override = read_settings(
        {"host": "http://h", "target": str(target), "model": "cli-model", "rpm": "5"}, env
    )
    assert (override.model, override.rpm) == ("cli-model", 5)
