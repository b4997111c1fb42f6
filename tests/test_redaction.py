"""Keys never leak: Secret, redact(), the logging filter, and an end-to-end canary run on a real socket."""

from __future__ import annotations

import copy
import dataclasses
import io
import json
import logging
import pickle
import secrets
import traceback
from collections.abc import Iterator

import pytest
from _client_server import running_server

from gatecheck.client import Client, Exchange
from gatecheck.config import Target, load_target
from gatecheck.errors import ConfigError, GatecheckError
from gatecheck.redaction import REDACTED, RedactingFilter, Secret, as_secret, redact


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
