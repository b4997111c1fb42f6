"""Real load runs: locust in a subprocess (it monkey-patches with gevent) against the reference gateway.

Each run lasts a few seconds; the gateway runs in this process (``gateway`` fixture) or behind a
counting proxy (the distributed test counts what the gateway was actually sent).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from _counting_proxy import CountingProxy

from gatecheck.cli import main
from gatecheck.commands.load import run_load
from gatecheck.load.summary import read_summary
from gatecheck.reference import DEMO_KEY, KeySpec

ROOT = Path(__file__).resolve().parents[1]
LOCUSTFILE = ROOT / "loadtests" / "locustfile.py"
CANARY = "canary-load-7f3a9c01e5"
UNLIMITED = {"rpm": 1_000_000_000, "tpm": 1_000_000_000_000}
RUN_TIMEOUT_S = 90


def run_locust(
    host: str, out: Path, *args: str, key: str = DEMO_KEY, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any] | None]:
    """One headless locust run with gatecheck's locustfile; returns the process and the summary.

    The plots page is off unless asked for (matplotlib costs 1-2 s per run).
    """
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--only-summary"]
    command += ["--host", host, "--report-dir", str(out), "--run-name", "run"]
    command += ["--csv", str(out / "run"), "--json-file", str(out / "run.locust")]
    command += [*args] if "--plots" in args else [*args, "--plots", "off"]
    child_env = {**os.environ, "GATECHECK_API_KEY": key, **(env or {})}
    proc = subprocess.run(command, env=child_env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    path = out / "run.json"
    return proc, read_summary(path) if path.exists() else None


def _why(proc: subprocess.CompletedProcess[str]) -> str:
    """The end of a run's output, for assertion messages."""
    return f"exit {proc.returncode}\n{proc.stdout[-1500:]}\n{proc.stderr[-2500:]}"


def _locust_counts(out: Path) -> dict[tuple[str, str], int]:
    """Request counts per (type, name) in locust's final statistics (its CSV is a periodic snapshot)."""
    entries = json.loads((out / "run.locust.json").read_text(encoding="utf-8"))
    return {(e["method"], e["name"]): e["num_requests"] for e in entries}


CHAT = "/v1/chat/completions"


def _all_output(proc: subprocess.CompletedProcess[str], out: Path) -> str:
    files = [p.read_text(encoding="utf-8", errors="replace") for p in out.iterdir() if p.is_file()]
    return "\n".join([proc.stdout, proc.stderr, *files])


def test_streaming_run_measures_what_the_gateway_injects(gateway: Any, tmp_path: Path) -> None:
    """TTFT near the injected 40 ms, ITL near 5 ms, tokens equal to usage; the SLO gate fails the run."""
    gw = gateway(keys=[CANARY], ttft_ms=40, itl_ms=5, **UNLIMITED)
    slo = tmp_path / "slo.toml"
    slo.write_text("ttft_p50_ms = 1\nerror_rate = 0\nmin_output_tokens_per_s = 1\n", encoding="utf-8")
    out = tmp_path / "out"
    proc, summary = run_locust(
        gw.url,
        out,
        "-u",
        "4",
        "-r",
        "4",
        "-t",
        "2s",
        "--prompt-tokens",
        "20",
        "--output-tokens",
        "12",
        "--ignore-eos",
        "on",
        "--slo",
        str(slo),
        "--plots",
        "on",
        key=CANARY,
    )
    assert summary is not None, _why(proc)
    assert proc.returncode == 1, "a violated objective fails the run"
    assert "SLO ttft_p50_ms: FAIL" in proc.stdout and "SLO error_rate: ok" in proc.stdout
    req, metrics = summary["requests"], summary["metrics"]
    ok = req["ok"]
    assert ok >= 8 and req["failed"] == 0 and req["estimated_token_requests"] == 0
    assert (summary["tokens"]["output"], summary["tokens"]["prompt"]) == (12 * ok, 20 * ok)
    assert summary["tokens"]["usage_vs_events"]["differ"] == 0, "one word per chunk on the reference gateway"
    assert 40 <= metrics["ttfc_ms"]["p50"] < 40 + 25 and metrics["ttfc_ms"]["count"] == ok
    assert 40 <= metrics["ttft_ms"]["p50"] < 40 + 25
    assert metrics["itl_ms"]["p50"] == pytest.approx(5, abs=2.5), "deadlines are absolute: gaps centre on 5"
    assert metrics["itl_ms"]["count"] == 11 * ok
    assert metrics["tpot_ms"]["p50"] == pytest.approx(5, abs=3)
    assert metrics["e2e_ms"]["p50"] >= 40 + 11 * 5
    assert metrics["ttfb_ms"]["p50"] <= metrics["ttft_ms"]["p50"]
    assert summary["slo"]["passed"] is False
    assert _locust_counts(out) == {("chat-stream", CHAT): ok}, "one locust request event per request"
    conformance = summary["conformance"]
    assert conformance["sample"] == 0.02 and conformance["checked"] >= ok // 50
    assert (
        (out / "run.html").exists()
        and (out / "run.locust.html").exists()
        and (out / "run_stats.csv").exists()
    )
    assert CANARY not in _all_output(proc, out), "the key never appears in output or reports"
    assert main(["slo", str(out / "run.json"), "--slo", str(slo)]) == 1


