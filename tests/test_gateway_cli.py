"""``gatecheck serve`` as a subprocess: the URL line, keys, faults listing, option errors, shutdown."""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from _gateway_helpers import CHAT, chat_body

from gatecheck.cli import main
from gatecheck.reference import DEMO_KEY, FAULTS

SERVE = [sys.executable, "-m", "gatecheck.cli", "serve"]
START_TIMEOUT_S = 15.0


def _first_lines(process: subprocess.Popen[str]) -> tuple[str, str]:
    """The first two lines, printed together; waiting for the first is bounded."""
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], START_TIMEOUT_S)
    assert ready, "gatecheck serve printed nothing"
    return process.stdout.readline().strip(), process.stdout.readline().strip()


@contextmanager
def serve(*options: str, env: dict[str, str] | None = None) -> Iterator[tuple[str, str]]:
    """Run ``gatecheck serve --port 0 ...``; yields (URL line, second line); terminated at exit."""
    process = subprocess.Popen(
        [*SERVE, "--port", "0", *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    try:
        yield _first_lines(process)
    finally:
        process.terminate()
        try:
            assert process.wait(timeout=10) == 0
        finally:
            process.kill()
            process.communicate()


def test_first_line_is_the_url_and_the_demo_key_works() -> None:
    with serve() as (url, keys):
        assert url.startswith("http://127.0.0.1:")
        assert DEMO_KEY in keys
        response = httpx.post(
            url + CHAT,
            json=chat_body(max_tokens=2),
            headers={"Authorization": f"Bearer {DEMO_KEY}"},
            timeout=10,
        )
        assert response.status_code == 200


def test_keys_from_options_and_environment_never_printed() -> None:
    options = [
        "--api-key",
        "cli-key",
        "--key-limits",
        "limited-key:1:1000",
        "--deny",
        "cli-key:deepseek-v4-pro",
        "--fault",
        "ratelimit-no-retry-after",
        "--errors",
        "openai",
    ]
    with serve(*options, env={"GATECHECK_SERVE_API_KEYS": "env-key-1, env-key-2"}) as (url, keys):
        assert "4 configured" in keys and "cli-key" not in keys and "env-key" not in keys

        def call(key: str, model: str = "deepseek-v4-flash") -> httpx.Response:
            return httpx.post(
                url + CHAT,
                json=chat_body(model=model, max_tokens=1),
                headers={"Authorization": f"Bearer {key}"},
                timeout=10,
            )

        assert call(DEMO_KEY).status_code == 401
        assert call("env-key-2").status_code == 200
        assert call("cli-key", "deepseek-v4-pro").status_code == 403
        assert call("limited-key").status_code == 200
        refused = call("limited-key")
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "rate_limit_exceeded"
        assert "Retry-After" not in refused.headers


def test_list_faults_prints_every_fault_with_rule_and_source() -> None:
    done = subprocess.run([*SERVE, "--list-faults"], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0
    lines = done.stdout.splitlines()
    assert len(lines) == len(FAULTS)
    for line, fault in zip(lines, FAULTS.values(), strict=True):
        assert line.startswith(fault.name) and fault.rule in line and fault.source in line


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--balance", "nan"),
        ("--balance", "inf"),
        ("--balance", "-1"),
        ("--daily-budget", "1e300"),
        ("--ttft-ms", "1e20"),
        ("--itl-ms", "-1"),
        ("--jitter-ms", "nan"),
        ("--window-seconds", "inf"),
        ("--keep-open-seconds", "1e12"),
        ("--seed", "-1"),
        ("--rpm", str(10**16)),
        ("--tpm", "-5"),
        ("--port", "70000"),
        ("--reply-words", "0"),
        ("--max-body-mib", "0"),
        ("--header-timeout-seconds", "0"),
        ("--idle-timeout-seconds", "nan"),
        ("--body-timeout-seconds", "1e9"),
        ("--key-limits", f"secret-key-value:1:{10**16}"),
    ],
)
def test_numeric_options_out_of_range_name_the_option(
    option: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Negative, non-finite or absurd numbers are refused before serving: one line naming the option."""
    code = main(["serve", "--port", "0", option, value])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and f"{option} =" in err
    assert "secret-key-value" not in err


@pytest.mark.parametrize(
    "options",
    [
        ["--fault", "no-such-fault"],
        ["--rpm", "many"],
        ["--rpm", "0"],
        ["--errors", "xml"],
        ["--window-seconds", "0"],
        ["--key-limits", "secret-key-value"],
    ],
)
def test_bad_options_exit_2_with_one_line(options: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    try:
        code = main(["serve", "--port", "0", *options])
    except SystemExit as exc:  # argparse's own errors
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    assert code == 2
    assert len(captured.err.strip().splitlines()) == 1
    assert captured.out == ""
    assert "secret-key-value" not in captured.err


def test_body_limit_and_timeouts_are_options() -> None:
    with serve("--max-body-mib", "1", "--header-timeout-seconds", "0.5") as (url, _):
        big = chat_body("x " * 2**20, max_tokens=1)
        auth = {"Authorization": f"Bearer {DEMO_KEY}"}
        assert httpx.post(url + CHAT, json=big, headers=auth, timeout=10).status_code == 413
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as silent:
            started = time.monotonic()
            assert silent.recv(1) == b""
        assert 0.5 <= time.monotonic() - started < 5
