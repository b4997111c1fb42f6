"""The HTTP client: requests as sent, exchanges as received, per-chunk timing, bounds and errors."""

from __future__ import annotations

import itertools
import json
import socket
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from _client_server import BIG_BYTES, running_server

from gatecheck.client import OTHER_KEY_ENV, Client, Exchange, Request
from gatecheck.config import Target
from gatecheck.errors import ConfigError, ResponseTooLarge, TransportError
from gatecheck.redaction import Secret

KEY = "test-key-one"
KEY_2 = "test-key-two"


def make_target(**changes: object) -> Target:
    """A target on a local URL with two keys; ``changes`` override any field."""
    fields: dict[str, object] = {
        "base_url": "http://127.0.0.1:9",
        "api_key": Secret(KEY, source="$GATECHECK_API_KEY"),
        "api_key_2": Secret(KEY_2, source="$GATECHECK_API_KEY_2"),
    }
    fields.update(changes)
    return Target(**fields)  # type: ignore[arg-type]


def mock_client(handler: Callable[[httpx.Request], httpx.Response], **changes: object) -> Client:
    """A client whose requests go to ``handler`` instead of the network."""
    return Client(make_target(**changes), transport=httpx.MockTransport(handler))


def echo(request: httpx.Request) -> httpx.Response:
    """Answer with what arrived (for tests of what is sent: no key-hygiene rule applies to a mock)."""
    body = {"method": request.method, "url": str(request.url), "headers": dict(request.headers)}
    body["content"] = request.content.decode()
    return httpx.Response(200, json=body)


# ---------------------------------------------------------------- what is sent


def test_json_body_is_compact_utf8_with_a_content_type() -> None:
    with mock_client(echo) as client:
        exchange = client.send("POST", "/v1/chat/completions", json={"model": "m", "text": "é ü"})
    sent = exchange.json()
    assert sent["method"] == "POST"
    assert sent["url"] == "http://127.0.0.1:9/v1/chat/completions"
    assert sent["content"] == '{"model":"m","text":"é ü"}'
    assert sent["headers"]["content-type"] == "application/json"
    assert exchange.request.body == '{"model":"m","text":"é ü"}'.encode()
    assert sent["headers"]["user-agent"].startswith("gatecheck/")


def test_content_is_sent_as_given() -> None:
    with mock_client(echo) as client:
        exchange = client.send("POST", "/x", content=b"\x00not json", headers={"Content-Type": "text/plain"})
    assert exchange.json()["headers"]["content-type"] == "text/plain"
    assert exchange.request.body == b"\x00not json"


@pytest.mark.parametrize(
    ("target_auth", "auth", "header", "value"),
    [
        ("bearer", "default", "authorization", f"Bearer {KEY}"),
        ("x-api-key", "default", "x-api-key", KEY),
        ("bearer", "x-api-key", "x-api-key", KEY),
        ("x-api-key", "bearer", "authorization", f"Bearer {KEY}"),
    ],
)
def test_auth_styles(target_auth: str, auth: str, header: str, value: str) -> None:
    with mock_client(echo, auth=target_auth) as client:
        exchange = client.send("GET", "/v1/models", auth=auth)
    headers = exchange.json()["headers"]
    assert headers[header] == value
    other = ({"authorization", "x-api-key"} - {header}).pop()
    assert other not in headers
    assert exchange.request.key == Secret(KEY)
    assert exchange.request.key_env == "GATECHECK_API_KEY"


def test_auth_none_sends_no_auth_header() -> None:
    with mock_client(echo) as client:
        exchange = client.send("GET", "/v1/models", auth="none")
    headers = exchange.json()["headers"]
    assert "authorization" not in headers
    assert "x-api-key" not in headers
    assert exchange.request.key is None


def test_a_target_without_a_key_sends_no_auth_header() -> None:
    with mock_client(echo, api_key=None) as client:
        exchange = client.send("GET", "/v1/models")
    assert "authorization" not in exchange.json()["headers"]


@pytest.mark.parametrize(
    ("key", "expected_env"),
    [(Secret(KEY_2), "GATECHECK_API_KEY_2"), ("some-invalid-key", OTHER_KEY_ENV), (KEY, "GATECHECK_API_KEY")],
)
def test_key_override_and_the_variable_a_repro_names(key: Secret | str, expected_env: str) -> None:
    with mock_client(echo) as client:
        exchange = client.send("GET", "/v1/models", key=key)
    plain = key.reveal() if isinstance(key, Secret) else key
    assert exchange.json()["headers"]["authorization"] == f"Bearer {plain}"
    assert exchange.request.key_env == expected_env
    assert Secret(plain) in exchange.request.secrets


def test_caller_headers_win_case_insensitively() -> None:
    with mock_client(echo) as client:
        exchange = client.send(
            "GET", "/x", headers={"authorization": "Bearer", "anthropic-version": "2023-06-01"}
        )
    headers = exchange.json()["headers"]
    assert headers["authorization"] == "Bearer"
    assert headers["anthropic-version"] == "2023-06-01"
    assert [h for h in exchange.request.headers if h.lower() == "authorization"] == ["authorization"]


