"""The curl renderer: exact, shell-quoted, the key as an environment reference that the shell expands."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess

import pytest

from gatecheck.client import Request
from gatecheck.curl import BODY_FILE_PREFIX, body_file, to_curl
from gatecheck.redaction import Secret

KEY = "curl-test-key"
URL = "http://127.0.0.1:8080/v1/chat/completions"


def make_request(
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    key: str | None = KEY,
    key_env: str | None = "GATECHECK_API_KEY",
    method: str = "POST",
    extra_secrets: tuple[Secret, ...] = (),
) -> Request:
    """A request as the client builds it: the key in a Bearer header unless ``headers`` say otherwise."""
    sent = {"Content-Type": "application/json"}
    sent.update({"Authorization": f"Bearer {key}"} if headers is None and key else headers or {})
    secret = Secret(key) if key else None
    secrets = ((secret,) if secret else ()) + extra_secrets
    return Request(method, URL, sent, body, secret, key_env if key else None, secrets)


def parse_curl(command: str) -> tuple[str, str, dict[str, str], str | None, bool]:
    """(method, url, headers, body, -N) read back from a command by shlex.split."""
    words = shlex.split(command, comments=True)
    assert words[0] == "curl"
    method, url, headers, body, no_buffer = "GET", "", {}, None, False
    index = 1
    while index < len(words):
        word = words[index]
        if word == "-N":
            no_buffer = True
        elif word == "-X":
            index += 1
            method = words[index]
        elif word == "-H":
            index += 1
            name, _, value = words[index].partition(": ")
            headers[name] = value
        elif word in ("--data-raw", "--data-binary"):
            index += 1
            body = words[index]
        else:
            url = word
        index += 1
    return method, url, headers, body, no_buffer


@pytest.mark.parametrize(
    "payload",
    [
        {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
        {"model": "m", "messages": [{"role": "user", "content": 'it\'s "quoted" $HOME `id` \\ ! é 中文'}]},
        {"model": "m", "stream": True, "messages": [{"role": "user", "content": "line\nbreak"}]},
    ],
)
def test_round_trip_through_shlex(payload: dict[str, object]) -> None:
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    request = make_request(body, extra_secrets=(Secret("unused-second-key"),))
    command = to_curl(request)
    method, url, headers, sent_body, no_buffer = parse_curl(command)
    assert (method, url) == ("POST", URL)
    assert headers == {"Content-Type": "application/json", "Authorization": "Bearer $GATECHECK_API_KEY"}
    assert sent_body == body.decode()
    assert no_buffer is (payload.get("stream") is True)
    assert KEY not in command


def test_the_key_header_is_double_quoted_for_the_shell() -> None:
    command = to_curl(make_request(b"{}"))
    assert '-H "Authorization: Bearer $GATECHECK_API_KEY"' in command
    assert "-N" not in command


def test_x_api_key_and_other_variable_names() -> None:
    request = make_request(b"{}", headers={"x-api-key": KEY}, key_env="GATECHECK_API_KEY_2")
    assert '-H "x-api-key: $GATECHECK_API_KEY_2"' in to_curl(request)
    assert '-H "x-api-key: $MY_KEY"' in to_curl(request, key_env="MY_KEY")


def test_special_characters_next_to_the_key_stay_literal() -> None:
    request = make_request(headers={"X-Odd": f'"{KEY}"$x!', "X-Glued": f"{KEY}abc"}, method="GET")
    command = to_curl(request)
    _, _, headers, _, _ = parse_curl(command)
    assert headers["X-Odd"] == '"${GATECHECK_API_KEY}"$x!'
    assert headers["X-Glued"] == "${GATECHECK_API_KEY}abc"
    assert KEY not in command


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed: cannot run the command")
def test_the_shell_expands_the_reference_and_nothing_else() -> None:
    body = '{"text":"it\'s $HOME `id` \\\\ \\" é"}'
    request = make_request(
        body.encode(),
        headers={"Authorization": f"Bearer {KEY}", "X-Odd": f'"{KEY}"$x', "X-Glued": f"{KEY}abc"},
    )
    command = to_curl(request)
    printed = subprocess.run(
        ["bash", "-c", "printf '%s\\n' " + command.removeprefix("curl ")],
        env={"GATECHECK_API_KEY": "expanded", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    ).stdout.splitlines()
    assert "Authorization: Bearer expanded" in printed
    assert 'X-Odd: "expanded"$x' in printed
    assert "X-Glued: expandedabc" in printed
    assert body in printed


def test_other_known_keys_are_masked_wherever_they_are() -> None:
    other = Secret("the-other-key")
    request = make_request(b'{"note":"the-other-key"}', extra_secrets=(other,))
    command = to_curl(request)
    assert "the-other-key" not in command
    assert '{"note":"***"}' in command


def test_no_key_no_reference() -> None:
    command = to_curl(make_request(b"{}", key=None))
    assert "Authorization" not in command
    assert "$" not in command


def test_max_body_replaces_a_huge_body_with_a_file_the_command_reads() -> None:
    body = json.dumps({"content": "x" * 500}).encode()
    request = make_request(body)
    note, command = to_curl(request, max_body=100).split("\n")
    saved = body_file(request, max_body=100)
    assert saved is not None
    name, content = saved
    assert name.startswith(BODY_FILE_PREFIX) and name.endswith(".json")
    assert content == body  # exact: the repro sends what was sent
    assert note.startswith("# the request body (") and name in note
    assert command.endswith(f"--data-binary @{name}")
    assert "xxxx" not in command
    assert "\n" not in to_curl(request, max_body=len(body))
    assert body_file(request, max_body=len(body)) is None


def test_the_body_file_name_follows_the_content() -> None:
    one, two = (json.dumps({"content": c * 500}).encode() for c in "xy")
    names = {body_file(make_request(b), max_body=10)[0] for b in (one, one, two)}  # type: ignore[index]
    assert len(names) == 2


def test_a_body_file_masks_the_keys() -> None:
    body = json.dumps({"content": "x" * 500, "echo": KEY}).encode()
    saved = body_file(make_request(body), max_body=100)
    assert saved is not None
    assert KEY.encode() not in saved[1] and b'"echo": "***"' in saved[1]


def test_a_body_that_is_not_text_goes_to_a_file() -> None:
    request = make_request(b"\xff\xfe binary")
    note, command = to_curl(request).split("\n")
    saved = body_file(request)
    assert saved is not None and saved[0].endswith(".bin") and saved[1] == b"\xff\xfe binary"
    assert "not UTF-8" in note
    assert command.endswith(f"--data-binary @{saved[0]}")


def test_get_without_body_has_no_data() -> None:
    command = to_curl(make_request(method="GET"))
    assert command.startswith(f"curl -X GET {URL} ")
    assert "--data" not in command
