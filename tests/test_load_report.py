"""gatecheck.load.html: the terminal table and the self-contained plots page."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from gatecheck.load.html import figure, full_seconds, plots, render_load_html, summary_table, write_load_html
from gatecheck.load.limits import LimitKey, ProbePlan, ProbeRecord, plan_probes, verdict
from gatecheck.load.slo import evaluate, parse_objectives
from gatecheck.load.stats import LoadStats
from gatecheck.load.summary import build_summary, limits_windows, outcome_section, ramp_group, ramp_section
from gatecheck.load.timing import StreamTiming, derive

MS = 1_000_000


def _stats() -> LoadStats:
    stats = LoadStats()
    for i in range(40):
        users = 2 if i < 20 else 4
        tokens = [int((50 + i + 10 * k) * MS) for k in range(4)]
        timing = StreamTiming(
            t_start_ns=0,
            wall_start_s=100.0 + i / 10,
            t_headers_ns=MS,
            t_end_ns=tokens[-1] + MS,
            token_ns=tokens,
            status=200,
            output_tokens=4,
            prompt_tokens=8,
            complete=True,
            finish_reason="length",
        )
        stats.add(ramp_group(users), derive(timing))
    limited = StreamTiming(t_start_ns=0, wall_start_s=101.0, t_end_ns=MS, status=429, error_code="RATE_LIMIT")
    stats.add(ramp_group(4), derive(limited))
    return stats


def _probe_records(plan: ProbePlan) -> list[ProbeRecord]:
    """A burst cut by a 429, the retry, two sustain windows admitting 10 then 9 requests."""
    records = [ProbeRecord(plan.name, "burst", 0.01 * i, 200, 9, True, None, False) for i in range(10)]
    records.append(ProbeRecord(plan.name, "burst", 0.2, 429, 0, False, "1", True))
    records.append(ProbeRecord(plan.name, "retry", 1.5, 200, 9, True, None, False))
    for window, admitted in ((0, 10), (1, 9)):
        for i in range(20):
            status = 200 if (i + (1 if window == 0 else 0)) < admitted else 429
            records.append(
                ProbeRecord(plan.name, "sustain", 1.5 + window + 0.01 + i * 0.045, status, 9, True, "1", True)
            )
    return records


def _summary() -> dict[str, Any]:
    stats = _stats()
    plans = plan_probes(LimitKey("main", None, 10, 2000), 1.0)
    records = _probe_records(plans[0])
    run = {
        "name": "run <script>alert(1)</script>",
        "scenario": "ramp",
        "host": "http://127.0.0.1:1",
        "model": "m&m",
        "dialect": "openai",
        "stream": True,
        "users": 4,
    }
    limits = verdict(plans, records)
    for plan, probe in zip(plans, limits["probes"], strict=True):
        probe["sustain_windows"] = limits_windows(plan, records)
    sections = {"ramp": ramp_section(stats.groups, [2, 4], 2.0), "limits": limits}
    summary = build_summary(
        stats,
        run,
        start_s=100.0,
        end_s=103.5,
        sections=sections,
        warnings=["the generator fell behind <oops>"],
    )
    slo = evaluate(summary, parse_objectives({"ttft_p95_ms": 10, "error_rate": 0.5}))
    summary["slo"] = slo.to_json()
    summary["outcome"] = outcome_section(summary, not slo.passed, early_stop=None, budget=None)
    return summary


class _Checker(HTMLParser):
    """Collects tags, images and text; fails on unbalanced structure."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.images: list[str] = []
        self.text: list[str] = []
        self.figures: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "figure":
            self.figures.append((dict(attrs).get("data-plot") or "", ""))
        if tag == "img":
            self.images.append(dict(attrs)["src"] or "")
        elif tag not in ("meta", "br"):
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"unbalanced </{tag}> in {self.stack}"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_terminal_table_lists_metrics_gates_and_verdicts() -> None:
    table = summary_table(_summary())
    assert table.splitlines()[0] == "FAIL: 40 of 41 requests succeeded (97.6%); 429: 1, errors: 0"
    assert "requests 41  ok 40  failed 1 (429: 1)" in table
    for label in (
        "TTFT (ms)",
        "TTFC (ms)",
        "ITL (ms)",
        "TPOT (ms)",
        "E2E (ms)",
        "output tok/s per request",
        "TTFB (ms)",
    ):
        assert label in table
    assert "SLO ttft_p95_ms: FAIL" in table
    assert "limits main:rpm" in table and "ramp knee" in table
    assert "error 429 RATE_LIMIT: 1" in table
    assert "conformance under load: no stream checked" in table