def test_request_repr_and_redacted_headers_hide_keys() -> None:
    with mock_client(echo) as client:
        request = client.build_request("GET", "/x", key="override-key")
    assert request.headers["Authorization"] == "Bearer override-key"
    assert request.redacted_headers()["Authorization"] == "Bearer ***"
    assert "override-key" not in repr(request)
    assert "Bearer ***" in repr(request)


def test_bad_calls_raise_before_sending() -> None:
    with mock_client(echo) as client:
        with pytest.raises(ValueError, match="json or content"):
            client.send("POST", "/x", json={}, content=b"{}")
        with pytest.raises(ValueError, match="auth must be one of"):
            client.send("GET", "/x", auth="basic")
        with pytest.raises(ValueError, match="must not appear in a URL") as in_url:
            client.send("GET", f"/x?key={KEY}")
        assert KEY not in str(in_url.value)


def test_a_key_in_the_base_url_is_refused() -> None:
    with pytest.raises(ValueError, match="must not appear in a URL") as exc:
        Client(make_target(base_url=f"http://127.0.0.1:9/{KEY}"))
    assert KEY not in str(exc.value)


def test_a_client_needs_a_base_url() -> None:
    with pytest.raises(ConfigError, match="base_url"):
        Client(make_target(base_url=None))


# ---------------------------------------------------------------- what is recorded (mock transport)


def test_exchange_records_status_headers_chunks_and_times() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(201, headers={"X-Thing": "1"}, content=iter([b"ab", b"cd", b"ef"]))

    with mock_client(handler) as client:
        exchange = client.send("GET", "/x")
    assert exchange.status == 201
    assert exchange.headers["x-thing"] == "1"
    assert [data for _, data in exchange.chunks] == [b"ab", b"cd", b"ef"]
    assert exchange.body == b"abcdef"
    assert exchange.t_headers_ns is not None
    stamps = [t for t, _ in exchange.chunks]
    assert exchange.t_start_ns <= exchange.t_headers_ns <= stamps[0]
    assert stamps == sorted(stamps)
    assert stamps[-1] <= exchange.t_end_ns
    assert exchange.server_closed
    assert exchange.error is None
    exchange.raise_for_transport()  # no error: returns quietly


def test_events_decodes_chunks_with_their_arrival_times() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        parts = [b"data: one\n", b"\ndata: tw", b"o\n\ndata: [DONE]\n\n", b"data: unterminated"]
        return httpx.Response(200, headers={"Content-Type": "text/event-stream"}, content=iter(parts))

    with mock_client(handler) as client:
        exchange = client.send("POST", "/v1/chat/completions", json={"stream": True})
    events = exchange.events()
    assert [e.data for e in events] == ["one", "two", "[DONE]"]
    stamps = [t for t, _ in exchange.chunks]
    assert [e.t_ns for e in events] == [stamps[1], stamps[2], stamps[2]]


def test_a_mock_transport_error_is_recorded_not_raised() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    with mock_client(handler) as client:
        exchange = client.send("GET", "/x")
    assert (exchange.status, exchange.error_kind, exchange.t_headers_ns) == (0, "connect", None)
    assert exchange.error == "connection failed: [Errno 111] Connection refused"
    assert not exchange.server_closed
    with pytest.raises(TransportError, match="connection failed"):
        exchange.raise_for_transport()


def test_an_error_text_never_contains_a_key() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadError(f"reset while sending {request.headers['authorization']}", request=request)

    with mock_client(handler) as client:
        exchange = client.send("GET", "/x")
    assert exchange.error == "network error: reset while sending Bearer ***"


def test_an_undecodable_body_is_recorded() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Encoding": "gzip"}, content=iter([b"not gzip at all"]))

    with mock_client(handler) as client:
        exchange = client.send("GET", "/x")
    assert (exchange.status, exchange.error_kind, exchange.server_closed) == (200, "decoding", False)


def test_declared_length_over_the_cap_is_refused_unread() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Length": "5000"}, content=b"x" * 5000)

    with mock_client(handler, max_response_bytes=1024) as client:
        exchange = client.send("GET", "/x")
    assert exchange.error_kind == "too_large"
    assert exchange.chunks == []
    with pytest.raises(ResponseTooLarge):
        exchange.raise_for_transport()


def test_total_deadline_is_polled_between_chunks_without_a_socket() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        def slow() -> Iterator[bytes]:
            while True:  # bounded by the client's deadline, asserted below
                time.sleep(0.02)
                yield b"data: tick\n\n"

        return httpx.Response(200, content=slow())

    started = time.monotonic()
    with mock_client(handler, total_timeout=0.2) as client:
        exchange = client.send("GET", "/x")
    assert exchange.error_kind == "total_timeout"
    assert not exchange.server_closed
    assert time.monotonic() - started < 5
    assert exchange.chunks


