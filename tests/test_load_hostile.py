"""Load runs against small scripted servers that misbehave the way real targets do (issue 11).

Each case is one short locust run (locust in a subprocess) against a ``tests/_hostile.py`` server on
127.0.0.1; the asserts are on the counts, the exit code, the one-line messages and, for the key
echoed back, on every file the run wrote.
"""

from __future__ import annotations

import gzip
import itertools
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _hostile import Reply, Seen, refused_url, scripted
from test_load_run import _all_output, _why, run_locust

SSE = {"content-type": "text/event-stream"}
JSON = {"content-type": "application/json"}
MODELS = Reply(200, JSON, b'{"object": "list", "data": [{"id": "deepseek-v4-flash", "object": "model"}]}')
CANARY = "sk-canary-LOAD-0123456789abcdef"
SHORT = ("-u", "2", "-r", "2", "-t", "1s")


def _data(obj: object) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


def chunk(delta: dict[str, object], finish: str | None = None, **fields: object) -> bytes:
    """One chat.completion.chunk event."""
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return _data({"id": "c1", "object": "chat.completion.chunk", "model": "m", "choices": [choice], **fields})


def stream(*events: bytes, done: bool = True) -> bytes:
    return b"".join(events) + (b"data: [DONE]\n\n" if done else b"")


GOOD_STREAM = stream(
    chunk({"role": "assistant", "content": ""}),
    chunk({"content": "hello"}),
    chunk({"content": " there"}),
    chunk({}, "stop"),
)


def api(post: Callable[[Seen], Reply]) -> Callable[[Seen], Reply]:
    """A target that answers the preflight's GET /v1/models and ``post`` to everything else."""
    return lambda seen: MODELS if seen.method == "GET" else post(seen)


def _posts(seen: list[Seen]) -> list[Seen]:
    return [s for s in seen if s.method == "POST"]


def _slo(tmp_path: Path, text: str) -> str:
    path = tmp_path / "slo.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


# --- outcomes ---------------------------------------------------------------------------------------


def test_done_without_a_finish_reason_is_counted_as_an_error(tmp_path: Path) -> None:
    """34/34 ok and an error rate of 0.00% before: [DONE] alone is not a successful stream."""
    body = stream(chunk({"role": "assistant", "content": ""}), chunk({"content": "hi"}))
    slo = _slo(tmp_path, "error_rate = 0.01\nsuccess_rate = 0.99\n")
    with scripted(api(lambda _: Reply(200, SSE, body))) as server:
        proc, summary = run_locust(server.url, tmp_path / "out", *SHORT, "--slo", slo)
    assert summary is not None, _why(proc)
    req = summary["requests"]
    assert req["total"] > 0 and req["ok"] == 0 and req["error_rate"] == 1.0 and req["success_rate"] == 0
    assert summary["errors"] == [{"status": 200, "code": "stream-no-finish-reason", "count": req["total"]}]
    assert proc.returncode == 1
    assert "SLO error_rate: FAIL" in proc.stdout and "SLO success_rate: FAIL" in proc.stdout
    assert f"NO REQUEST SUCCEEDED: 0 of {req['total']} requests succeeded" in proc.stdout
    assert summary["metrics"]["ttft_ms"]["count"] == 0, "failed requests give no latency samples"


def test_a_run_answered_only_429_cannot_pass(tmp_path: Path) -> None:
    limited = Reply(
        429, {**JSON, "retry-after": "1"}, b'{"error": {"code": "RATE_LIMIT", "message": "slow"}}'
    )
    with scripted(api(lambda _: limited)) as server:
        proc, summary = run_locust(server.url, tmp_path, *SHORT, "--stream", "off")
    assert summary is not None, _why(proc)
    req = summary["requests"]
    assert req["rate_limited"] == req["total"] > 0 and req["error_rate"] == 0.0 and req["success_rate"] == 0
    assert proc.returncode == 1
    assert f"no request succeeded: 429 RATE_LIMIT x {req['total']}" in proc.stderr
    assert summary["outcome"]["verdict"] == "fail"


def test_zero_completed_requests_exit_2_with_a_clear_line(tmp_path: Path) -> None:
    """The target accepts and never finishes an answer: nothing is measured, and the run says so."""
    stall = Reply(200, SSE, [(30.0, b"data: [DONE]\n\n")])
    with scripted(api(lambda _: stall)) as server:
        proc, summary = run_locust(server.url, tmp_path, *SHORT)
    assert summary is not None, _why(proc)
    assert summary["requests"]["total"] == 0
    assert proc.returncode == 2, _why(proc)
    assert "NO REQUEST COMPLETED: nothing was measured" in proc.stdout
    assert "no request completed" in proc.stderr