@pytest.mark.parametrize(
    ("dialect", "stream", "kind"), [("anthropic", "on", "messages-stream"), ("openai", "off", "chat")]
)
def test_other_users_with_a_dataset(
    gateway: Any, tmp_path: Path, dialect: str, stream: str, kind: str
) -> None:
    """Prompts from a JSONL dataset (9 words each: 9 prompt tokens on the reference gateway)."""
    gw = gateway(ttft_ms=10, itl_ms=2, **UNLIMITED)
    dataset = tmp_path / "conversations.jsonl"
    dataset.write_text(
        '[{"role": "user", "content": "one two three four five six seven eight nine"}]\n'
        '{"messages": [{"role": "user", "content": "nine eight seven six five four three two one"}]}\n',
        encoding="utf-8",
    )
    out = tmp_path / "out"
    args = ["-u", "2", "-r", "2", "-t", "2s", "--dialect", dialect, "--stream", stream]
    args += ["--dataset", str(dataset), "--output-tokens", "6", "--ignore-eos", "on"]
    proc, summary = run_locust(gw.url, out, *args)
    assert proc.returncode == 0, _why(proc)
    assert summary is not None
    ok = summary["requests"]["ok"]
    assert ok > 0 and summary["requests"]["failed"] == 0
    assert (summary["tokens"]["output"], summary["tokens"]["prompt"]) == (6 * ok, 9 * ok)
    assert summary["run"]["dataset"] == "conversations.jsonl"
    assert summary["metrics"]["e2e_ms"]["count"] == ok
    streamed = stream == "on"
    assert (summary["metrics"]["ttft_ms"]["count"] == ok) is streamed
    path = "/v1/messages" if dialect == "anthropic" else CHAT
    assert _locust_counts(out)[(kind, path)] == ok


def test_rate_scenario_starts_requests_on_schedule(gateway: Any, tmp_path: Path) -> None:
    gw = gateway(ttft_ms=200, itl_ms=5, **UNLIMITED)
    proc, summary = run_locust(
        gw.url,
        tmp_path,
        "-u",
        "1",
        "-t",
        "2s",
        "--scenario",
        "rate",
        "--request-rate",
        "20",
        "--output-tokens",
        "4",
    )
    assert proc.returncode == 0, _why(proc)
    assert summary is not None
    rate = summary["rate"]
    assert rate["requested_per_s"] == 20 and rate["skipped"] == 0
    assert rate["started"] == rate["due"] == rate["lag_ms"]["count"]
    assert rate["achieved_per_s"] == pytest.approx(20, rel=0.25)
    assert summary["requests"]["total"] >= rate["started"] - 6, (
        "only requests in flight at the end are missing"
    )


