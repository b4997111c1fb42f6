"""gatecheck.load.timing, stats and summary: metric definitions, histograms, the summary and its schema."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from gatecheck._headers import parse_retry_after
from gatecheck.assemble import Violation
from gatecheck.errors import ConfigError
from gatecheck.load.stats import (
    MAX_ERROR_CODES,
    Histogram,
    LoadStats,
    Metrics,
    RampStep,
    RateStats,
    Sketch,
    TimeSeries,
    find_knee,
)
from gatecheck.load.summary import (
    build_summary,
    ramp_group,
    ramp_section,
    rate_section,
    read_summary,
    write_summary,
)
from gatecheck.load.timing import (
    ALL_METRIC_KEYS,
    METRIC_KEYS,
    StreamTiming,
    derive,
    public_code,
    public_text,
)
from gatecheck.redaction import Secret
from gatecheck.schemas import default_store

MS = 1_000_000


def streamed(
    token_ms: list[float],
    *,
    usage: int | None = None,
    status: int = 200,
    complete: bool = True,
    start: int = 10 * MS,
    end_ms: float | None = None,
    finish_reason: str | None = "stop",
) -> StreamTiming:
    """A timing whose output events arrived ``token_ms`` after the start (content from the first)."""
    last = token_ms[-1] if token_ms else 5.0
    return StreamTiming(
        t_start_ns=start,
        wall_start_s=1000.0,
        t_headers_ns=start + 2 * MS,
        t_end_ns=start + int((end_ms if end_ms is not None else last + 1) * MS),
        token_ns=[start + int(t * MS) for t in token_ms],
        status=status,
        output_tokens=usage,
        prompt_tokens=7 if usage is not None else None,
        complete=complete,
        content_ns=start + int(token_ms[0] * MS) if token_ms else None,
        finish_reason=finish_reason,
    )


# --- definitions -------------------------------------------------------------------------------


def test_derive_follows_the_documented_definitions() -> None:
    m = derive(streamed([100, 120, 140, 160], usage=4, end_ms=170))
    assert m.ok and m.error_code is None
    assert m.ttfb_ms == pytest.approx(2.0)
    assert m.ttft_ms == pytest.approx(100.0)
    assert m.itl_ms == pytest.approx((20.0, 20.0, 20.0))
    assert m.tpot_ms == pytest.approx(20.0)
    assert m.e2e_ms == pytest.approx(170.0)
    assert m.output_tokens == 4 and not m.tokens_estimated
    assert m.prompt_tokens == 7
    assert m.output_tokens_per_s == pytest.approx(4 / 0.170)


def test_tpot_divides_by_usage_tokens_not_by_events() -> None:
    """Two tokens per event: usage says 7 tokens over 3 events spanning 60 ms -> 10 ms per token."""
    m = derive(streamed([100, 130, 160], usage=7))
    assert m.tpot_ms == pytest.approx(60 / 6)
    assert m.itl_ms == pytest.approx((30.0, 30.0))


def test_without_usage_tokens_are_counted_as_events_and_marked_estimated() -> None:
    m = derive(streamed([50, 60, 70]))
    assert m.output_tokens == 3
    assert m.tokens_estimated


def test_single_token_has_ttft_but_no_tpot_or_itl() -> None:
    m = derive(streamed([80], usage=1))
    assert m.ttft_ms == pytest.approx(80.0)
    assert m.tpot_ms is None
    assert m.itl_ms == ()


def test_non_streaming_has_no_ttft_itl_or_tpot() -> None:
    timing = streamed([], usage=12, end_ms=300)
    timing.streamed, timing.generated = False, True
    m = derive(timing)
    assert m.ok
    assert (m.ttft_ms, m.itl_ms, m.tpot_ms) == (None, (), None)
    assert m.e2e_ms == pytest.approx(300.0)
    assert m.output_tokens == 12


@pytest.mark.parametrize(
    ("status", "code", "complete", "expected"),
    [
        (429, "RATE_LIMIT", True, "RATE_LIMIT"),
        (500, None, True, "http-500"),
        (0, None, False, "no-response"),
        (200, None, False, "stream-incomplete"),
        (200, "stream-error-event:UPSTREAM_ERROR", True, "stream-error-event:UPSTREAM_ERROR"),
    ],
)
def test_failures_carry_a_code_and_no_output_figures(
    status: int, code: str | None, complete: bool, expected: str
) -> None:
    timing = streamed([100, 120], usage=2, status=status, complete=complete)
    timing.error_code = code
    m = derive(timing)
    assert not m.ok
    assert m.error_code == expected
    assert m.output_tokens == 0 and m.output_tokens_per_s is None


@pytest.mark.parametrize(
    ("tokens", "reason", "expected"),
    [
        ([100, 120], None, "stream-no-finish-reason"),
        ([], "stop", "stream-empty"),
        ([], "end_turn", "stream-empty"),
        ([], "length", None),
        ([], "content_filter", None),
        ([100], "stop", None),
    ],
)
def test_a_stream_succeeds_only_with_a_finish_reason_and_output_or_a_reason_for_none(
    tokens: list[float], reason: str | None, expected: str | None
) -> None:
    """[DONE] alone is not success: what a server sends for a stream it interrupted (issue 11)."""
    m = derive(streamed(tokens, usage=len(tokens), finish_reason=reason))
    assert m.error_code == expected
    assert m.ok is (expected is None)


def test_a_non_streamed_answer_needs_a_finish_reason_and_content() -> None:
    timing = streamed([], usage=3, finish_reason=None)
    timing.streamed = False
    assert derive(timing).error_code == "response-no-finish-reason"
    timing.finish_reason = "stop"
    assert derive(timing).error_code == "response-empty"
    timing.generated = True
    assert derive(timing).ok


def test_ttfc_is_the_first_content_after_reasoning() -> None:
    timing = streamed([50, 60, 70, 80], usage=4)
    timing.content_ns = timing.t_start_ns + 70 * MS
    m = derive(timing)
    assert m.ttft_ms == pytest.approx(50.0) and m.ttfc_ms == pytest.approx(70.0)
    timing.content_ns = None
    assert derive(timing).ttfc_ms is None, "reasoning or tool calls only: no content"


def test_public_codes_hide_keys_and_stay_short() -> None:
    key = "sk-canary-0123456789abcdef"
    assert public_code(f"invalid key {key}", [key]) == "invalid_key_***"
    assert public_code("x" * 500, []) == "x" * 64
    assert public_code("<script>", []) == "script"
    assert public_code(key, [key]) == "***"
    assert public_text(f"prefix {key} suffix", [Secret(key)]) == "prefix *** suffix"


def test_usage_against_counted_events_and_the_estimated_share() -> None:
    metrics = _metrics_of([streamed([10, 20], usage=4), streamed([10, 20], usage=2), streamed([5, 6, 7])])
    tokens = metrics.token_summary()
    assert tokens["estimated_share"] == pytest.approx(1 / 3, abs=1e-5)
    assert tokens["usage_vs_events"] == {
        "requests": 2,
        "differ": 1,
        "usage_tokens": 6,
        "counted_events": 4,
        "tokens_per_event": 1.5,
    }


def test_error_codes_beyond_fifty_count_as_other() -> None:
    timings = []
    for i in range(MAX_ERROR_CODES + 20):
        broken = streamed([], status=500)
        broken.error_code = f"req-{i}"
        timings.append(broken)
    rows = _metrics_of(timings).error_summary()
    assert len(rows) == MAX_ERROR_CODES + 1
    assert {"status": 500, "code": "other", "count": 20} in rows


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 12 ") == 12.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now_s=1445412480.0) == pytest.approx(10.0)
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


# --- histograms --------------------------------------------------------------------------------


def test_histogram_percentiles_match_exact_ones_within_hdr_resolution() -> None:
    rng = random.Random(1)
    values = [rng.lognormvariate(3, 0.6) for _ in range(20_000)]
    hist = Histogram()
    hist.record_many(values)
    stats = hist.stats()
    assert stats["count"] == len(values)
    assert stats["mean"] == pytest.approx(float(np.mean(values)), rel=1e-4)
    assert stats["max"] == pytest.approx(max(values), abs=1e-3)
    for p in (50, 90, 95, 99):
        exact = float(np.percentile(values, p, method="inverted_cdf"))
        assert stats[f"p{p}"] == pytest.approx(exact, rel=2e-3)


def test_merged_histograms_equal_one_histogram_of_all_samples() -> None:
    """Workers' histograms, sent through the wire form and added, give the single-process figures."""
    rng = random.Random(2)
    values = [rng.uniform(15, 30) for _ in range(9_000)] + [rng.uniform(100, 900) for _ in range(300)]
    rng.shuffle(values)
    whole = Histogram()
    whole.record_many(values)
    merged = Histogram()
    for part in (values[:1000], values[1000:5000], values[5000:]):
        worker = Histogram()
        worker.record_many(part)
        merged.merge(Histogram.from_wire(json.loads(json.dumps(worker.to_wire()))))
    assert merged.stats() == whole.stats()
    assert merged.cdf() == whole.cdf()