def test_a_stalled_stream_is_stream_stalled(tmp_path: Path) -> None:
    stall = Reply(200, SSE, [(0.0, chunk({"role": "assistant", "content": "a"})), (30.0, b"")])
    with scripted(api(lambda _: stall)) as server:
        proc, summary = run_locust(server.url, tmp_path, *SHORT, "--read-timeout", "0.3")
    assert summary is not None, _why(proc)
    codes = {e["code"] for e in summary["errors"]}
    assert codes == {"stream-stalled"} and summary["requests"]["ok"] == 0


# --- a rejected key, a dead target -------------------------------------------------------------------


def test_a_rejected_key_stops_at_the_preflight(tmp_path: Path) -> None:
    denied = Reply(401, JSON, b'{"error": {"code": "UNAUTHORIZED", "message": "bad key"}}')
    with scripted(lambda _: denied) as server:
        proc, summary = run_locust(server.url, tmp_path, *SHORT)
        seen = list(server.seen)
    assert proc.returncode == 2 and summary is None
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("gatecheck: preflight: the key in $GATECHECK_API_KEY was rejected: 401")
    assert "Traceback" not in proc.stderr
    assert len(seen) == 1, "one preflight request, no load"


def test_a_key_rejected_by_the_chat_endpoint_stops_the_run_early(tmp_path: Path) -> None:
    """5,873 requests in 5 s all answered 401 before: now the first few decide."""
    denied = Reply(403, JSON, b'{"error": {"code": "FORBIDDEN", "message": "no"}}')
    with scripted(api(lambda _: denied)) as server:
        proc, summary = run_locust(server.url, tmp_path, "-u", "2", "-r", "2", "-t", "20s")
        posts = len(_posts(server.seen))
    assert summary is not None, _why(proc)
    assert proc.returncode == 2
    assert "gatecheck: stopping early: the first 8 requests all failed (403 FORBIDDEN)" in proc.stderr
    assert "the key is rejected" in proc.stderr
    assert posts < 20 and summary["outcome"]["verdict"] == "stopped"
    assert summary["run"]["duration_s"] < 10


def test_a_dead_url_stops_at_the_preflight(tmp_path: Path) -> None:
    proc, summary = run_locust(refused_url(), tmp_path, *SHORT)
    assert proc.returncode == 2 and summary is None
    assert "cannot reach" in proc.stderr and "connection refused" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_refused_connections_back_off_and_stop_early(tmp_path: Path) -> None:
    """9,387 refused attempts in 5 s before: without the preflight, the early stop still ends it."""
    proc, summary = run_locust(
        refused_url(), tmp_path, "-u", "2", "-r", "2", "-t", "20s", "--preflight", "off"
    )
    assert summary is not None, _why(proc)
    assert proc.returncode == 2
    assert "the target cannot be reached" in proc.stderr
    assert summary["requests"]["total"] <= 10
    assert {e["code"] for e in summary["errors"]} == {"connect-refused"}


# --- what the body is ---------------------------------------------------------------------------------


def _gzipped(body: bytes) -> Reply:
    return Reply(200, {**SSE, "content-encoding": "gzip"}, gzip.compress(body))


def test_gzip_streams_are_decoded(tmp_path: Path) -> None:
    with scripted(api(lambda _: _gzipped(GOOD_STREAM))) as server:
        proc, summary = run_locust(server.url, tmp_path, *SHORT)
    assert proc.returncode == 0, _why(proc)
    assert summary is not None
    assert summary["requests"]["ok"] == summary["requests"]["total"] > 0
    assert summary["metrics"]["itl_ms"]["count"] == summary["requests"]["ok"]


def test_an_encoding_the_users_cannot_decode_is_named(tmp_path: Path) -> None:
    brotli = Reply(200, {**SSE, "content-encoding": "br"}, b"\x1b\x00\x00")
    with scripted(api(lambda _: brotli)) as server:
        proc, summary = run_locust(server.url, tmp_path, *SHORT)
    assert summary is not None, _why(proc)
    assert {e["code"] for e in summary["errors"]} == {"content-encoding-unsupported:br"}
    assert proc.returncode == 1


def _huge(_seen: Seen) -> Reply:
    """A 200 stream that never stops growing (64 MiB if nobody stops reading)."""
    piece = b"data: " + b"x" * (1 << 20) + b"\n"
    return Reply(200, SSE, ((0.0, piece) for _ in range(64)))


def test_a_huge_body_is_cut_at_max_response_bytes(tmp_path: Path) -> None:
    """A 2 GB body took the process tree past 4 GB before: now the read stops at the cap."""
    with scripted(api(_huge)) as server:
        proc, summary = run_locust(server.url, tmp_path, *SHORT, "--max-response-bytes", "2097152")
    assert summary is not None, _why(proc)
    assert {e["code"] for e in summary["errors"]} == {"response-too-large"}
    assert summary["requests"]["total"] > 0


