"""Gateway overhead under load (issue 12): what the gateway added between the upstream harness and
the client, matched by nonce on one monotonic clock.

The matching, the clock check, the summary, the SLO objective and the page are pure and tested
here without locust; two short locust runs (a subprocess each, real sockets on 127.0.0.1) prove the
figures: small and positive through the faithful reference gateway in proxy mode, a whole stream's
duration when the proxy buffers the stream (``proxy-stream-buffered``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gatecheck.cli import main
from gatecheck.load.html import render_load_html, summary_table
from gatecheck.load.overhead import ACROSS_HOSTS, NonceSource, OverheadTracker, clock_check
from gatecheck.load.slo import compare, evaluate, parse_objectives
from gatecheck.load.stats import LoadStats, Overhead
from gatecheck.load.summary import build_summary, read_summary, write_summary
from gatecheck.load.workload import with_nonce
from gatecheck.reference import DEMO_KEY, GatewayConfig, RunningGateway, start_in_thread
from gatecheck.upstream.harness import harness_config, start_harness
from gatecheck.upstream.scenarios import NONCE_RE

MS = 1_000_000


# --- nonces and the clock ------------------------------------------------------------------------


def test_nonces_have_the_harness_form_and_this_process_prefix() -> None:
    source = NonceSource()
    nonces = [source.next() for _ in range(3)]
    assert all(NONCE_RE.fullmatch(n) and n.startswith(source.prefix) for n in nonces)
    assert len(set(nonces)) == 3 and NonceSource().prefix != source.prefix


def test_the_nonce_ends_the_last_message_and_the_dataset_row_is_left_alone() -> None:
    row = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}]
    body = {"model": "m", "messages": row, "stream": True}
    sent = with_nonce(body, "gcnonce-0000000000000001")
    assert sent["messages"][-1]["content"] == "hello gcnonce-0000000000000001"
    assert row[-1]["content"] == "hello" and body["messages"] is row and sent["messages"][0] is row[0]
    parts = with_nonce({"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}, "n")
    assert parts["messages"][0]["content"] == [{"type": "text", "text": "hi"}, {"type": "text", "text": "n"}]


def test_the_clock_check_accepts_this_hosts_monotonic_clock_only() -> None:
    assert clock_check(time.monotonic_ns) is None, "perf_counter_ns and monotonic_ns: one clock on Linux"
    elsewhere = clock_check(lambda: time.monotonic_ns() + 3600 * 10**9)
    assert elsewhere is not None and ACROSS_HOSTS in elsewhere and "+3600" in elsewhere


# --- matching ------------------------------------------------------------------------------------


def attempt(nonce: str, seq: int, first: int, writes: list[int] | None, **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "seq": seq,
        "nonce": nonce,
        "status": 200,
        "outcome": "complete",
        "t_arrival_ns": first - MS,
        "t_first_token_ns": first,
    }
    if writes is not None:
        record["token_writes_ns"] = writes
    return {**record, **fields}


@pytest.fixture
def tracker() -> OverheadTracker:
    return OverheadTracker(NonceSource("abcdef"))


def test_a_stream_is_matched_whichever_side_comes_first(tracker: OverheadTracker) -> None:
    into = Overhead()
    writes = [100 * MS, 110 * MS, 120 * MS]
    tracker.expect("n1", [101 * MS, 112 * MS, 123 * MS], into, now_s=0.0)
    tracker.take_page(
        [attempt("n1", 1, 100 * MS, writes), attempt("n2", 2, 200 * MS, [200 * MS])], 2, into, 0.0, 0
    )
    assert (into.matched, tracker.pending, tracker.cursor) == (1, 0, 2)
    tracker.expect("n2", [200 * MS + 500_000], into, now_s=0.5)
    assert into.matched == 2
    assert into.first.stats()["max"] == 1.0 and into.first.stats()["count"] == 2
    assert into.chunks.stats()["count"] == 4 and into.chunks.stats()["max"] == 3.0


def test_a_retried_attempt_is_matched_on_the_one_that_answered(tracker: OverheadTracker) -> None:
    into = Overhead()
    failed = attempt("n1", 1, 0, None, status=503, t_first_token_ns=None)
    tracker.take_page([failed, attempt("n1", 2, 50 * MS, None)], 2, into, 0.0, 0)
    tracker.expect("n1", [52 * MS], into, now_s=0.0)
    assert into.matched == 1 and into.first.stats()["p50"] == 2.0
    assert into.chunks.count == 0, "no write stamps (harness without --log-writes): first token only"


def test_chunks_are_matched_one_to_one_or_not_at_all(tracker: OverheadTracker) -> None:
    into = Overhead()
    tracker.expect("n1", [11 * MS, 12 * MS], into, now_s=0.0)
    tracker.take_page([attempt("n1", 1, 10 * MS, [10 * MS, 10 * MS, 11 * MS])], 1, into, 0.0, 0)
    assert (into.matched, into.chunk_mismatch, into.chunks.count) == (1, 1, 0)
    assert into.first.stats()["p50"] == 1.0


def test_an_open_attempt_is_read_again_until_it_ends(tracker: OverheadTracker) -> None:
    into = Overhead()
    tracker.take_page([attempt("n1", 7, 10 * MS, [10 * MS], outcome="open")], 9, into, 0.0, 20 * MS)
    assert tracker.cursor == 6 and into.matched == 0
    tracker.expect("n1", [12 * MS], into, now_s=0.1)
    tracker.take_page([attempt("n1", 7, 10 * MS, [10 * MS])], 9, into, 0.2, 30 * MS)
    assert (tracker.cursor, into.matched) == (9, 1)
    stuck = attempt("n2", 10, 0, None, outcome="open", t_arrival_ns=0)
    tracker.take_page([stuck], 10, into, 40.0, 40 * 10**9)
    assert tracker.cursor == 10, "an attempt open longer than the window is not waited for"


def test_what_waits_too_long_or_is_left_at_the_end_is_unmatched(tracker: OverheadTracker) -> None:
    into = Overhead()
    tracker.expect("n1", [1], into, now_s=0.0)
    tracker.take_page([attempt("h-only", 1, 5, None)], 1, into, 0.0, 0)
    tracker.expire(into, now_s=31.0)
    assert (into.unmatched, tracker.pending) == (1, 0), "a harness record alone is no request of ours"
    tracker.expect("n2", [1], into, now_s=40.0)
    tracker.finish(into)
    assert into.unmatched == 2


def test_negative_differences_are_counted_and_recorded_as_zero() -> None:
    into = Overhead()
    into.record([5 * MS, 6 * MS], 6 * MS, [6 * MS, 5 * MS])
    assert into.negative == 2 and into.first.stats()["max"] == 0.0 and into.chunks.stats()["max"] == 1.0


def test_overhead_merges_travels_and_survives_a_reset() -> None:
    a, b = Overhead(measuring=1, log_writes=True), Overhead(measuring=1, log_writes=False)
    a.record([2 * MS], MS, [MS])
    b.record([4 * MS, 9 * MS], MS, [MS, 2 * MS])
    b.not_measured("a reason")
    total = LoadStats.from_wire(LoadStats(overhead=a).to_wire()).overhead
    total.merge(Overhead.from_wire(b.to_wire()))
    assert (total.matched, total.measuring, total.log_writes, total.reasons) == (2, 2, False, ["a reason"])
    assert total.first.stats()["count"] == 2 and total.chunks.stats()["count"] == 3
    reset = LoadStats(overhead=total).left_out().overhead
    assert (reset.matched, reset.measuring, reset.log_writes, reset.reasons) == (0, 2, False, ["a reason"])


# --- summary, SLO, baseline, page ----------------------------------------------------------------


def _summary(overhead: Overhead | None, tmp_path: Path) -> dict[str, Any]:
    stats = LoadStats(overhead=overhead or Overhead())
    run = {
        "name": "r",
        "scenario": "steady",
        "host": "http://gw",
        "model": "m",
        "dialect": "openai",
        "stream": True,
    }
    summary = build_summary(stats, run, start_s=0.0, end_s=2.0, upstream="http://h" if overhead else None)
    return read_summary(write_summary(summary, tmp_path / "s.json"))  # valid against the schema both ways


def _measured() -> Overhead:
    overhead = Overhead(measuring=1, log_writes=True)
    for ms in (1, 2, 3, 40):
        overhead.record([ms * MS, (ms + 1) * MS], 0, [0, MS])
    return overhead


def test_the_summary_reports_the_overhead_with_its_distribution(tmp_path: Path) -> None:
    summary = _summary(_measured(), tmp_path)
    first, chunks = summary["metrics"]["overhead_ms"], summary["metrics"]["chunk_overhead_ms"]
    assert (first["count"], first["p50"], first["max"]) == (4, 2.0, 40.0)
    assert chunks["count"] == 8 and summary["distributions"]["overhead_ms"][-1] == [40.0, 1.0]
    section = summary["upstream"]
    assert section["measured"] and section["matched"] == 4 and section["reason"] is None
    plain = _summary(None, tmp_path)
    assert plain["upstream"] is None and "overhead_ms" not in plain["metrics"]


def test_the_overhead_objective_gates_and_says_why_when_nothing_was_measured(tmp_path: Path) -> None:
    spec = parse_objectives({"overhead_p99_ms": 10, "chunk_overhead_p50_ms": 5})
    result = evaluate(_summary(_measured(), tmp_path), spec)
    assert [r.passed for r in result.results] == [False, True]
    assert result.lines()[0].startswith("SLO overhead_p99_ms: FAIL, measured 40")
    unmeasured = Overhead()
    unmeasured.not_measured("the harness is elsewhere")
    lines = evaluate(_summary(unmeasured, tmp_path), spec).lines()
    assert "not measured (the harness is elsewhere)" in lines[0]
    assert "without --upstream" not in lines[0]
    plain = evaluate(_summary(None, tmp_path), spec).lines()
    assert "measured with --upstream only" in plain[0]


def test_a_baseline_with_overhead_flags_a_regression(tmp_path: Path) -> None:
    before = _summary(_measured(), tmp_path)
    worse = Overhead(measuring=1, log_writes=True)
    for ms in (10, 20, 30, 400):
        worse.record([ms * MS], 0, None)
    figures = [r.figure for r in compare(_summary(worse, tmp_path), before)]
    assert "metrics.overhead_ms.p50" in figures and "metrics.overhead_ms.p99" in figures


def test_the_table_and_the_page_show_the_overhead(tmp_path: Path) -> None:
    summary = _summary(_measured(), tmp_path)
    table = summary_table(summary)
    assert (
        "gateway overhead (ms)" in table
        and "4 streams matched in the log of the harness at http://h" in table
    )
    page = render_load_html(summary)
    assert 'data-plot="overhead"' in page and "<h2>Gateway overhead</h2>" in page
    unmeasured = Overhead()
    unmeasured.not_measured("the harness is elsewhere")
    assert "gateway overhead: not measured: the harness is elsewhere" in summary_table(
        _summary(unmeasured, tmp_path)
    )


# --- real runs -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def harness() -> Iterator[RunningGateway]:
    """The harness pacing tokens 20 ms apart, every write stamped (``--log-writes``)."""
    with start_harness(harness_config(itl_ms=20), log_writes=True) as running:
        yield running


def _load(harness: RunningGateway, out: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    slo = out.parent / "slo.toml"
    slo.write_text("overhead_p99_ms = 60\n", encoding="utf-8")
    code = main(
        ["load", "--upstream", harness.url, *extra, "-u", "3", "-t", "2s", "--output-tokens", "10",
         "--report-dir", str(out), "--run-name", "run", "--plots", "off", "--slo", str(slo)]
    )  # fmt: skip
    return code, read_summary(out / "run.json")


def test_overhead_through_the_faithful_proxy_is_small_and_a_buffered_stream_shows_in_full(
    harness: RunningGateway,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # no base URL: gatecheck load proxies an embedded reference gateway to the harness
    code, faithful = _load(harness, tmp_path / "faithful")
    out = capfd.readouterr().out
    assert code == 0, out[-3000:]
    assert "proxying to the harness" in out and "SLO overhead_p99_ms: ok" in out
    ok = faithful["requests"]["ok"]
    section, first = faithful["upstream"], faithful["metrics"]["overhead_ms"]
    assert ok >= 6 and section["matched"] == ok and section["unmatched"] == section["negative"] == 0
    assert 0 < first["p50"] < 30 and first["count"] == ok
    chunks = faithful["metrics"]["chunk_overhead_ms"]
    assert chunks["count"] == 10 * ok and 0 < chunks["p50"] < 30
    assert harness.config.keys[0].key not in out

    monkeypatch.setenv("GATECHECK_API_KEY", DEMO_KEY)
    key = harness.config.keys[0].key
    buffering = GatewayConfig(
        upstream=harness.url,
        upstream_api_key=key,
        rpm=10**9,
        tpm=10**12,
        faults=frozenset({"proxy-stream-buffered"}),
    )
    with start_in_thread(buffering) as gateway:
        code, buffered = _load(harness, tmp_path / "buffered", "--base-url", gateway.url)
    out = capfd.readouterr().out
    assert code == 1 and "SLO overhead_p99_ms: FAIL" in out, out[-3000:]
    first, chunks = buffered["metrics"]["overhead_ms"], buffered["metrics"]["chunk_overhead_ms"]
    # ten tokens 20 ms apart held back to the end: the first waits ~180 ms, the last ~0
    assert first["p50"] >= 150 and first["count"] == buffered["requests"]["ok"]
    assert chunks["max"] >= 150 and chunks["p50"] < first["p50"] - 40