def test_empty_histogram_reports_nulls() -> None:
    stats = Histogram().stats()
    assert stats["count"] == 0
    assert all(stats[k] is None for k in ("mean", "p50", "p90", "p95", "p99", "max"))
    assert Histogram().cdf() == []


def test_histogram_has_sub_millisecond_resolution_and_clamps_outliers() -> None:
    hist = Histogram()
    hist.record_many([20.0, 20.25, 20.5])
    assert hist.percentiles([50])[50] == pytest.approx(20.25, abs=0.03)
    hist.record(10**9)
    assert hist.stats()["max"] == pytest.approx(3_600_000.0)


# --- aggregation -------------------------------------------------------------------------------


def _metrics_of(timings: list[StreamTiming]) -> Metrics:
    metrics = Metrics()
    for timing in timings:
        metrics.add(derive(timing))
    return metrics


def test_metrics_count_429s_apart_and_errors_by_status_and_code() -> None:
    limited = streamed([], status=429)
    limited.error_code = "RATE_LIMIT"
    waiting = streamed([], status=429)
    waiting.error_code, waiting.retry_after = "RATE_LIMIT", "3"
    broken = streamed([], status=502)
    broken.error_code = "UPSTREAM_ERROR"
    metrics = _metrics_of([streamed([10, 20], usage=2), limited, waiting, broken])
    summary = metrics.request_summary()
    assert summary == {
        "total": 4,
        "ok": 1,
        "failed": 3,
        "rate_limited": 2,
        "rate_limited_with_retry_after": 1,
        "success_rate": 0.25,
        "error_rate": 0.25,
        "rate_limited_rate": 0.5,
        "estimated_token_requests": 0,
    }
    assert metrics.error_summary() == [
        {"status": 429, "code": "RATE_LIMIT", "count": 2},
        {"status": 502, "code": "UPSTREAM_ERROR", "count": 1},
    ]


