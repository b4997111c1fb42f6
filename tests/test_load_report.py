"""gatecheck.load.html: the terminal table and the self-contained plots page."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from gatecheck.load.html import render_load_html, summary_table, write_load_html
from gatecheck.load.limits import LimitKey, ProbeRecord, plan_probes, verdict
from gatecheck.load.slo import evaluate, parse_objectives
from gatecheck.load.stats import LoadStats
from gatecheck.load.summary import build_summary, ramp_group, ramp_section
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
        )
        stats.add(ramp_group(users), derive(timing))
    limited = StreamTiming(t_start_ns=0, wall_start_s=101.0, t_end_ns=MS, status=429, error_code="RATE_LIMIT")
    stats.add(ramp_group(4), derive(limited))
    return stats


def _summary() -> dict[str, Any]:
    stats = _stats()
    plans = plan_probes(LimitKey("main", None, 10, 2000), 1.0)
    records = [ProbeRecord(plans[0].name, "burst", 0.1, 429, 0, False, None, False)]
    run = {
        "name": "run <script>alert(1)</script>",
        "scenario": "ramp",
        "host": "http://127.0.0.1:1",
        "model": "m&m",
        "dialect": "openai",
        "stream": True,
        "users": 4,
    }
    sections = {"ramp": ramp_section(stats.groups, [2, 4], 2.0), "limits": verdict(plans, records)}
    summary = build_summary(
        stats,
        run,
        start_s=100.0,
        end_s=104.0,
        sections=sections,
        warnings=["the generator fell behind <oops>"],
    )
    summary["slo"] = evaluate(summary, parse_objectives({"ttft_p95_ms": 10, "error_rate": 0.5})).to_json()
    return summary


class _Checker(HTMLParser):
    """Collects tags, images and text; fails on unbalanced structure."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.images: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
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
    assert "requests 41  ok 40  failed 1 (429: 1)" in table
    for label in ("TTFT (ms)", "ITL (ms)", "TPOT (ms)", "E2E (ms)", "output tok/s per request", "TTFB (ms)"):
        assert label in table
    assert "SLO ttft_p95_ms: FAIL" in table
    assert "limits main:rpm" in table and "ramp knee" in table
    assert "error 429 RATE_LIMIT: 1" in table


def test_page_is_self_contained_escaped_and_well_formed(tmp_path: Path) -> None:
    path = write_load_html(_summary(), tmp_path / "sub" / "run.html")
    page = path.read_text(encoding="utf-8")
    checker = _Checker()
    checker.feed(page)
    checker.close()
    assert checker.stack == []
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "m&amp;m" in page and "&lt;oops&gt;" in page
    assert len(checker.images) == 6, "TTFT CDF, ITL histogram, tokens/s, requests/s, 429s, ramp"
    assert all(src.startswith("data:image/png;base64,") for src in checker.images)
    assert "http://" not in page.replace("http://127.0.0.1:1", ""), "no external resource"
    text = " ".join(checker.text)
    assert "SLO ttft_p95_ms: FAIL" in text


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
    assert "<img" not in render_load_html(summary)
    assert "requests 0" in summary_table(summary)