def test_ramp_scenario_measures_each_step(gateway: Any, tmp_path: Path) -> None:
    gw = gateway(ttft_ms=20, itl_ms=2, **UNLIMITED)
    proc, summary = run_locust(
        gw.url,
        tmp_path,
        "--scenario",
        "ramp",
        "--ramp-start",
        "1",
        "--ramp-step",
        "3",
        "--ramp-max",
        "4",
        "--ramp-step-seconds",
        "1.5",
        "--output-tokens",
        "4",
    )
    assert proc.returncode == 0, _why(proc)
    assert summary is not None
    steps = summary["ramp"]["steps"]
    assert [s["users"] for s in steps] == [1, 4]
    assert all(s["requests"] > 0 and s["e2e_p50_ms"] is not None for s in steps)
    assert steps[1]["requests_per_s"] > steps[0]["requests_per_s"]
    assert {r["users"] for r in summary["timeseries"]} >= {1, 4}


# --- limits ------------------------------------------------------------------------------------

LIMITS_ARGS = ("--scenario", "limits", "--window-seconds", "0.5", "--limits-windows", "2")


def test_limits_pass_against_correct_enforcement_for_several_keys(gateway: Any, tmp_path: Path) -> None:
    keys = [KeySpec("load-key-a", rpm=20, tpm=4000), KeySpec("load-key-b", rpm=10, tpm=2000)]
    gw = gateway(keys=keys, window_seconds=0.5)
    env = {"KEY_A": "load-key-a", "KEY_B": "load-key-b"}
    proc, summary = run_locust(
        gw.url,
        tmp_path,
        *LIMITS_ARGS,
        "--limits-key",
        "a=KEY_A:20:4000",
        "--limits-key",
        "b=KEY_B:10:2000",
        key="load-key-a",
        env=env,
    )
    assert summary is not None, _why(proc)
    limits = summary["limits"]
    assert [p["probe"] for p in limits["probes"]] == ["a:rpm", "a:tpm", "b:rpm", "b:tpm"]
    assert limits["passed"], [p["failures"] for p in limits["probes"]]
    assert proc.returncode == 0, "429s are expected here: the verdict decides the exit code"
    for probe in limits["probes"]:
        assert probe["retry_after_present"] and probe["limit_headers_present"] and probe["wait_worked"]
        assert probe["first_429_s"] is not None
    assert limits["probes"][2]["admitted_per_window"] == pytest.approx(10, abs=1)
    assert "LIMITS a:rpm: ok" in proc.stdout
    assert summary["requests"]["rate_limited"] > 0
    assert "Run time limit set to" in proc.stderr, "the limits scenario gets a run time of its own"
    assert all(p["sustain_windows"] for p in limits["probes"])


@pytest.mark.parametrize(
    ("fault", "failure"),
    [("ratelimit-never-429", "never answered 429"), ("ratelimit-over-admit", "over-admits")],
)
def test_limits_fail_against_a_faulty_gateway(gateway: Any, tmp_path: Path, fault: str, failure: str) -> None:
    gw = gateway(faults={fault}, rpm=10, tpm=2000, window_seconds=0.5)
    proc, summary = run_locust(
        gw.url, tmp_path, *LIMITS_ARGS, "--rpm", "10", "--tpm", "2000", "--limits-probes", "rpm"
    )
    assert summary is not None, _why(proc)
    assert proc.returncode == 1
    rpm_probe = summary["limits"]["probes"][0]
    assert not rpm_probe["passed"]
    assert any(f.startswith(failure) for f in rpm_probe["failures"])
    assert rpm_probe["ratio"] >= 1.5
    assert [p["probe"] for p in summary["limits"]["probes"]] == ["main:rpm"]
    assert f"LIMITS main:rpm: FAIL, {failure}" in proc.stdout


# --- distributed -------------------------------------------------------------------------------