def test_load_stats_wire_round_trip_and_merge() -> None:
    stats = LoadStats()
    for i in range(5):
        stats.add("steady", derive(streamed([50 + i, 70 + i, 90 + i], usage=3)), good=i % 2 == 0)
    stats.rate.due, stats.rate.started = 5, 5
    stats.rate.lag.record(0.5)
    stats.probes.append({"probe": "main:rpm"})
    copy = LoadStats.from_wire(json.loads(json.dumps(stats.to_wire())))
    total = LoadStats()
    total.merge(copy)
    total.merge(copy)
    assert total.overall().requests == 10
    assert total.overall().histograms["itl_ms"].count == 20
    assert total.goodput_met == 6
    assert total.rate.due == 10 and total.rate.lag.count == 2
    assert len(total.probes) == 2
    assert total.series.buckets[1000] == [10, 10, 30, 0, 0]
    assert sum(total.series.ttft[1000].counts.values()) == 10


def test_time_series_rows_fill_gaps_from_the_run_start() -> None:
    series = TimeSeries()
    series.add(derive(streamed([1], usage=1)))
    late = streamed([1], usage=4)
    late.wall_start_s = 1003.2
    series.add(derive(late))
    series.sample_users(1001.5, 8)
    rows = series.rows(start_s=1000.0)
    assert [r["t"] for r in rows] == [0, 1, 2, 3]
    assert rows[1]["users"] == 8 and rows[0]["users"] is None
    assert rows[2]["requests"] == 0 and rows[3]["output_tokens"] == 4
    assert rows[0]["ttft_p50_ms"] == pytest.approx(1.0, rel=0.01) and rows[2]["ttft_p50_ms"] is None


