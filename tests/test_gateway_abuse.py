"""The reference gateway under abuse: pathological JSON, oversized bodies, slow and silent clients.

Every case gets a 4xx in the configured error dialect (or a closed connection), never a 500 or a
logged traceback; the limits are exact (the same in the small-body C parser and the big-body
Python scanner); connections that send nothing or trickle are closed after their timeout and not
before. Real sockets on 127.0.0.1; every wait is bounded.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from _gateway_helpers import AUTH, CHAT, CLIENT, chat_body, post, stream
from hypothesis import given, settings
from hypothesis import strategies as st

from gatecheck.reference import RunningGateway
from gatecheck.reference.bodies import MAX_DEPTH, MAX_VALUES, SMALL_BODY_BYTES, parse_json

BIG_PAD = "word " * (SMALL_BODY_BYTES // 5 + 100)
"""A prompt that takes a body past SMALL_BODY_BYTES (the Python scanner's path)."""

WAIT_S = 10.0
"""Upper bound of every socket wait."""


@pytest.fixture
def no_tracebacks(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fails the test if the gateway (or aiohttp) logged an error or a traceback meanwhile."""
    caplog.set_level(logging.WARNING)
    yield
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not errors, [r.getMessage() for r in errors]


def raw_post(gw: RunningGateway, body: bytes | str) -> httpx.Response:
    """POST bytes as they are (not re-encoded by json.dumps, which would refuse NaN or depth)."""
    data = body.encode() if isinstance(body, str) else body
    return CLIENT.post(gw.url + CHAT, content=data, headers={**AUTH, "Content-Type": "application/json"})


def with_extra(fragment: str, *, big: bool = False) -> str:
    """A valid chat body plus ``"extra": <fragment>`` (unknown top-level fields are allowed)."""
    body = json.dumps(chat_body(BIG_PAD if big else "hi", max_tokens=1))
    return body[:-1] + f', "extra": {fragment}}}'


def assert_dialect_400(response: httpx.Response, dialect: str, code: str = "invalid_json") -> str:
    """The 400 is in ``dialect``; returns the message."""
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    if dialect == "openai":
        assert error["code"] == code and error["type"] == "invalid_request_error"
    else:
        assert error["code"] == "INVALID_PARAMS" and error["request_id"] == response.headers["x-request-id"]
    message: str = error["message"]
    return message


def port_of(gw: RunningGateway) -> int:
    return int(gw.url.rsplit(":", 1)[1])


def connect(gw: RunningGateway) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port_of(gw)), timeout=WAIT_S)
    return sock


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (bounded by WAIT_S)."""
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    return received


# --- pathological JSON ------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=4)
    ),
    max_leaves=25,
)


@settings(max_examples=200, deadline=None)
@given(JSON_VALUES)
def test_both_parsers_read_json_as_json_does(value: Any) -> None:
    """The small-body C parser and the big-body Python scanner agree with json.loads."""
    small = json.dumps(value)
    big = json.dumps({"pad": "x" * SMALL_BODY_BYTES, "value": value})
    assert parse_json(bytearray(small.encode())) == json.loads(small)
    assert parse_json(bytearray(big.encode())) == json.loads(big)


@pytest.mark.parametrize("dialect", ["gateway", "openai"])
@pytest.mark.parametrize(
    "body",
    [
        pytest.param(with_extra("[" * 1000 + "]" * 1000), id="arrays-1000-deep"),
        pytest.param('{"a":' * 1000 + "1" + "}" * 1000, id="body-1000-deep"),
        pytest.param(with_extra("[" * 100_000 + "]" * 100_000), id="arrays-100k-deep"),
        pytest.param(with_extra("[" * 1000 + "]" * 1000, big=True), id="arrays-1000-deep-big-body"),
        pytest.param(
            json.dumps(chat_body("hi")).replace(
                '"hi"', '[{"type": "text", "text": ' + "[" * 999 + "]" * 999 + "}]"
            ),
            id="deep-in-content",
        ),
    ],
)
def test_deep_json_is_a_400_in_the_dialect(
    gateway: Any, no_tracebacks: None, dialect: str, body: str
) -> None:
    gw = gateway(errors=dialect)
    message = assert_dialect_400(raw_post(gw, body), dialect)
    assert f"{MAX_DEPTH} levels" in message


