"""Keys never leak: Secret, redact() in every escaped form, cuts after masking, the logging filter, and
end-to-end canary runs on real sockets (the client's transcript; every report of a conformance run
against a gateway that echoes the key back every way it can)."""

from __future__ import annotations

import copy
import dataclasses
import html
import io
import json
import logging
import os
import pickle
import re
import secrets
import traceback
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, unquote

import pytest
from _client_server import running_server
from _echo_server import echo_server

from gatecheck.assemble import ChatStreamAssembler
from gatecheck.cli import main
from gatecheck.client import Client, Exchange
from gatecheck.config import Target, load_target
from gatecheck.errors import ConfigError, GatecheckError
from gatecheck.quote import excerpt
from gatecheck.redaction import (
    REDACTED,
    RedactingFilter,
    Secret,
    active_secrets,
    as_secret,
    clip,
    clip_text,
    redact,
    redact_bytes,
    redacting,
)
from gatecheck.sse import SSEDecoder


def canary() -> str:
    """A key-shaped value that is unmistakable in any output (and not shaped like a real key)."""
    return f"canary-{secrets.token_hex(12)}"


# ---------------------------------------------------------------- Secret


def test_secret_never_shows_its_value() -> None:
    value = canary()
    secret = Secret(value)
    printf_style = "%s" % (secret,)  # noqa: UP031 (the style logging uses)
    for shown in (repr(secret), str(secret), f"{secret}", f"{secret!r}", f"{secret:>20}", printf_style):
        assert value not in shown
        assert REDACTED in shown
    assert secret.reveal() == value


def test_secret_equality_and_hash_follow_the_value_not_the_source() -> None:
    value = canary()
    a, b = Secret(value, source="$A"), Secret(value, source="--api-key")
    assert a == b
    assert hash(a) == hash(b)
    assert len({a, b}) == 1
    assert a != Secret(canary())
    assert a != value  # a Secret never equals a plain string


def test_secret_refuses_json_and_pickle_but_survives_copies() -> None:
    secret = Secret(canary())
    with pytest.raises(TypeError):
        json.dumps({"key": secret})
    assert json.dumps({"key": secret}, default=str) == json.dumps({"key": REDACTED})
    with pytest.raises(TypeError):
        pickle.dumps(secret)
    assert copy.copy(secret) is secret
    assert copy.deepcopy(secret) is secret


def test_asdict_of_a_target_keeps_the_secret_wrapped() -> None:
    value = canary()
    as_dict = dataclasses.asdict(Target(base_url="http://127.0.0.1:1", api_key=Secret(value)))
    assert as_dict["api_key"] == Secret(value)
    assert value not in repr(as_dict)


def test_secret_wraps_only_strings() -> None:
    with pytest.raises(TypeError):
        Secret(b"bytes")  # type: ignore[arg-type]
    plain = canary()
    assert as_secret(plain).reveal() == plain
    wrapped = Secret(plain)
    assert as_secret(wrapped) is wrapped


# ---------------------------------------------------------------- redact()


def test_redact_replaces_every_occurrence_of_every_secret() -> None:
    one, two = canary(), canary()
    text = f"a {one} b {one} c {two}"
    assert redact(text, [Secret(one), two]) == f"a {REDACTED} b {REDACTED} c {REDACTED}"


def test_redact_scrubs_a_longer_key_whole_even_if_it_contains_another() -> None:
    short = canary()
    longer = short + "-suffix"
    assert redact(f"[{longer}] [{short}]", [short, longer]) == f"[{REDACTED}] [{REDACTED}]"


def test_redact_ignores_empty_secrets() -> None:
    assert redact("unchanged", ["", Secret("")]) == "unchanged"


# ---------------------------------------------------------------- RedactingFilter