# --- bounded -----------------------------------------------------------------------------------------


def test_the_budget_and_the_output_cap_are_honoured(tmp_path: Path) -> None:
    """Budget 50 -> 128 requests sent before: now exactly the budget, whatever the concurrency."""
    with scripted(api(lambda _: Reply(200, SSE, GOOD_STREAM))) as server:
        proc, summary = run_locust(
            server.url,
            tmp_path,
            "-u",
            "8",
            "-r",
            "8",
            "-t",
            "30s",
            "--budget-requests",
            "25",
            "--output-tokens",
            "8:4",
            "--max-output-tokens",
            "9",
        )
        posts = _posts(server.seen)
    assert proc.returncode == 0, _why(proc)
    assert summary is not None
    assert len(posts) == 25 and summary["requests"]["total"] == 25
    assert max(json.loads(p.body)["max_tokens"] for p in posts) <= 9
    assert "budget of 25" in summary["outcome"]["stop"]
    assert summary["run"]["duration_s"] < 15, "the run ends when the budget is spent"


def test_an_output_length_above_the_cap_is_refused(tmp_path: Path) -> None:
    proc, summary = run_locust(
        "http://127.0.0.1:9", tmp_path, *SHORT, "--output-tokens", "500", "--max-output-tokens", "64"
    )
    assert proc.returncode == 2 and summary is None
    assert proc.stderr.strip().splitlines()[-1] == (
        "gatecheck: invalid configuration: --output-tokens = '500'; allowed: a mean of at most "
        "--max-output-tokens 64 (or raise that)"
    )
    assert "Traceback" not in proc.stderr


# --- nothing leaked -----------------------------------------------------------------------------------


def _echo() -> Callable[[Seen], Reply]:
    """A target that puts the caller's key everywhere a string can go, in turn."""
    turns = itertools.count()

    def answer(seen: Seen) -> Reply:
        key = seen.headers.get("authorization", "").removeprefix("Bearer ") or seen.headers.get(
            "x-api-key", ""
        )
        return _echoed(key, seen.path, next(turns) % 3)

    return answer


def _echoed(key: str, path: str, turn: int) -> Reply:
    if "/v1/messages" in path:
        return Reply(200, SSE, _echo_messages(key))
    if turn == 0:
        error = {"error": {"code": f"bad key {key}", "type": key, "message": f"key {key} rejected"}}
        return Reply(400, {**JSON, "x-request-id": key}, json.dumps(error).encode())
    if turn == 1:
        return Reply(200, SSE, chunk({"role": "assistant", "content": key}) + _data({"error": {"code": key}}))
    changed = chunk({"content": key}, id=key, model=key)
    return Reply(
        200,
        SSE,
        stream(chunk({"role": "assistant", "content": ""}), changed, b"data: {" + key.encode() + b"\n\n"),
    )


def _echo_messages(key: str) -> bytes:
    def event(name: str, data: dict[str, Any]) -> bytes:
        return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()

    return (
        event("message_start", {"type": "message_start", "message": {"id": key, "model": key, "usage": {}}})
        + event(key, {"type": key})
        + event("error", {"type": "error", "error": {"type": key, "message": key}})
    )


@pytest.fixture
def echo_server() -> Iterator[Any]:
    with scripted(api(_echo())) as server:
        yield server


@pytest.mark.parametrize("dialect", ["openai", "anthropic"])
def test_a_key_echoed_by_the_target_is_in_no_output(echo_server: Any, tmp_path: Path, dialect: str) -> None:
    """Before: the key reached stdout, the summary, both HTML pages and locust's failures CSV."""
    out = tmp_path / "out"
    proc, summary = run_locust(
        echo_server.url,
        out,
        *SHORT,
        "--dialect",
        dialect,
        "--conformance-sample",
        "1",
        "--plots",
        "on",
        key=CANARY,
    )
    assert summary is not None, _why(proc)
    assert summary["requests"]["total"] > 0 and summary["conformance"]["checked"] > 0
    written = sorted(p.name for p in out.iterdir())
    assert {"run.json", "run.html", "run.locust.html", "run_failures.csv"} <= set(written)
    assert CANARY not in _all_output(proc, out), "the key appears in no output file, stdout or stderr"
    codes = " ".join(e["code"] for e in summary["errors"])
    assert "***" in codes, codes
    rules = {r["rule"]: r for r in summary["conformance"]["rules"]}
    assert rules, "the echoed key was in violations too"
    assert all(re.fullmatch(r"[A-Za-z0-9_.:/+*-]+", e["code"]) for e in summary["errors"])