@pytest.mark.parametrize("big", [False, True], ids=["c-parser", "python-scanner"])
def test_the_nesting_limit_is_exact(
    reference_gateway: RunningGateway, no_tracebacks: None, big: bool
) -> None:
    """The body object is level 1, so "extra" may hold MAX_DEPTH - 1 levels of arrays, not more."""
    inside = MAX_DEPTH - 1
    deepest = with_extra("[" * inside + "]" * inside, big=big)
    assert raw_post(reference_gateway, deepest).status_code == 200
    too_deep = with_extra("[" * (inside + 1) + "]" * (inside + 1), big=big)
    assert_dialect_400(raw_post(reference_gateway, too_deep), "gateway")


@pytest.mark.parametrize("big", [False, True], ids=["c-parser", "python-scanner"])
@pytest.mark.parametrize(
    ("field", "literal"),
    [
        ("temperature", "NaN"),
        ("temperature", "Infinity"),
        ("top_p", "-Infinity"),
        ("temperature", "1e400"),
        ("presence_penalty", "-1e400"),
        ("max_tokens", "1e999"),
        ("extra", '[1, {"x": NaN}]'),
        ("extra", "123456789e999999999"),
    ],
)
def test_non_finite_numbers_are_refused(
    reference_gateway: RunningGateway, no_tracebacks: None, field: str, literal: str, big: bool
) -> None:
    """Python's json reads NaN, Infinity and 1e400 (as inf); the documents' JSON has no such numbers."""
    body = json.dumps(chat_body(BIG_PAD if big else "hi", max_tokens=1))
    response = raw_post(
        reference_gateway, body[:-1] + f', "{field}": {literal}}}'.replace('"max_tokens": 1, ', "")
    )
    message = assert_dialect_400(response, "gateway")
    assert "not a JSON number" in message or "beyond the range of a double" in message


def test_huge_integers_never_make_a_500(reference_gateway: RunningGateway, no_tracebacks: None) -> None:
    gw = reference_gateway
    assert_dialect_400(
        raw_post(gw, json.dumps(chat_body("hi"))[:-1] + ', "max_tokens": 1' + "0" * 5000 + "}"), "gateway"
    )
    assert post(gw, CHAT, chat_body("hi", max_tokens=10**400)).status_code == 200
    assert post(gw, CHAT, chat_body("count from 1 to 1" + "0" * 500)).status_code == 200
    for schema in (
        {"type": "number", "minimum": 10**400},
        {"type": "integer", "maximum": -(10**400)},
        {"type": "number", "minimum": 1e10, "multipleOf": 1e-300},
        {"type": "array", "minItems": 10**12, "items": {"type": "string", "minLength": 10**12}},
    ):
        response_format = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
        response = post(gw, CHAT, chat_body("hi", max_tokens=64, response_format=response_format))
        assert response.status_code == 200, (schema, response.text)


@pytest.mark.parametrize("big", [False, True], ids=["c-parser", "python-scanner"])
def test_huge_integers_in_json_are_a_400(
    reference_gateway: RunningGateway, no_tracebacks: None, big: bool
) -> None:
    body = json.dumps(chat_body(BIG_PAD if big else "hi"))
    assert_dialect_400(
        raw_post(reference_gateway, body[:-1] + ', "max_tokens": 9' + "9" * 5000 + "}"), "gateway"
    )


def test_the_value_limit(reference_gateway: RunningGateway, no_tracebacks: None) -> None:
    """More than MAX_VALUES values is a 400; a body just under it is answered."""
    under = with_extra(json.dumps([0] * (MAX_VALUES - 100)))
    assert raw_post(reference_gateway, under).status_code == 200
    over = with_extra(json.dumps([[]] * (MAX_VALUES + 1)))
    assert f"more than {MAX_VALUES:,} values" in assert_dialect_400(
        raw_post(reference_gateway, over), "gateway"
    )


