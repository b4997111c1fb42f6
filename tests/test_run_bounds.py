"""A run never hangs: header trickles, stalled streams, a target that dies or hangs, the deadline, Ctrl-C.

Every target here is a small scripted server on 127.0.0.1 (``_hostile``); every test asserts the
exit code or outcome, a generous time bound and the message a user reads.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from _hostile import Reply, Seen, elapsed, scripted

from gatecheck.checks import Check, CheckContext, Failure, RunSettings, check, order_checks, run_check, select
from gatecheck.checks.base import CHECKS
from gatecheck.checks.session import open_session
from gatecheck.cli import main
from gatecheck.client import Client
from gatecheck.config import Target

CHUNK = (
    b'data: {"id":"c1","object":"chat.completion.chunk","created":1700000000,"model":"m",'
    b'"choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"},"finish_reason":null}]}\n\n'
)
ANSWER = json.dumps(
    {
        "id": "c1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
).encode()


@pytest.fixture(autouse=True)
def no_gatecheck_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No GATECHECK_* variable of the user's; reports go to a temporary directory."""
    for name in [n for n in os.environ if n.startswith("GATECHECK_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def asks_stream(seen: Seen) -> bool:
    return b'"stream":true' in seen.body.replace(b" ", b"")


def stalling(seen: Seen) -> Reply:
    """Every stream: its headers and one chunk, then silence; everything else answered at once."""
    if asks_stream(seen):
        return Reply(200, {"content-type": "text/event-stream"}, [(0, CHUNK), (60, b"")])
    return Reply(200, {"content-type": "application/json", "connection": "close"}, ANSWER)


# ---------------------------------------------------------------- the client's bounds


def test_a_trickle_of_header_bytes_ends_at_the_total_timeout() -> None:
    """One header byte per 0.2 s would take minutes; the total timeout (2 s) covers the headers too."""
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Padding: " + b"x" * 600
    pieces = [(0.2, bytes([byte])) for byte in head]
    with scripted(lambda _seen: Reply(body=pieces, raw=True)) as server:
        target = Target(base_url=server.url, total_timeout=2, read_timeout=30)
        with Client(target) as client:
            exchange, seconds = elapsed(lambda: client.send("GET", "/v1/models"))
    assert 1.8 < seconds < 6, seconds
    assert exchange.error_kind == "total_timeout"  # type: ignore[union-attr]
    assert exchange.error == "total timeout: no end within 2 s"  # type: ignore[union-attr]


def test_a_stream_that_goes_silent_is_ended_as_a_stall() -> None:
    with scripted(stalling) as server:
        target = Target(base_url=server.url, stall_seconds=0.5, read_timeout=30, total_timeout=30)
        with Client(target) as client:
            exchange, seconds = elapsed(
                lambda: client.send("POST", "/v1/chat/completions", json={"stream": True})
            )
    assert 0.4 < seconds < 5, seconds
    assert exchange.status == 200 and exchange.body == CHUNK  # type: ignore[union-attr]
    assert exchange.error_kind == "stall"  # type: ignore[union-attr]
    assert exchange.error == f"stalled: no byte for 0.5 s (--stall-seconds) after {len(CHUNK)} bytes"  # type: ignore[union-attr]
    assert not exchange.server_closed  # type: ignore[union-attr]


def test_a_slow_body_that_is_not_a_stream_is_no_stall() -> None:
    """A non-streamed answer may take long to start (a model thinking): only the read timeout applies."""
    slow = Reply(200, {"content-type": "application/json"}, [(1.0, ANSWER)])
    with scripted(lambda _seen: slow) as server:
        target = Target(base_url=server.url, stall_seconds=0.3, read_timeout=30, total_timeout=30)
        with Client(target) as client:
            exchange = client.send("POST", "/v1/chat/completions", json={"model": "m"})
    assert (exchange.status, exchange.error, exchange.body) == (200, None, ANSWER)


# ---------------------------------------------------------------- a stalling target, the whole stream area


def test_a_stalling_target_costs_one_stall_per_stream_not_one_per_check(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with scripted(stalling) as server:
        args = ["conform", "--base-url", server.url, "-m", "stream", "--stall-seconds", "1", "--no-preflight"]
        code, seconds = elapsed(lambda: main(args))
        streams = [seen.body for seen in server.seen if asks_stream(seen)]
    out = capsys.readouterr().out
    assert code == 1
    # each shared stream sent once, whatever checks read it: no more streams than checks of the area
    stream_checks = [c for c in select() if "stream" in c.all_markers]
    assert len(set(streams)) == len(streams) < len(stream_checks)
    assert seconds < len(streams) * 1 + 20, seconds
    assert re.search(r"FAIL\s+stream_\w+", out), out  # what the stream checks make of it is theirs to say


def test_a_check_whose_stream_stalled_sends_no_further_stream() -> None:
    """One stall per check: the next streamed request of the same check is not sent (one root cause)."""

    def two_streams(ctx: CheckContext) -> None:
        first = ctx.chat({"model": "m", "messages": [], "stream": True})
        ctx.record(Failure("the stream stalled", "stream-incomplete", "a whole stream", first.error or ""))
        ctx.chat({"model": "m", "messages": [], "stream": True})

    with scripted(stalling) as server:
        target = Target(base_url=server.url, stall_seconds=0.3, rpm=1000, tpm=1_000_000)
        result = run_registered(target, two_streams)
        streams = sum(asks_stream(seen) for seen in server.seen)
    assert streams == 1
    assert result.verdict == "FAIL"
    assert "Then the check stopped: not checked: a stream of this check already stalled" in result.message


# ---------------------------------------------------------------- a target that dies or hangs


class Dying:
    """A script that answers ``alive`` requests, then stops the server: later connections are refused."""

    def __init__(self, alive: int, hang: bool = False) -> None:
        self.alive = alive
        self.hang = hang
        self.server: object = None

    def __call__(self, seen: Seen) -> Reply:
        if len(self.server.seen) <= self.alive:  # type: ignore[attr-defined]
            return Reply(200, {"content-type": "application/json", "connection": "close"}, ANSWER)
        if self.hang:
            return Reply(body=[(60, b"")], raw=True)
        threading.Thread(target=self._die, daemon=True).start()
        return Reply(body=[(0, b"")], raw=True)  # the connection closes without an answer

    def _die(self) -> None:
        self.server.shutdown()  # type: ignore[attr-defined]
        self.server.server_close()  # type: ignore[attr-defined]


@pytest.mark.parametrize("hang", [False, True], ids=["refuses", "hangs"])
def test_when_the_target_stops_answering_the_rest_is_not_checked(
    hang: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    script = Dying(alive=2, hang=hang)
    with scripted(script) as server:
        script.server = server
        args = ["conform", "--base-url", server.url, "-m", "nonstream or aux", "--no-preflight"]
        timeouts = ["--read-timeout", "1", "--total-timeout", "2"]
        code, seconds = elapsed(lambda: main([*args, *timeouts]))
    out = capsys.readouterr().out
    results = json.loads(Path("reports/conformance/results.json").read_text())["results"]
    found = re.search(r"the target stopped answering after (\w+): the remaining checks are not checked", out)
    assert found, out
    ids = [r["check_id"] for r in results]
    killer, after = results[ids.index(found[1])], results[ids.index(found[1]) + 1 :]
    reason = f"not checked: the target stopped answering after {killer['check_id']}"
    assert code == 1
    assert seconds < 20, seconds
    assert killer["verdict"] == "FAIL"
    assert after and all(r["verdict"] == "SKIP" and r["message"] == reason for r in after)
    assert f"SKIP {after[0]['check_id']}" in out


# ---------------------------------------------------------------- the deadline and Ctrl-C


def slow(seen: Seen) -> Reply:
    """Every answer after 0.4 s."""
    return Reply(200, {"content-type": "application/json"}, [(0.4, ANSWER)])


def test_past_the_deadline_the_rest_is_not_checked(capsys: pytest.CaptureFixture[str]) -> None:
    with scripted(slow) as server:
        args = ["conform", "--base-url", server.url, "-m", "nonstream or aux", "--deadline", "0.02"]
        code, seconds = elapsed(lambda: main([*args, "--no-preflight"]))
    out = capsys.readouterr().out
    results = json.loads(Path("reports/conformance/results.json").read_text())["results"]
    reason = "not checked: the run's deadline (--deadline 0.02 min) passed"
    assert seconds < 15, seconds
    assert code in (0, 1)
    assert results[-1]["verdict"] == "SKIP" and results[-1]["message"] == reason
    assert reason in " ".join(out.split())  # the SKIP line may wrap


def test_ctrl_c_exits_130_and_writes_reports_marked_interrupted(tmp_path: Path) -> None:
    with scripted(slow) as server:
        command = [
            sys.executable,
            "-m",
            "gatecheck.cli",
            "conform",
            "--base-url",
            server.url,
            "-m",
            "nonstream or aux",
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("GATECHECK_")}
        process = subprocess.Popen(
            command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            assert process.stdout is not None
            for line in process.stdout:  # wait for the first verdict
                if line.lstrip().startswith(("PASS", "FAIL", "WARN", "SKIP")):
                    break
            process.send_signal(signal.SIGINT)
            _out, err = process.communicate(timeout=30)
        finally:
            process.kill()
    document = json.loads((tmp_path / "reports" / "conformance" / "results.json").read_text())
    done = len(document["results"])
    assert process.returncode == 130, err
    selected = len([c for c in select() if {"nonstream", "aux"} & set(c.all_markers)])
    assert f"interrupted after {done} of {selected} checks" in err
    assert document["interrupted"] is True and 1 <= done < selected
    assert "**interrupted**" in (tmp_path / "reports" / "conformance" / "matrix.md").read_text()


# ---------------------------------------------------------------- helpers


def run_registered(target: Target, func: object) -> object:
    """Run ``func`` registered as a throwaway check against ``target`` (unregistered afterwards)."""
    made: Check = check("nonstream", "test")(func)  # type: ignore[arg-type]
    try:
        with open_session(target, RunSettings()) as session:
            return run_check(session, made)
    finally:
        del CHECKS[made.id]


def test_a_pacing_wait_never_outlasts_the_deadline() -> None:
    """At 1 RPM the second request would wait a minute; with a 1 s deadline the run ends at once."""

    def two_requests(ctx: CheckContext) -> None:
        ctx.chat({"model": "m", "messages": []})
        ctx.chat({"model": "m", "messages": []})

    lines: list[str] = []
    with scripted(lambda _seen: Reply(200, body=ANSWER)) as server:
        target = Target(base_url=server.url, rpm=1, tpm=1_000_000)
        settings = RunSettings(deadline_s=1.0, notify=lines.append)
        made: Check = check("nonstream", "test")(two_requests)
        try:
            with open_session(target, settings) as session:
                result, seconds = elapsed(lambda: run_check(session, made))
                _none, wait_s = elapsed(lambda: session.wait(30, "a rate-limit window"))
        finally:
            del CHECKS[made.id]
    reason = "not checked: the run's deadline (--deadline 0.0166667 min) passed"
    assert seconds < 5 and wait_s < 1
    assert (result.verdict, result.message) == ("SKIP", reason)  # type: ignore[union-attr]
    assert lines == [f"{reason.removeprefix('not checked: ')}: the remaining checks are not checked"]
    assert len(server.seen) == 1


def test_an_announced_wait() -> None:
    lines: list[str] = []
    with open_session(Target(), RunSettings(notify=lines.append)) as session:
        _none, seconds = elapsed(lambda: session.wait(1.2, "the rate-limit window to reset"))
    assert 1.1 < seconds < 3
    assert lines == ["waiting 1 s: the rate-limit window to reset"]


def test_heavy_checks_run_after_every_other_and_rate_limits_late_on_a_shared_key() -> None:
    def made(name: str, area: str, markers: tuple[str, ...] = ()) -> Check:
        return Check(name, area, "test", lambda ctx: None, "", (), markers=markers)

    heavy, burst, plain = made("huge", "errors", ("heavy",)), made("burst", "ratelimit"), made("plain", "aux")
    assert order_checks([heavy, burst, plain], dedicated_ratelimit_key=False) == [plain, burst, heavy]
    assert order_checks([heavy, burst, plain], dedicated_ratelimit_key=True) == [burst, plain, heavy]