def test_time_series_marks_partial_seconds_at_the_edges() -> None:
    series = TimeSeries()
    for wall in (1000.7, 1001.5, 1002.1):
        timing = streamed([1], usage=1)
        timing.wall_start_s = wall
        series.add(derive(timing))
    rows = series.rows(start_s=1000.6, end_s=1002.3)
    assert [r["span_s"] for r in rows] == [0.4, 1.0, 0.3]


def test_sketch_quantiles_are_within_one_percent_and_merge() -> None:
    rng = random.Random(3)
    values = [rng.lognormvariate(4, 1) for _ in range(5000)]
    one, two = Sketch(), Sketch()
    for i, value in enumerate(values):
        (one if i % 2 else two).add(value)
    one.merge(two)
    exact = np.percentile(values, [50, 95], method="lower")
    assert one.quantile(0.5) == pytest.approx(exact[0], rel=0.011)
    assert one.quantile(0.95) == pytest.approx(exact[1], rel=0.011)
    assert Sketch().quantile(0.5) is None


def test_conformance_counts_streams_per_rule_and_keeps_the_first_excerpt() -> None:
    stats = LoadStats()
    broken = streamed([10, 20], usage=2)
    broken.checked = True
    broken.violations = [
        Violation("id-changed", "id changed", 2, b'data: {"id":"b"}\n\n'),
        Violation("id-changed", "id changed again", 3, b'data: {"id":"c"}\n\n'),
        Violation("missing-done", "no [DONE]", 3, b"x"),
    ]
    clean = streamed([10, 20], usage=2)
    clean.checked = True
    for timing in (broken, clean, streamed([10], usage=1)):
        stats.add("steady", derive(timing))
    merged = LoadStats()
    merged.merge(LoadStats.from_wire(json.loads(json.dumps(stats.to_wire()))))
    section = merged.conformance.summary(0.5)
    assert section["checked"] == 2 and section["with_violations"] == 1 and section["violation_rate"] == 0.5
    assert section["rules"][0] == {
        "rule": "id-changed",
        "streams": 1,
        "occurrences": 2,
        "message": "id changed",
        "excerpt": 'data: {"id":"b"}\n\n',
    }
    assert [r["rule"] for r in section["rules"]] == ["id-changed", "missing-done"]


def test_knee_is_where_throughput_flattens_while_latency_climbs() -> None:
    steps = [
        RampStep(1, 1, 100, 200),
        RampStep(5, 4.5, 450, 210),
        RampStep(9, 7, 700, 260),
        RampStep(13, 7.2, 720, 380),
        RampStep(17, 7.3, 730, 520),
    ]
    assert find_knee(steps) == 2
    assert find_knee(steps[:3]) is None


def test_ramp_section_reports_each_step_and_the_knee() -> None:
    groups = {}
    for users, ms in ((2, 100.0), (4, 100.0), (6, 300.0)):
        done = min(users, 4) * 10
        groups[ramp_group(users)] = _metrics_of([streamed([ms / 2, ms], usage=2, end_ms=ms)] * done)
    section = ramp_section(groups, [2, 4, 6], step_s=1.0)
    assert [s["users"] for s in section["steps"]] == [2, 4, 6]
    assert section["steps"][1]["output_tokens_per_s"] == 80.0
    assert section["knee"]["users"] == 4