@pytest.mark.parametrize("dialect", ["gateway", "openai"])
def test_a_big_invalid_body_names_the_field(gateway: Any, no_tracebacks: None, dialect: str) -> None:
    """Bodies past SMALL_BODY_BYTES are explained by the compiled validator (jsonschema is too slow)."""
    gw = gateway(errors=dialect)
    response = post(gw, CHAT, chat_body(BIG_PAD, temperature="hot"))
    message = assert_dialect_400(response, dialect, code="invalid_value")
    assert "'temperature'" in message
    if dialect == "openai":
        assert response.json()["error"]["param"] == "temperature"
    missing = post(gw, CHAT, {"model": "deepseek-v4-flash", "extra": BIG_PAD})
    assert_dialect_400(missing, dialect, code="missing_required_parameter")
    if dialect == "openai":
        assert missing.json()["error"]["param"] == "messages"


# --- body size --------------------------------------------------------------------------------


def request_head(gw: RunningGateway, extra: str) -> bytes:
    return (
        f"POST {CHAT} HTTP/1.1\r\nHost: 127.0.0.1:{port_of(gw)}\r\nAuthorization: {AUTH['Authorization']}\r\n"
        f"Content-Type: application/json\r\n{extra}\r\n"
    ).encode()


@pytest.mark.parametrize("dialect", ["gateway", "openai"])
def test_a_declared_oversized_body_gets_413_before_it_is_sent(
    gateway: Any, no_tracebacks: None, dialect: str
) -> None:
    gw = gateway(errors=dialect, max_body_mib=1)
    with connect(gw) as sock:
        sock.sendall(request_head(gw, f"Content-Length: {50 * 10**6}\r\n"))  # and not one byte of it
        head, _, body = sock.recv(65536).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 ")
    error = json.loads(body)["error"]
    assert error["code"] == ("request_too_large" if dialect == "openai" else "INVALID_PARAMS")
    assert "1 MiB" in error["message"]


def test_a_chunked_body_is_cut_off_at_the_limit(gateway: Any, no_tracebacks: None) -> None:
    gw = gateway(max_body_mib=1)
    piece = b"x" * 65536
    chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    with connect(gw) as sock:
        sock.sendall(request_head(gw, "Transfer-Encoding: chunked\r\n"))
        sock.settimeout(0.05)
        reply, sent = b"", 0
        deadline = time.monotonic() + WAIT_S
        while not reply and time.monotonic() < deadline and sent < 64 * 2**20:
            try:
                sock.sendall(chunk)
                sent += len(piece)
                reply = sock.recv(65536)
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
        sock.settimeout(WAIT_S)
        reply = reply or sock.recv(65536)
    assert reply.startswith(b"HTTP/1.1 413 "), reply[:200]


