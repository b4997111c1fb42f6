"""The load run as a process: signals, the web UI, option checks, distributed runs, resets.

Every run is short and bounded; locust runs in a subprocess (it monkey-patches with gevent), the
gateway in this process or behind the counting proxy of ``test_load_run``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from _counting_proxy import CountingProxy
from _hostile import Reply, scripted
from test_load_hostile import GOOD_STREAM, SSE, api
from test_load_run import LOCUSTFILE, UNLIMITED, _why, run_locust

from gatecheck.cli import main
from gatecheck.reference import DEMO_KEY

CANARY = "sk-canary-WEBUI-0123456789abcdef"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _processes_with(marker: str) -> list[psutil.Process]:
    """Live processes whose command line mentions ``marker`` (the test's unique run name)."""
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        cmdline = process.info["cmdline"] or []
        if any(marker in part for part in cmdline) and process.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(process)
    return found


def _wait_for(condition: Any, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[str]]]:
    """Processes a test starts; whatever is left of them is killed at teardown."""
    processes: list[subprocess.Popen[str]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


# --- signals: nothing stays behind ---------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGKILL])
def test_killing_gatecheck_load_leaves_no_locust_process(
    gateway: Any, tmp_path: Path, started: list[subprocess.Popen[str]], sig: signal.Signals
) -> None:
    """A CI timeout kills ``gatecheck load``: its locust master and workers must not load on."""
    gw = gateway(ttft_ms=5, itl_ms=2, **UNLIMITED)
    marker = f"killed-{sig.name}-{os.getpid()}"
    command = [sys.executable, "-m", "gatecheck.cli", "load", "--base-url", gw.url, "-u", "2", "-t", "60s"]
    command += ["--processes", "2", "--report-dir", str(tmp_path), "--run-name", marker, "--plots", "off"]
    env = {**os.environ, "GATECHECK_API_KEY": DEMO_KEY}
    process = subprocess.Popen(command, env=env, text=True, start_new_session=True, stdout=subprocess.PIPE)
    started.append(process)
    assert _wait_for(lambda: len(_processes_with(marker)) >= 4, 30), "gatecheck, locust master, 2 workers"
    time.sleep(1.0)
    process.send_signal(sig)
    code = process.wait(timeout=30)
    if sig != signal.SIGKILL:
        assert code == 128 + sig, process.stdout.read() if process.stdout else ""
    assert _wait_for(lambda: not _processes_with(marker), 20), [p.cmdline() for p in _processes_with(marker)]


# --- the web UI ----------------------------------------------------------------------------------------


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode("utf-8"))


def test_the_web_ui_has_an_llm_metrics_tab_and_never_the_key(
    gateway: Any, tmp_path: Path, started: list[subprocess.Popen[str]]
) -> None:
    """The key given with --api-key used to be in the page's source."""
    gw = gateway(keys=[CANARY], ttft_ms=5, itl_ms=2, **UNLIMITED)
    port = _free_port()
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--host", gw.url, "--api-key", CANARY]
    command += ["--web-host", "127.0.0.1", "--web-port", str(port), "--autostart", "-u", "2", "-r", "2"]
    command += ["--report-dir", str(tmp_path), "--run-name", "web", "--plots", "off"]
    process = subprocess.Popen(command, text=True, start_new_session=True, stderr=subprocess.DEVNULL)
    started.append(process)
    base = f"http://127.0.0.1:{port}"

    def metrics() -> dict[str, Any] | None:
        try:
            import json

            stats = json.loads(_get(f"{base}/stats/requests"))
        except OSError:
            return None
        rows = {r["metric"]: r for r in stats.get("extended_stats", [{}])[0].get("data", [])}
        return stats if rows.get("ttft_ms", {}).get("count") else None

    assert _wait_for(lambda: metrics() is not None, 30), "the tab's data fills as requests complete"
    stats = metrics()
    assert stats is not None
    rows = {r["metric"]: r for r in stats["extended_stats"][0]["data"]}
    assert set(rows) >= {"ttft_ms", "ttfc_ms", "itl_ms", "tpot_ms", "e2e_ms", "ttfb_ms"}
    assert rows["ttft_ms"]["p50"] >= 5
    page = _get(base + "/")
    assert "LLM metrics" in page and "gatecheck-llm" in page
    assert CANARY not in page, "the key is never sent to the web UI"
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)