def test_master_and_two_workers_merge_to_what_the_gateway_served(
    counting_proxy: CountingProxy, tmp_path: Path
) -> None:
    url = counting_proxy.url
    proc, summary = run_locust(
        url,
        tmp_path,
        "--processes",
        "2",
        "-u",
        "6",
        "-r",
        "6",
        "-t",
        "2s",
        "--stop-timeout",
        "5",
        "--output-tokens",
        "8",
    )
    assert proc.returncode == 0, _why(proc)
    assert summary is not None
    assert summary["run"]["workers"] == 2
    served = counting_proxy.count
    assert served > 0
    assert summary["requests"]["total"] == served
    assert summary["metrics"]["e2e_ms"]["count"] == summary["requests"]["ok"] == served
    assert summary["metrics"]["itl_ms"]["count"] == 7 * served
    assert _locust_counts(tmp_path)[("chat-stream", CHAT)] == served


# --- the gatecheck command ---------------------------------------------------------------------


def test_gatecheck_load_against_the_embedded_gateway(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "load",
            "-u",
            "2",
            "-t",
            "1s",
            "--output-tokens",
            "5",
            "--report-dir",
            str(tmp_path),
            "--run-name",
            "cli",
            "--plots",
            "off",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "embedded reference gateway" in out
    assert "TTFT (ms)" in out and "requests " in out
    summary = read_summary(tmp_path / "cli.json")
    assert summary["requests"]["ok"] > 0
    assert summary["metrics"]["itl_ms"]["mean"] >= 0, "stamps never go back (no negative gap)"
    assert (tmp_path / "cli_stats.csv").exists() and (tmp_path / "cli.locust.html").exists()


def test_run_load_for_the_demo(gateway: Any, tmp_path: Path) -> None:
    gw = gateway(**UNLIMITED)
    code, path = run_load(
        gw.url,
        DEMO_KEY,
        users=2,
        duration_s=1,
        report_dir=tmp_path,
        extra_args=["--output-tokens", "4", "--plots", "off"],
    )
    assert code == 0
    assert read_summary(path)["requests"]["ok"] > 0


def test_bad_option_ends_the_run_with_one_line(tmp_path: Path) -> None:
    proc, summary = run_locust("http://127.0.0.1:9", tmp_path, "--scenario", "spike", "-t", "1s")
    assert proc.returncode == 2
    assert summary is None
    assert "invalid choice" in proc.stderr or "--scenario" in proc.stderr
    proc, _ = run_locust("http://127.0.0.1:9", tmp_path, "--output-tokens", "lots", "-t", "1s")
    assert proc.returncode == 2
    assert "gatecheck: invalid configuration: --output-tokens" in proc.stderr


# --- conformance under load --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "rule"),
    [(None, None), ("chunk-id-changes", "id-changed"), ("sse-missing-done", "missing-done")],
)
def test_conformance_rules_run_on_the_streams_under_load(
    gateway: Any, tmp_path: Path, fault: str | None, rule: str | None
) -> None:
    """Gateways break under load (lost [DONE], changing ids): every checked stream is judged."""
    gw = gateway(faults={fault} if fault else set(), ttft_ms=5, itl_ms=1, **UNLIMITED)
    slo = tmp_path / "slo.toml"
    slo.write_text("violation_rate = 0\n", encoding="utf-8")
    out = tmp_path / "out"
    args = ["-u", "2", "-r", "2", "-t", "1s", "--output-tokens", "6", "--conformance-sample", "1"]
    proc, summary = run_locust(gw.url, out, *args, "--slo", str(slo))
    assert summary is not None, _why(proc)
    section = summary["conformance"]
    assert section["checked"] == summary["requests"]["total"] > 0, "every stream was checked"
    if rule is None:
        assert section["violation_rate"] == 0 and section["rules"] == [] and proc.returncode == 0
        return
    assert section["violation_rate"] == 1.0 and proc.returncode == 1
    found = {r["rule"]: r for r in section["rules"]}
    assert found[rule]["streams"] == section["checked"]
    assert found[rule]["excerpt"].startswith("data: "), "one wire excerpt per rule"
    assert "SLO violation_rate: FAIL, measured 1" in proc.stdout