@pytest.fixture
def filtered_log() -> Iterator[tuple[logging.Logger, io.StringIO, RedactingFilter]]:
    """A private logger whose one handler carries a RedactingFilter; removed afterwards."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    log_filter = RedactingFilter()
    handler.addFilter(log_filter)
    logger = logging.getLogger(f"gatecheck.test.redaction.{secrets.token_hex(4)}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    yield logger, stream, log_filter
    logger.removeHandler(handler)


def test_logging_filter_scrubs_messages_arguments_tracebacks_and_stacks(
    filtered_log: tuple[logging.Logger, io.StringIO, RedactingFilter],
) -> None:
    logger, stream, log_filter = filtered_log
    value = canary()
    log_filter.add(Secret(value))
    logger.info("direct %s", value)
    logger.debug(f"formatted {value}")
    try:
        raise RuntimeError(f"failed with {value}")
    except RuntimeError:
        logger.exception("while sending %r", {"key": value})
    logger.warning("stack", stack_info=True, extra={"ignored": value})
    output = stream.getvalue()
    assert "direct" in output
    assert "RuntimeError: failed with" in output
    assert output.count(REDACTED) >= 4
    assert value not in output


def test_logging_filter_accepts_keys_at_construction() -> None:
    value = canary()
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "key=%s", (value,), None)
    assert RedactingFilter([value]).filter(record) is True
    assert record.getMessage() == f"key={REDACTED}"


# ---------------------------------------------------------------- end to end, on a real socket


def _transcript(exchanges: list[Exchange], target: Target) -> str:
    """Everything a user could see of a run: reprs, summaries, errors, tracebacks, curl commands."""
    parts = [repr(target), str(target), target.describe(), json.dumps(target.redacted())]
    for exchange in exchanges:
        parts += [repr(exchange), repr(exchange.request), str(exchange.request.redacted_headers())]
        parts += [exchange.curl(), str(exchange.error), exchange.body.decode("utf-8", "replace")]
        try:
            exchange.raise_for_transport()
        except GatecheckError as exc:
            parts.append("".join(traceback.format_exception(exc)))
    return "\n".join(parts)


def test_a_canary_key_appears_in_no_output(
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    key, key_2, other = canary(), canary(), canary()
    caplog.set_level(logging.DEBUG)
    with running_server() as (url, state):
        target = load_target(
            None,
            {"base_url": url, "total_timeout": "0.5", "read_timeout": "5"},
            {"GATECHECK_API_KEY": key, "GATECHECK_API_KEY_2": key_2},
        )
        with Client(target) as client:
            exchanges = [
                client.send("POST", "/json", json={"model": "m", "messages": []}),
                client.send("GET", "/error", auth="x-api-key"),
                client.send("POST", "/stream", json={"stream": True}, key=target.api_key_2),
                client.send("POST", "/json", key=other),
                client.send("GET", "/hang"),
            ]
            print(exchanges, client, target, *exchanges[2].events(), sep="\n")
        # the keys really went over the wire: their absence below means something
        assert {f"Bearer {key}", key, f"Bearer {key_2}", f"Bearer {other}"} <= set(state.auth_seen)
    with Client(target) as refused:  # the server is gone: connection refused
        exchanges.append(refused.send("GET", "/json"))
    logging.getLogger("gatecheck.test").error("exchanges: %r", exchanges)
    assert exchanges[-1].error_kind == "connect"
    assert exchanges[-2].error_kind == "total_timeout"
    with pytest.raises(ConfigError) as config_error:
        load_target(None, {"rpm": key}, {"GATECHECK_API_KEY": key})
    captured = capfd.readouterr()
    everything = "\n".join(
        [
            _transcript(exchanges, target),
            caplog.text,
            captured.out,
            captured.err,
            "".join(traceback.format_exception(config_error.value)),
        ]
    )
    assert "HTTP Request: POST" in caplog.text  # httpx's INFO line was captured and checked
    for value in (key, key_2, other):
        assert value not in everything


# ---------------------------------------------------------------- the key and only the key, in any form


KEY = "sk-CANARY-7f3a9b/e1d2c3b4a5"
"""A fixed key with a dash and a slash, so the JSON escapes ``\\u002d`` and ``\\/`` apply."""


@pytest.mark.parametrize(
    "form",
    [
        KEY,
        KEY.replace("-", "\\u002d"),
        KEY.replace("-", "\\u002D").replace("/", "\\/"),
        KEY.replace("-", "\\\\u002d"),  # a JSON string inside a JSON string
        "".join(f"\\u{ord(c):04x}" for c in KEY),
        KEY.replace("-", "\\x2d"),
        quote(KEY, safe=""),
        "".join(f"%{b:02X}" for b in KEY.encode()),
        quote(quote(KEY, safe=""), safe=""),  # percent-encoded twice
        "".join(f"&#{ord(c)};" for c in KEY),
        KEY.replace("-", "&#x2D;"),
    ],
)
def test_redact_finds_the_key_however_it_was_escaped(form: str) -> None:
    text = f'{{"error": "bad key {form} given"}}'
    assert redact(text, [Secret(KEY)]) == '{"error": "bad key *** given"}'
    assert redact_bytes(text.encode(), [Secret(KEY)]) == b'{"error": "bad key *** given"}'


def test_redact_removes_the_key_and_only_the_key() -> None:
    text = "Authorization: Bearer answered 401; x-api-key: sk-other-1234567890abcdef; sk-CANARY- ok"
    assert redact(text, [Secret(KEY)]) == text
    assert redact(f"Authorization: Bearer {KEY}", [KEY]) == f"Authorization: Bearer {REDACTED}"


def test_clip_masks_a_key_the_cut_would_split() -> None:
    data = f"{'x' * 10}{KEY} and more".encode()
    for limit in range(11, 10 + len(KEY)):  # every cut inside the key
        shown = clip(data, limit, [KEY])
        assert shown.startswith(b"x" * 10) and len(shown) <= limit
        assert b"CANARY" not in shown and b"sk-C" not in shown, (limit, shown)
    assert clip(data, 10 + len(KEY) + 4, [KEY]) == b"x" * 10 + b"*** and more"[: len(KEY) + 4]


def test_clip_masks_an_escaped_key_the_cut_would_split() -> None:
    escaped = KEY.replace("-", "\\u002d")
    text = f"{'x' * 10}{escaped}yyyy"
    for limit in range(11, 10 + len(escaped)):
        assert "CANARY" not in clip_text(text, limit, [KEY]), limit


def test_a_cut_ending_in_the_start_of_a_key_is_masked_even_without_the_whole_key() -> None:
    # The wire held only a truncated key: the cut still must not end on six or more of its characters.
    assert clip_text("echo: sk-CANARY-7f3a9 and then some", 21, [KEY]) == "echo: ***"
    assert clip_text("echo: sk-CA and then some", 11, [KEY]) == "echo: sk-CA"  # five: left alone


def test_clip_reads_the_whole_text_when_masking_moved_the_cut() -> None:
    run = KEY * 100  # masking shrinks every copy: the cut then falls far past the first window
    shown = clip_text(run + "tail", 250, [KEY])
    assert "CANARY" not in shown and "7f3a9" not in shown
    assert shown.startswith(REDACTED * 10)


def test_quotes_use_the_keys_of_the_runs_in_progress() -> None:
    assert active_secrets() == ()
    with redacting([Secret(KEY)]), redacting([KEY]):
        assert active_secrets() == (Secret(KEY),)
        assert clip(KEY.encode(), 100) == b"***"
    assert active_secrets() == ()
    assert clip(KEY.encode(), 100) == KEY.encode()


def test_excerpts_and_violations_never_show_a_key_split_by_their_cut() -> None:
    event = f'data: {{"error": {{"message": "invalid key {KEY * 40}"}}}}\n\n'.encode()
    with redacting([Secret(KEY)]):
        for limit in range(30, 700, 7):
            assert "CANARY" not in excerpt(event, limit), limit
        chat = ChatStreamAssembler()
        for sse_event in SSEDecoder().feed(event, 0):
            chat.add(sse_event)
        violations = chat.finish().violations
    assert {v.rule for v in violations} >= {"error-event"}
    for violation in violations:
        assert b"CANARY" not in violation.raw and "CANARY" not in violation.message
        assert b"***" in violation.raw


def test_redaction_before_the_cut_is_cheap_on_a_huge_event() -> None:
    huge = b"data: " + b"x" * 5_000_000 + b"\n\n"
    with redacting([Secret(KEY)]):
        shown = excerpt(huge)  # only the start is scanned: no key there, nothing else to read
    assert shown.endswith(f"... ({len(huge)} bytes in all)")


# ---------------------------------------------------------------- end to end: a gateway echoes the key


def canary_leaks(text: str, key: str) -> list[str]:
    """Which 10-character pieces of the key's random part appear in ``text``, however escaped."""
    variants = {text}
    for _ in range(3):  # undo up to three layers of HTML, percent and JSON escaping, in any order
        for variant in list(variants):
            variants |= {html.unescape(variant), unquote(variant), _json_unescape(variant)}
    random_part = key.rsplit("/", 1)[1]
    pieces = {random_part[i : i + 10] for i in range(len(random_part) - 9)}
    return sorted(piece for piece in pieces if any(piece in variant for variant in variants))


