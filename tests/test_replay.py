"""Recordings (``--record``) and ``gatecheck replay``: the same verdicts, offline, keys redacted.

Replay equals live is proven for every check on the faithful gateway (test_conformance_suite.py)
and on every fault (test_conformance_faults.py records and replays each run). Here: the clock
seam, the cassette format and its redaction, the commands, a divergence that fails loudly, a
subset, and LiteLLM's committed recordings (tests/recordings/litellm, made by ``tox -e
realworld``), replayed in the ordinary test run against the verdict table of docs/real-gateways.md.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from gatecheck import clock
from gatecheck.cassettes import (
    CASSETTE_FORMAT,
    FORMAT_VERSION,
    RUN_FILE,
    Replayer,
    exchange_from_record,
    exchange_record,
    replay,
)
from gatecheck.cli import main
from gatecheck.client import Exchange
from gatecheck.errors import ConfigError
from gatecheck.redaction import Secret
from gatecheck.request import Request

if TYPE_CHECKING:
    from conftest import GatewayFactory

ROOT = Path(__file__).resolve().parents[1]
LITELLM = ROOT / "tests" / "recordings" / "litellm"
VERDICTS = tomllib.loads((ROOT / "tests" / "realworld" / "litellm_verdicts.toml").read_text(encoding="utf-8"))
CHEAP = (
    "aux_models_list,aux_balance,nonstream_usage,stream_really_streams,stream_done_last,errors_invalid_key"
)


@pytest.fixture(autouse=True)
def no_gatecheck_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in [n for n in os.environ if n.startswith("GATECHECK_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


# ---------------------------------------------------------------- the clock seam


TIME_READS = ("sleep", "monotonic", "monotonic_ns", "perf_counter_ns", "time", "now")


def _direct_time_calls(path: Path) -> list[str]:
    """Calls like ``time.sleep(...)`` or ``datetime.now()`` in ``path``: time not read from the run clock."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        owner = node.func.value
        if isinstance(owner, ast.Name) and owner.id in ("time", "datetime") and node.func.attr in TIME_READS:
            found.append(f"{path.name}:{node.lineno} {owner.id}.{node.func.attr}()")
    return found


def test_checks_read_time_only_through_the_run_clock() -> None:
    """A check that reads ``time`` directly would see the replay's real time, not the recorded one.

    (The runner's ``time.perf_counter()`` only measures how long a check took in this run.)
    """
    sources = [*(ROOT / "gatecheck" / "checks").glob("*.py"), ROOT / "gatecheck" / "calibration.py"]
    offenders = [call for path in sources for call in _direct_time_calls(path)]
    assert offenders == [], "use gatecheck.clock (clock.sleep, clock.monotonic, clock.time...): " + ", ".join(
        offenders
    )


def test_the_virtual_clock_moves_only_when_told() -> None:
    virtual = clock.VirtualClock(now_ns=5_000_000_000, wall_s=1_800_000_000.0)
    with clock.using(virtual):
        clock.sleep(60)
        assert clock.monotonic() == 65.0 and clock.time() == 1_800_000_060.0
        virtual.reach(64_000_000_000)  # an exchange that overlapped: never back
        assert clock.perf_counter_ns() == 65_000_000_000
        virtual.reach(70_000_000_000)
        assert clock.monotonic() == 70.0
        clock.sleep(1e-12)  # a hair short of an instant still gets there (the pacer sleeps until one)
        assert clock.perf_counter_ns() == 70_000_000_001
    assert clock.monotonic() != 70.0, "the system clock is back after the replay"


# ---------------------------------------------------------------- the cassette format


def _exchange(chunks: list[tuple[int, bytes]], key: Secret, body: bytes = b'{"a":1}') -> Exchange:
    request = Request(
        "POST",
        "http://127.0.0.1:9/v1/chat/completions",
        {"Authorization": f"Bearer {key.reveal()}"},
        body,
        key,
        "GATECHECK_API_KEY",
        (key,),
    )
    headers = httpx.Headers([(b"content-type", b"text/event-stream"), (b"x-echo", key.reveal().encode())])
    start = 1_000_000
    return Exchange(
        request,
        200,
        headers,
        [(start + t, data) for t, data in chunks],
        t_start_ns=start,
        t_headers_ns=start + 10,
        t_end_ns=start + 99,
        server_closed=True,
        http_version="HTTP/1.1",
    )