def test_exchange_repr_is_one_line_without_the_body() -> None:
    with mock_client(lambda request: httpx.Response(200, content=b"secret-looking-body")) as client:
        exchange = client.send("GET", "/x")
    text = repr(exchange)
    assert "\n" not in text
    assert "secret-looking-body" not in text
    assert text.startswith("<Exchange GET http://127.0.0.1:9/x -> 200 19 bytes in 1 chunks")


# ---------------------------------------------------------------- real sockets on 127.0.0.1


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    """The test server's base URL, stopped after the module."""
    with running_server() as (url, _state):
        yield url


@pytest.fixture
def real_client(server_url: str) -> Iterator[Callable[..., Client]]:
    """Build clients on the test server; all are closed after the test."""
    clients: list[Client] = []

    def build(**changes: object) -> Client:
        clients.append(Client(make_target(base_url=server_url, **changes)))
        return clients[-1]

    yield build
    for client in clients:
        client.close()


def test_each_chunk_is_stamped_on_arrival(real_client: Callable[..., Client]) -> None:
    exchange = real_client().send("POST", "/stream", json={"stream": True})
    assert exchange.status == 200
    assert exchange.error is None
    assert exchange.server_closed
    assert exchange.http_version == "HTTP/1.1"
    stamps = [t for t, _ in exchange.chunks]
    assert len(stamps) >= 3  # the server wrote 3 chunks with a pause between: they arrive apart
    assert all(a < b for a, b in itertools.pairwise(stamps))
    assert [json.loads(e.data)["index"] for e in exchange.events()[:3]] == [0, 1, 2]
    assert exchange.t_headers_ns is not None
    assert exchange.t_start_ns < exchange.t_headers_ns <= stamps[0] <= stamps[-1] <= exchange.t_end_ns


def test_json_and_error_statuses_are_responses_not_errors(real_client: Callable[..., Client]) -> None:
    client = real_client()
    ok, failed = client.send("GET", "/json"), client.send("GET", "/error")
    assert (ok.status, ok.json()["ok"], ok.error) == (200, True, None)
    assert (failed.status, failed.json()["error"]["message"], failed.error) == (500, "boom", None)


@pytest.mark.parametrize("path", ["/big", "/big-stream"])
def test_size_cap_stops_reading(real_client: Callable[..., Client], path: str) -> None:
    exchange = real_client(max_response_bytes=4096).send("GET", path)
    assert exchange.error_kind == "too_large"
    assert len(exchange.body) <= 4096 < BIG_BYTES
    assert not exchange.server_closed


def test_total_timeout_ends_a_stream_left_open(real_client: Callable[..., Client]) -> None:
    started = time.monotonic()
    exchange = real_client(total_timeout=0.5, read_timeout=30).send("GET", "/hang")
    elapsed = time.monotonic() - started
    assert exchange.error_kind == "total_timeout"
    assert exchange.error == "total timeout: no end within 0.5 s"
    assert not exchange.server_closed
    assert [data for _, data in exchange.chunks] == [b'data: {"index": 0}\n\n']
    assert 0.45 < elapsed < 5  # ended by the deadline, long before the server would give up (10 s)


def test_total_timeout_bounds_a_server_that_never_answers(real_client: Callable[..., Client]) -> None:
    exchange = real_client(total_timeout=0.3, read_timeout=30).send("GET", "/slow-headers")
    assert (exchange.status, exchange.error_kind, exchange.t_headers_ns) == (0, "total_timeout", None)


def test_read_timeout_is_recorded(real_client: Callable[..., Client]) -> None:
    exchange = real_client(read_timeout=0.2, total_timeout=30).send("GET", "/hang")
    assert exchange.error_kind == "read_timeout"
    assert exchange.status == 200
    assert len(exchange.chunks) == 1


def test_a_client_is_reusable_after_a_timeout(real_client: Callable[..., Client]) -> None:
    client = real_client(total_timeout=0.3)
    assert client.send("GET", "/hang").error_kind == "total_timeout"
    assert client.send("GET", "/json").status == 200


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_connection_refused_is_recorded() -> None:
    with Client(make_target(base_url=f"http://127.0.0.1:{free_port()}")) as client:
        exchange = client.send("GET", "/v1/models")
    assert isinstance(exchange, Exchange)
    assert isinstance(exchange.request, Request)
    assert (exchange.status, exchange.error_kind, exchange.body) == (0, "connect", b"")
    assert exchange.error is not None and exchange.error.startswith("connection failed: ")


def test_a_hand_made_exchange_derives_its_body_from_the_chunks() -> None:
    request = Request("POST", "http://127.0.0.1:9/v1/chat/completions", {})
    exchange = Exchange(request, status=200, chunks=[(1, b'{"a":'), (2, b"1}")])
    assert exchange.body == b'{"a":1}'
    assert exchange.json() == {"a": 1}
    assert exchange.curl().startswith("curl -X POST http://127.0.0.1:9/v1/chat/completions")