def _json_unescape(text: str) -> str:
    text = re.sub(r"\\+u([0-9a-fA-F]{4})", lambda m: chr(int(m[1], 16)), text)
    return re.sub(r"\\+(/)", r"\1", text)


def test_a_key_echoed_every_way_reaches_no_report_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    key = f"sk-canary/{secrets.token_hex(12)}"
    for name in [n for n in os.environ if n.startswith("GATECHECK_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("GATECHECK_API_KEY", key)
    reports = tmp_path / "reports"
    with echo_server() as url:
        # the echo server answers every burst with 429: its "window" is declared short so the
        # rate-limit check does not wait a minute for a fresh one
        args = ["--checks", ECHO_CHECKS, "--report-dir", str(reports), "--ratelimit-window", "1"]
        code = main(["conform", "--base-url", url, *args])
    captured = capsys.readouterr()
    assert code == 1, captured.out + captured.err
    written = {path.name: path.read_bytes().decode("utf-8") for path in reports.iterdir()}
    assert {"results.json", "matrix.md", "matrix.html", "junit.xml"} <= set(written)
    outputs = {**written, "stdout": captured.out, "stderr": captured.err}
    leaks = {name: found for name, text in outputs.items() if (found := canary_leaks(text, key))}
    assert leaks == {}
    # The echoes really were quoted: every check failed on them and shows the mask where the key was.
    results = {r["check_id"]: r for r in json.loads(written["results.json"])["results"]}
    assert {r["verdict"] for r in results.values()} == {"FAIL"}
    for check_id in ECHO_CHECKS.split(","):
        assert REDACTED in results[check_id]["message"], check_id
    assert '"x-echo-key": "***"' in results["ratelimit_headers"]["message"]
    assert "mid-stream error event" in results["stream_completes"]["message"]


ECHO_CHECKS = "nonstream_schema,errors_unknown_model,stream_completes,stream_chunk_object,ratelimit_headers"
"""Checks that quote a body (cut at 200 and 600), a chunk, a mid-stream error event and the headers."""