# --- options checked before locust forks or spawns -----------------------------------------------------


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["-u", "0"], "-u/--users = 0"),
        (["-u", "lots"], "-u/--users = 'lots'"),
        (["-r", "-1"], "-r/--spawn-rate = -1"),
        (["--processes", "100000"], "--processes = 100000"),
        (["-t", "5x"], "--run-time = '5x'"),
        (["--scenario", "limits", "--window-seconds", "0"], "--window-seconds = '0'"),
    ],
)
def test_gatecheck_load_refuses_bad_run_options_in_one_line(
    args: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["load", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        len(err.splitlines()) == 1
        and named in err
        and err.startswith("gatecheck load: invalid configuration")
    )


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--processes", "999", "-t", "1s"], "--processes = 999"),
        (["-u", "-3", "-t", "1s"], "-u/--users = -3"),
        (["-u", "1", "--request-rate", "1e9", "-t", "1s"], "--request-rate"),
        (["-u", "1"], "-t/--run-time = '(not set)'"),
    ],
)
def test_locust_options_are_checked_before_anything_forks(
    tmp_path: Path, args: list[str], named: str
) -> None:
    """A huge --processes forked ~940 workers before; a headless run without -t ran forever."""
    started = time.monotonic()
    proc, summary = run_locust("http://127.0.0.1:9", tmp_path, *args)
    assert proc.returncode == 2 and summary is None, _why(proc)
    assert proc.stderr.strip().splitlines()[-1].startswith("gatecheck: invalid configuration: " + named)
    assert "Traceback" not in proc.stderr
    assert time.monotonic() - started < 20


# --- distributed runs: a free master port, the budget, --reset-stats -----------------------------------


def test_processes_get_a_free_master_port_and_options_after_dashes_reach_locust(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Runs on one host shared port 5557: 962 foreign workers attached to a master before."""
    run = ["load", "-u", "2", "-t", "2s", "--processes", "2", "--output-tokens", "4", "--plots", "off"]
    reports = ["--report-dir", str(tmp_path), "--run-name", "ports"]
    code = main([*run, *reports, "--", "--loglevel", "DEBUG", "--stop-timeout", "2"])
    _out, err = capfd.readouterr()
    assert code == 0, err[-3000:]
    ports = set(re.findall(r"Connected to locust master: 127\.0\.0\.1:(\d+)", err))
    assert len(ports) == 1 and ports != {"5557"}, ports
    assert "DEBUG" in err, "the options after -- reached locust"


def test_the_budget_holds_across_worker_processes(tmp_path: Path) -> None:
    with scripted(api(lambda _: Reply(200, SSE, GOOD_STREAM))) as server:
        proc, summary = run_locust(
            server.url,
            tmp_path,
            "--processes",
            "2",
            "-u",
            "6",
            "-r",
            "6",
            "-t",
            "30s",
            "--budget-requests",
            "31",
        )
        posts = [s for s in server.seen if s.method == "POST"]
    assert proc.returncode == 0, _why(proc)
    assert summary is not None
    assert len(posts) == 31 and summary["requests"]["total"] == 31
    assert summary["run"]["duration_s"] < 20 and "budget of 31" in summary["outcome"]["stop"]


def test_reset_stats_leaves_out_what_came_before_in_a_distributed_run(
    counting_proxy: CountingProxy, tmp_path: Path
) -> None:
    proc, summary = run_locust(
        counting_proxy.url,
        tmp_path,
        *("--processes", "2", "-u", "4", "-r", "2", "-t", "3s", "--reset-stats", "--stop-timeout", "5"),
        "--output-tokens",
        "4",
    )
    assert proc.returncode == 0, _why(proc)
    assert summary is not None
    excluded, total = summary["run"]["excluded_requests"], summary["requests"]["total"]
    assert excluded > 0 and total > 0
    assert excluded + total == counting_proxy.count, "every request sent is either counted or left out"


def test_warmup_requests_are_sent_but_not_counted(gateway: Any, tmp_path: Path) -> None:
    gw = gateway(ttft_ms=5, itl_ms=1, **UNLIMITED)
    proc, summary = run_locust(gw.url, tmp_path, "-u", "2", "-r", "2", "-t", "3s", "--warmup", "1")
    assert proc.returncode == 0, _why(proc)
    assert summary is not None
    assert summary["run"]["excluded_requests"] > 0 and summary["requests"]["total"] > 0
    assert summary["throughput"]["duration_s"] == pytest.approx(2, abs=0.5), "measured after the warm-up"
    assert any("warm-up" in w for w in summary["warnings"])


def test_gatecheck_load_honours_the_budget_and_caps_it_was_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`gatecheck load --budget-requests 50` sent 128 requests before."""
    monkeypatch.setenv("GATECHECK_API_KEY", DEMO_KEY)
    with scripted(api(lambda _: Reply(200, SSE, GOOD_STREAM))) as server:
        run = ["load", "--base-url", server.url, "-u", "4", "-t", "30s", "--budget-requests", "7"]
        caps = ["--max-output-tokens", "5", "--output-tokens", "5"]
        code = main([*run, *caps, "--report-dir", str(tmp_path), "--run-name", "budget", "--plots", "off"])
        posts = [s for s in server.seen if s.method == "POST"]
    out = capsys.readouterr().out
    assert code == 0
    assert len(posts) == 7 and {json.loads(p.body)["max_tokens"] for p in posts} == {5}
    assert "PASS: 7 of 7 requests succeeded" in out