def test_rate_section_warns_when_the_generator_falls_behind() -> None:
    rate = RateStats(due=100, started=100)
    rate.lag.record_many([0.2] * 90 + [80.0] * 10)
    section = rate_section(rate, requested_per_s=10, duration_s=10)
    assert section["achieved_per_s"] == 10.0
    assert "fell behind" in section["warning"]
    assert rate_section(RateStats(due=10, started=5, skipped=5), 1, 10)["warning"].startswith("5 of 10")
    on_time = RateStats(due=10, started=10)
    on_time.lag.record_many([0.3] * 10)
    assert rate_section(on_time, 1, 10)["warning"] is None


# --- the summary -------------------------------------------------------------------------------


def _summary(stats: LoadStats) -> dict:
    run = {
        "name": "t",
        "scenario": "steady",
        "host": "http://127.0.0.1:1",
        "model": "m",
        "dialect": "openai",
        "stream": True,
        "users": 2,
        "spawn_rate": 2.0,
        "workers": 0,
        "prompt_tokens": "8",
        "output_tokens": "4",
        "dataset": None,
        "seed": 0,
        "options": {"auth": "bearer"},
    }
    return build_summary(stats, run, start_s=1000.0, end_s=1002.0, goodput_targets={"ttft_ms": 60})


def test_summary_has_every_metric_key_and_validates(tmp_path: Path) -> None:
    stats = LoadStats()
    for ttft in (50, 55, 70):
        stats.add("steady", derive(streamed([ttft, ttft + 20], usage=2)), good=ttft < 60)
    summary = _summary(stats)
    assert list(summary["metrics"]) == list(ALL_METRIC_KEYS)
    assert summary["version"] == 2 and summary["outcome"]["exit_code"] == 0
    for key in METRIC_KEYS:
        assert set(summary["metrics"][key]) == {"count", "mean", "p50", "p90", "p95", "p99", "max"}
    assert summary["goodput"]["ratio"] == pytest.approx(2 / 3, abs=1e-6)
    assert summary["throughput"]["output_tokens_per_s"] == 3.0
    assert summary["scenarios"]["steady"]["requests"]["ok"] == 3
    path = write_summary(summary, tmp_path / "run.json")
    assert read_summary(path) == summary
    assert default_store().issues("gatecheck.load-summary", summary) == []


def test_empty_run_summary_validates(tmp_path: Path) -> None:
    write_summary(_summary(LoadStats()), tmp_path / "empty.json")


def test_write_summary_refuses_an_invalid_summary(tmp_path: Path) -> None:
    summary = _summary(LoadStats())
    summary["run"]["api_key"] = "x"
    with pytest.raises(ValueError, match="schema"):
        write_summary(summary, tmp_path / "bad.json")
    assert not (tmp_path / "bad.json").exists()


def test_version_1_summaries_are_still_read(tmp_path: Path) -> None:
    """An earlier run's summary is a baseline: it must stay readable."""
    summary = _summary(LoadStats())
    old = {k: v for k, v in summary.items() if k not in ("conformance", "outcome")}
    old["version"] = 1
    (tmp_path / "old.json").write_text(json.dumps(old), encoding="utf-8")
    assert read_summary(tmp_path / "old.json")["version"] == 1
    summary.pop("outcome")
    with pytest.raises(ValueError, match="schema"):
        write_summary(summary, tmp_path / "v2-without-outcome.json")


def test_read_summary_names_the_problem(tmp_path: Path) -> None:
    (tmp_path / "junk.json").write_text("{", encoding="utf-8")
    with pytest.raises(ConfigError, match="summary"):
        read_summary(tmp_path / "junk.json")
    (tmp_path / "other.json").write_text("{}", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"gatecheck\.load-summary"):
        read_summary(tmp_path / "other.json")