def test_an_exchange_round_trips_with_its_stamps_and_bytes() -> None:
    key = Secret("canary-3f9c1b7e5d2a")
    chunks = [(20, b"data: {}\n\n"), (45, b"\xff\xfe not utf-8\n\n"), (90, b"data: [DONE]\n\n")]
    record = json.loads(json.dumps(exchange_record(_exchange(chunks, key), 1_000, (key,))))
    assert record["chunks"][1][1] == {"base64": "//4gbm90IHV0Zi04Cgo="}
    assert record["t_start_ns"] == 999_000 and record["chunks"][0][0] == 20
    request = _exchange([], key).request
    back = exchange_from_record(record, request, 1_000)
    assert back.chunks == [(1_000_000 + t, data) for t, data in chunks]
    assert (back.status, back.t_headers_ns, back.t_end_ns, back.server_closed) == (
        200,
        1_000_010,
        1_000_099,
        True,
    )
    assert back.headers.get("x-echo") == "***" and back.request is request


def test_a_key_is_masked_even_when_the_chunks_cut_it_in_two() -> None:
    key = Secret("canary-3f9c1b7e5d2a")
    chunks = [(10, b'data: {"echo":"canary-3f9'), (20, b'c1b7e5d2a"}\n\n'), (30, b"data: [DONE]\n\n")]
    record = exchange_record(_exchange(chunks, key), 0, (key,))
    text = json.dumps(record)
    assert "canary-3f9" not in text and "c1b7e5d2a" not in text
    assert record["request"]["headers"]["Authorization"] == "Bearer ***"
    assert record["chunks"] == [[20, 'data: {"echo":"***"}\n\n'], [30, "data: [DONE]\n\n"]]


def test_a_large_request_body_is_kept_as_its_digest() -> None:
    key = Secret("canary-3f9c1b7e5d2a")
    body = b'{"prompt":"' + b"x " * 20_000 + b'"}'
    record = exchange_record(_exchange([], key, body), 0, (key,))
    assert set(record["request"]["body"]) == {"sha256", "length"} and record["request"]["body"][
        "length"
    ] == len(body)


# ---------------------------------------------------------------- the commands


def record_and_replay(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, *args: str
) -> tuple[int, str, int, str, Path]:
    recording = tmp_path / "rec"
    code = main(
        [
            "conform",
            "--checks",
            CHEAP,
            "--record",
            str(recording),
            "--report-dir",
            str(tmp_path / "live"),
            *args,
        ]
    )
    live = capsys.readouterr().out
    replayed = main(["replay", str(recording), "--report-dir", str(tmp_path / "replayed")])
    return code, live, replayed, capsys.readouterr().out, recording