def test_page_is_self_contained_escaped_and_well_formed(tmp_path: Path) -> None:
    path = write_load_html(_summary(), tmp_path / "sub" / "run.html")
    page = path.read_text(encoding="utf-8")
    checker = _Checker()
    checker.feed(page)
    checker.close()
    assert checker.stack == []
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page
    assert "m&amp;m" in page and "&lt;oops&gt;" in page
    keys = [k for k, _ in checker.figures]
    assert keys == [
        "ttft-per-second",
        "ttft-cdf",
        "itl-histogram",
        "tokens-per-second",
        "requests-per-second",
        "failures-per-second",
        "ramp",
        "limits-main:rpm",
    ]
    assert all(src.startswith("data:image/png;base64,") for src in checker.images)
    assert "http://" not in page.replace("http://127.0.0.1:1", ""), "no external resource"
    text = " ".join(checker.text)
    assert "SLO ttft_p95_ms: FAIL" in text
    assert 'data-verdict="fail"' in page and 'class="banner fail"' in page
    assert "SLO: FAILED (1 of 2 objectives missed)" in text


def test_a_run_without_requests_still_renders() -> None:
    run = {
        "name": "empty",
        "scenario": "steady",
        "host": "h",
        "model": "m",
        "dialect": "openai",
        "stream": False,
    }
    summary = build_summary(LoadStats(), run, start_s=1.0, end_s=2.0)
    page = render_load_html(summary)
    assert "<img" not in page and 'id="no-plots"' in page
    assert "NO REQUEST COMPLETED" in page and 'data-verdict="stopped"' in page
    assert "requests 0" in summary_table(summary)


def test_nothing_succeeded_gets_a_loud_banner() -> None:
    stats = LoadStats()
    for i in range(5):
        limited = StreamTiming(
            t_start_ns=0, wall_start_s=100.0 + i, t_end_ns=MS, status=429, error_code="RATE_LIMIT"
        )
        stats.add("steady", derive(limited))
    run = {"name": "r", "scenario": "steady", "host": "h", "model": "m", "dialect": "openai", "stream": True}
    summary = build_summary(stats, run, start_s=100.0, end_s=105.0)
    assert summary["outcome"]["exit_code"] == 1 and summary["outcome"]["verdict"] == "fail"
    assert summary["outcome"]["reasons"][0].startswith("no request succeeded: 429 RATE_LIMIT x 5")
    page = render_load_html(summary)
    assert 'class="banner fail nothing"' in page and "Warning: no request succeeded." in page
    assert "NO REQUEST SUCCEEDED: 0 of 5 requests succeeded (0.0%); 429: 5, errors: 0" in page
    assert summary_table(summary).startswith("FAIL: NO REQUEST SUCCEEDED")


def test_errors_table_explains_gatecheck_codes() -> None:
    stats = LoadStats()
    cut = StreamTiming(t_start_ns=0, wall_start_s=100.0, t_end_ns=MS, status=200, t_headers_ns=1)
    stats.add("steady", derive(cut))
    run = {"name": "r", "scenario": "steady", "host": "h", "model": "m", "dialect": "openai", "stream": True}
    page = render_load_html(build_summary(stats, run, start_s=100.0, end_s=101.0))
    assert "stream-incomplete" in page and "the stream ended without [DONE]" in page


# --- the plots' axes ---------------------------------------------------------------------------------


def _axes(summary: dict[str, Any]) -> dict[str, Any]:
    return {p.key: figure(p.draw).axes[0] for p in plots(summary)}


def test_no_plot_has_a_negative_axis_and_itl_is_on_a_log_axis() -> None:
    for key, ax in _axes(_summary()).items():
        bottom = ax.get_ylim()[0]
        assert bottom >= 0, f"{key}: y axis from {bottom}"
        if ax.get_xscale() == "linear":
            assert ax.get_xlim()[0] >= 0, f"{key}: x axis from {ax.get_xlim()[0]}"
    itl = _axes(_summary())["itl-histogram"]
    assert itl.get_xscale() == "log"
    right = itl.get_xlim()[1]
    assert right >= _summary()["metrics"]["itl_ms"]["p99"], "the tail (p99) is on the plot"


def test_partial_seconds_are_left_out_of_the_series() -> None:
    summary = _summary()
    rows = summary["timeseries"]
    assert rows[0]["span_s"] == 1.0 and rows[-1]["span_s"] < 1
    kept = full_seconds(rows)
    assert len(kept) == len(rows) - 1
    series = _axes(summary)["requests-per-second"]
    plotted = series.lines[0].get_xdata()
    assert list(plotted) == [r["t"] for r in kept]


def test_limits_plot_shows_each_sustain_window_against_the_limit() -> None:
    ax = _axes(_summary())["limits-main:rpm"]
    heights = [bar.get_height() for bar in ax.patches]
    assert heights == [10, 9]
    assert any(list(line.get_ydata()) == [10, 10] for line in ax.lines), "the limit line"
