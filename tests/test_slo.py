"""gatecheck.load.slo: objective parsing, the gate, goodput, baselines, and ``gatecheck slo`` offline."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from gatecheck.cli import main
from gatecheck.errors import ConfigError
from gatecheck.load.slo import compare, evaluate, is_good, load_slo, parse_objectives
from gatecheck.load.stats import LoadStats
from gatecheck.load.summary import build_summary, write_summary
from gatecheck.load.timing import StreamTiming, derive

MS = 1_000_000


def _timing(ttft_ms: float, gap_ms: float = 10.0, tokens: int = 5) -> StreamTiming:
    times = [int((ttft_ms + i * gap_ms) * MS) for i in range(tokens)]
    return StreamTiming(
        t_start_ns=0,
        wall_start_s=500.0,
        t_headers_ns=MS,
        t_end_ns=times[-1] + MS,
        token_ns=times,
        status=200,
        output_tokens=tokens,
        prompt_tokens=3,
        complete=True,
        finish_reason="stop",
    )


def _summary(
    ttfts: list[float], *, failures: int = 0, targets: dict[str, float] | None = None
) -> dict[str, Any]:
    stats = LoadStats()
    for ttft in ttfts:
        m = derive(_timing(ttft))
        stats.add("steady", m, good=bool(targets) and is_good(m, targets or {}))
    for _ in range(failures):
        stats.add("steady", derive(StreamTiming(t_start_ns=0, wall_start_s=500.0, t_end_ns=MS, status=500)))
    run = {
        "name": "r",
        "scenario": "steady",
        "host": "http://127.0.0.1:1",
        "model": "m",
        "dialect": "openai",
        "stream": True,
    }
    return build_summary(stats, run, start_s=500.0, end_s=510.0, goodput_targets=targets)


def test_every_kind_of_objective_parses() -> None:
    spec = parse_objectives(
        {
            "ttft_p95_ms": 500,
            "itl_p99_ms": 80.5,
            "tpot_mean_ms": 30,
            "e2e_max_ms": 9000,
            "ttfb_p50_ms": 40,
            "error_rate": 0.01,
            "rate_limited_rate": 0.2,
            "min_output_tokens_per_s": 100,
            "min_requests_per_s": 2,
            "goodput": 0.9,
            "goodput_targets": {"ttft_ms": 1000, "tpot_ms": 50},
        }
    )
    keys = {o.key: o for o in spec.objectives}
    assert keys["ttft_p95_ms"].path == ("metrics", "ttft_ms", "p95") and keys["ttft_p95_ms"].bound == "max"
    assert keys["min_output_tokens_per_s"].path == ("throughput", "output_tokens_per_s")
    assert keys["min_output_tokens_per_s"].bound == "min"
    assert keys["goodput"].bound == "min"
    assert spec.goodput_targets == {"ttft_ms": 1000.0, "tpot_ms": 50.0}


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"ttft_p97_ms": 5}, "ttft_p97_ms"),
        ({"latency": 5}, "latency"),
        ({"ttft_p95_ms": "fast"}, "ttft_p95_ms"),
        ({"error_rate": -1}, "error_rate"),
        ({"goodput": 0.9}, "goodput"),
        ({"ttft_p95_ms": 5, "goodput_targets": {"speed": 3}}, "speed"),
        ({}, "no objectives"),
    ],
)
def test_bad_objectives_are_one_config_error_naming_the_key(data: dict[str, object], named: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_objectives(data)
    assert named in str(info.value)
    assert "\n" not in str(info.value)


def test_close_misspelling_gets_a_suggestion() -> None:
    with pytest.raises(ConfigError, match="did you mean 'ttft_p95_ms'"):
        parse_objectives({"tfft_p95_ms": 5})


def test_gate_passes_and_fails_with_one_line_per_objective() -> None:
    summary = _summary([100, 110, 120, 400], failures=1)
    result = evaluate(summary, parse_objectives({"ttft_p50_ms": 200, "ttft_max_ms": 300, "error_rate": 0.5}))
    assert not result.passed
    lines = result.lines()
    assert len(lines) == 3
    assert lines[0].startswith("SLO ttft_p50_ms: ok")
    assert lines[1].startswith("SLO ttft_max_ms: FAIL, measured 400")
    assert "error_rate: ok, measured 0.2" in lines[2]
    assert evaluate(summary, parse_objectives({"min_output_tokens_per_s": 1})).passed


def test_missing_figures_fail_rather_than_pass() -> None:
    result = evaluate(_summary([]), parse_objectives({"ttft_p95_ms": 100}))
    assert not result.passed
    assert "not measured" in result.lines()[0]


def test_goodput_counts_requests_meeting_every_target() -> None:
    targets = {"ttft_ms": 150.0}
    summary = _summary([100, 120, 200, 300], targets=targets)
    assert summary["goodput"]["met"] == 2
    spec = parse_objectives({"goodput": 0.5, "goodput_targets": targets})
    assert evaluate(summary, spec).passed
    stricter = parse_objectives({"goodput": 0.75, "goodput_targets": targets})
    assert not evaluate(summary, stricter).passed


def test_goodput_offline_needs_the_targets_the_run_used() -> None:
    summary = _summary([100], targets={"ttft_ms": 150.0})
    other = parse_objectives({"goodput": 0.5, "goodput_targets": {"ttft_ms": 50}})
    result = evaluate(summary, other)
    assert not result.passed
    assert "counted goodput against" in result.lines()[0]
    assert "run it with this --slo" in evaluate(_summary([100]), other).lines()[0]


def test_an_undefined_value_never_meets_a_goodput_target() -> None:
    timing = _timing(10)
    timing.streamed, timing.generated = False, True
    assert not is_good(derive(timing), {"ttft_ms": 1000})
    assert is_good(derive(timing), {"e2e_ms": 1000})


def test_baseline_flags_only_changes_beyond_the_threshold() -> None:
    baseline = _summary([100] * 10)
    assert compare(copy.deepcopy(baseline), baseline, 0.1) == []
    slower = _summary([130] * 10)
    figures = {r.figure for r in compare(slower, baseline, 0.1)}
    assert {"metrics.ttft_ms.p50", "metrics.e2e_ms.p95"} <= figures
    assert "metrics.itl_ms.p50" not in figures
    worse_errors = _summary([100] * 10, failures=5)
    assert "requests.error_rate" in {r.figure for r in compare(worse_errors, baseline, 0.1)}
    assert compare(slower, baseline, 0.5) == []
    assert "REGRESSION metrics.ttft_ms.p50: 130" in compare(slower, baseline, 0.1)[0].line()


def _files(tmp_path: Path, slo: str) -> tuple[Path, Path]:
    summary = write_summary(_summary([100, 120, 140]), tmp_path / "run.json")
    slo_path = tmp_path / "slo.toml"
    slo_path.write_text(slo, encoding="utf-8")
    return summary, slo_path


def test_load_slo_reads_toml_and_reports_syntax_errors(tmp_path: Path) -> None:
    _, path = _files(tmp_path, "ttft_p95_ms = 500\n")
    assert load_slo(path).objectives[0].limit == 500.0
    path.write_text("ttft_p95_ms = = 1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="valid TOML"):
        load_slo(path)


def test_offline_gate_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    summary, slo = _files(tmp_path, "ttft_p95_ms = 500\nerror_rate = 0\n")
    assert main(["slo", str(summary), "--slo", str(slo)]) == 0
    out = capsys.readouterr().out
    assert "SLO ttft_p95_ms: ok" in out and out.rstrip().endswith("pass")

    slo.write_text("ttft_p95_ms = 50\n", encoding="utf-8")
    assert main(["slo", str(summary), "--slo", str(slo)]) == 1
    assert "SLO ttft_p95_ms: FAIL" in capsys.readouterr().out

    slo.write_text("ttft_p95 = 50\n", encoding="utf-8")
    assert main(["slo", str(summary), "--slo", str(slo)]) == 2
    assert "ttft_p95" in capsys.readouterr().err


def test_offline_baseline_comparison(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = write_summary(_summary([100] * 5), tmp_path / "base.json")
    slow = write_summary(_summary([200] * 5), tmp_path / "slow.json")
    assert main(["slo", str(base), "--baseline", str(base)]) == 0
    assert main(["slo", str(slow), "--baseline", str(base)]) == 1
    assert "REGRESSION metrics.ttft_ms.p50" in capsys.readouterr().out
    assert main(["slo", str(base)]) == 2