def test_conform_records_and_replay_rejudges_offline(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, live, replayed, out, recording = record_and_replay(capsys, tmp_path, "--fuzz-examples", "0")
    assert code == 0 and replayed == 0, live + out
    assert f"recording: {recording} (replay it with: gatecheck replay {recording})" in live
    run = json.loads((recording / "reference" / RUN_FILE).read_text())
    assert run["format"] == "gatecheck.recording" and run["version"] == FORMAT_VERSION
    assert len(run["checks"]) == 6 and run["embedded_url"].startswith("http://127.0.0.1:")
    cassette = json.loads((recording / "reference" / "aux_models_list.json").read_text())
    assert cassette["format"] == CASSETTE_FORMAT and cassette["verdict"] == "PASS"
    assert "every verdict is the recorded one" in out and "  PASS  stream_really_streams" in out
    live_results = json.loads((tmp_path / "live" / "results.json").read_text())["results"]
    replayed_results = json.loads((tmp_path / "replayed" / "results.json").read_text())["results"]
    assert [(r["check_id"], r["verdict"], r["message"]) for r in replayed_results] == [
        (r["check_id"], r["verdict"], r["message"]) for r in live_results
    ]
    text = "".join(p.read_text() for p in (recording / "reference").iterdir())
    assert "gatecheck-conformance-main-key" not in text and "Bearer ***" in text


def test_a_key_given_for_a_real_target_never_reaches_a_cassette(
    gateway: GatewayFactory,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    canary = "canary-" + os.urandom(8).hex()
    target = gateway(keys=[canary], rpm=1_000_000, tpm=1_000_000_000)
    monkeypatch.setenv("GATECHECK_API_KEY", canary)
    code, live, replayed, out, recording = record_and_replay(capsys, tmp_path, "--base-url", target.url)
    assert code == 0 and replayed == 0, live + out
    files = list(recording.rglob("*.json"))
    assert files and not [p.name for p in files if canary in p.read_text()]
    assert '"api_key":{"source":"$GATECHECK_API_KEY"}' in (recording / "127.0.0.1" / RUN_FILE).read_text()


def test_a_request_the_recording_does_not_hold_fails_loudly(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, replayed, _, recording = record_and_replay(capsys, tmp_path)
    assert code == 0 and replayed == 0
    cassette = recording / "reference" / "aux_balance.json"
    cassette.write_text(cassette.read_text().replace("/v1/balance", "/v1/balanse"))  # recorded: another URL
    assert main(["replay", str(recording), "--report-dir", str(tmp_path / "r2")]) == 2
    out = capsys.readouterr()
    assert "diverged: aux_balance: GET http" in out.out and "the replay diverged" in out.err
    results = json.loads((tmp_path / "r2" / "results.json").read_text())["results"]
    balance = next(r for r in results if r["check_id"] == "aux_balance")
    assert (
        balance["verdict"] == "FAIL" and "the recording holds no answer to this request" in balance["message"]
    )


def test_a_subset_replays_with_the_observations_recorded_under_other_checks(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _, _, _, _, recording = record_and_replay(capsys, tmp_path)
    first = Replayer.load(recording / "reference")
    stream_checks = [c.check_id for c in first.checks if c.check_id.startswith("stream_")]
    done = replay(recording / "reference", {stream_checks[-1]})  # its stream was recorded by the first
    assert [r.verdict for r in done.results] == ["PASS"] and not done.replayer.misses
    assert main(["replay", str(recording), "--checks", f"{stream_checks[-1]},stream_usage_final"]) == 2
    said = capsys.readouterr().err
    assert "--checks = 'stream_usage_final'; allowed: check ids the recording holds" in said


def test_pytest_conformance_records_too(tmp_path: Path) -> None:
    record_one = ["--checks", "aux_models_list", "--record", str(tmp_path / "rec")]
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATECHECK_")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(ROOT / "conformance"),
            "-p",
            "no:cacheprovider",
            "-q",
            *record_one,
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"gatecheck recording: {tmp_path / 'rec' / 'reference'}" in done.stdout
    assert [r.verdict for r in replay(tmp_path / "rec" / "reference").results] == ["PASS"]


def test_a_directory_that_is_no_recording_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["replay", str(tmp_path)]) == 2
    assert "a directory written by --record" in capsys.readouterr().err
    (tmp_path / RUN_FILE).write_text('{"format": "gatecheck.recording", "version": 99}')
    with pytest.raises(ConfigError, match="format version 1"):
        Replayer.load(tmp_path)


# ---------------------------------------------------------------- LiteLLM, recorded once


def test_litellm_recordings_replay_to_the_documented_verdicts() -> None:
    """The committed recording of LiteLLM's proxy (tox -e realworld) gives, offline, every verdict of
    the table docs/real-gateways.md shows (tests/realworld/litellm_verdicts.toml) and its own."""
    done = replay(LITELLM)
    assert not done.replayer.misses, (
        "the recording predates a change of these checks' requests: record LiteLLM again "
        "(docs/real-gateways.md, 'Recordings')\n" + "\n".join(done.replayer.misses)
    )
    assert not done.changed and not done.unknown
    table = {check: [v] if isinstance(v, str) else v for check, v in VERDICTS["verdicts"].items()}
    now = {r.check_id: r.verdict for r in done.results}
    turned = [
        f"{c}: table {table.get(c)}, replayed {now.get(c)}"
        for c in table.keys() | now.keys()
        if now.get(c) not in table.get(c, [])
    ]
    assert not turned, "\n".join(sorted(turned))


def test_litellm_recordings_hold_no_key_and_stay_small() -> None:
    files = list(LITELLM.iterdir())
    text = "".join(p.read_text(encoding="utf-8") for p in files)
    run = json.loads((LITELLM / RUN_FILE).read_text(encoding="utf-8"))
    assert run["target"]["name"] == "litellm" and run["target"]["api_key"] == {"source": "$GATECHECK_API_KEY"}
    assert "Bearer ***" in text and "Bearer sk-" not in text
    assert sum(p.stat().st_size for p in files) < 3 * 1024 * 1024


DRAW = """
import hashlib, importlib, json, sys, types
for name in sys.argv[1:]:
    importlib.import_module(name)
from gatecheck.checks import RunSettings
from gatecheck.checks.fuzz import fuzz_requests
from gatecheck.config import Target
from gatecheck.schemas import default_store
settings = RunSettings(fuzz_examples=3, fuzz_seed=1)
ctx = types.SimpleNamespace(settings=settings, store=default_store(), target=Target())
print(hashlib.sha256(json.dumps(fuzz_requests(ctx)).encode()).hexdigest())
"""


def test_a_fuzz_seed_draws_the_same_requests_whatever_the_process_loaded() -> None:
    """Hypothesis mixes literals of loaded modules into its draws; the fuzz checks draw without
    them, so a run (reference gateway loaded) and its replay (not loaded) send the same requests."""
    draws = [
        subprocess.run(
            [sys.executable, "-c", DRAW, *modules], capture_output=True, text=True, timeout=240, check=True
        ).stdout
        for modules in ((), ("gatecheck.reference", "gatecheck.cassettes"))
    ]
    assert draws[0] == draws[1] and len(draws[0].strip()) == 64