def test_a_body_at_the_limit_is_read(gateway: Any, no_tracebacks: None) -> None:
    gw = gateway(max_body_mib=1, tpm=10**12)
    body = json.dumps(chat_body("x", max_tokens=1))
    body = body.replace('"x"', '"' + "x " * ((2**20 - len(body)) // 2) + '"')
    body = body.replace('"x ', '"' + " " * (2**20 - len(body)) + "x ")
    assert len(body) == 2**20
    assert raw_post(gw, body).status_code == 200
    assert raw_post(gw, body + " ").status_code == 413


def test_a_client_leaving_mid_body_logs_no_error(
    reference_gateway: RunningGateway, no_tracebacks: None
) -> None:
    with connect(reference_gateway) as sock:
        sock.sendall(request_head(reference_gateway, "Content-Length: 100000\r\n") + b'{"model": ')
    assert post(reference_gateway, CHAT, chat_body(max_tokens=1)).status_code == 200


# --- the event loop stays free ------------------------------------------------------------------


def test_small_requests_are_answered_while_a_big_one_is_worked_on(
    reference_gateway: RunningGateway, no_tracebacks: None
) -> None:
    """A body of 60,000 messages takes about a second in the worker; small requests do not wait for it."""
    big = chat_body(max_tokens=1) | {"messages": [{"role": "user", "content": "a"}] * 60_000}
    done: dict[str, float] = {}

    def send_big() -> None:
        response = CLIENT.post(reference_gateway.url + CHAT, json=big, headers=AUTH)
        done["big"] = time.monotonic()
        done["status"] = response.status_code

    sender = threading.Thread(target=send_big)
    sender.start()
    time.sleep(0.2)
    small = [post(reference_gateway, CHAT, chat_body(max_tokens=1)).status_code for _ in range(5)]
    done["small"] = time.monotonic()
    sender.join(WAIT_S * 3)
    assert small == [200] * 5 and done["status"] == 200
    assert done["small"] < done["big"], "the small requests waited for the big one"


# --- timeouts ---------------------------------------------------------------------------------

TIMEOUTS = {"header_timeout_seconds": 0.5, "idle_timeout_seconds": 1.0, "body_timeout_seconds": 0.5}


def closed_after(sock: socket.socket, started: float) -> tuple[float, bytes]:
    received = read_until_closed(sock)
    return time.monotonic() - started, received


def trickle(sock: socket.socket, data: bytes, stop: threading.Event) -> None:
    """Send ``data`` one byte every 50 ms until told to stop or the server closes."""
    for byte in data:
        if stop.wait(0.05):
            return
        try:
            sock.send(bytes([byte]))
        except OSError:
            return


def test_a_silent_connection_is_closed_after_the_header_timeout(gateway: Any, no_tracebacks: None) -> None:
    gw = gateway(**TIMEOUTS)
    with connect(gw) as sock:
        elapsed, received = closed_after(sock, time.monotonic())
    assert received == b""
    assert 0.5 <= elapsed < 0.5 + 2.0


@pytest.mark.parametrize("part", ["head", "body"])
def test_a_trickled_request_is_closed_after_its_timeout(gateway: Any, no_tracebacks: None, part: str) -> None:
    gw = gateway(**TIMEOUTS)
    body = json.dumps(chat_body(max_tokens=1)).encode()
    head = request_head(gw, f"Content-Length: {len(body)}\r\n")
    stop = threading.Event()
    with connect(gw) as sock:
        if part == "body":
            sock.sendall(head)
        started = time.monotonic()
        sender = threading.Thread(target=trickle, args=(sock, body if part == "body" else head, stop))
        sender.start()
        try:
            elapsed, received = closed_after(sock, started)
        finally:
            stop.set()
            sender.join(WAIT_S)
    assert received == b"", received[:200]
    assert 0.5 <= elapsed < 0.5 + 2.0


def test_a_kept_alive_connection_is_closed_when_idle(gateway: Any, no_tracebacks: None) -> None:
    gw = gateway(**TIMEOUTS)
    request = f"GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: {AUTH['Authorization']}\r\n\r\n".encode()
    with connect(gw) as sock:
        for _ in range(2):  # the second after longer than the header timeout, shorter than the idle one
            sock.sendall(request)
            assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
            time.sleep(0.7)
        sock.sendall(request)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
        elapsed, received = closed_after(sock, time.monotonic())
    assert received == b""
    assert 0.9 <= elapsed < 1.0 + 2.0  # timed from the server's side of the last answer, a bit earlier


def test_a_long_stream_is_not_cut_by_the_timeouts(gateway: Any, no_tracebacks: None) -> None:
    gw = gateway(itl_ms=150, **TIMEOUTS)
    streamed = stream(gw, CHAT, chat_body("a b c d e f g h i j", stream=True, max_tokens=10))
    assert streamed.status == 200 and streamed.events[-1].data == "[DONE]"
