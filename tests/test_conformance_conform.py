"""``gatecheck conform``: progress, summary, reports, the plan, several targets, and exit codes.

The command runs the conformance suite with pytest in-process, as users run it; every test here
selects a few checks so the whole file stays quick.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from _hostile import Reply, Seen, elapsed, refused_url, scripted

import gatecheck
from gatecheck.checks import select
from gatecheck.cli import main
from gatecheck.commands.conform import findings_text
from gatecheck.reference import DEMO_KEY
from gatecheck.results import CheckResult
from gatecheck.schemas import default_store

if TYPE_CHECKING:
    from conftest import GatewayFactory

FEW = ["--checks", "aux_models_list,aux_balance,nonstream_usage"]


@pytest.fixture(autouse=True)
def no_gatecheck_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The user's GATECHECK_* variables must not leak into these runs; default reports go to tmp_path."""
    for name in [n for n in os.environ if n.startswith("GATECHECK_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_a_conformant_target_exits_0_with_progress_summary_and_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["conform", *FEW, "--report-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "  PASS  aux_balance" in out
    assert "reference      3      0      0      0" in out
    for name in ("results.json", "matrix.md", "matrix.html", "junit.xml"):
        assert (tmp_path / name).exists(), name
        assert f"{tmp_path / name}" in out or name == "junit.xml"


def test_two_targets_give_one_matrix_side_by_side(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("alpha", "beta"):
        (tmp_path / f"{name}.toml").write_text(f'name = "{name}"\n')
    args = ["conform", "--target", str(tmp_path / "alpha.toml"), "--target", str(tmp_path / "beta.toml")]
    code = main([*args, *FEW, "--report-dir", str(tmp_path / "reports"), "-q"])
    out = capsys.readouterr().out
    assert code == 0, out
    document = json.loads((tmp_path / "reports" / "results.json").read_text())
    assert default_store().is_valid("gatecheck.conformance-results", document)
    assert {r["target"] for r in document["results"]} == {"alpha", "beta"}
    assert "| alpha | beta |" in (tmp_path / "reports" / "matrix.md").read_text().replace("  ", " ")
    assert {p.name for p in (tmp_path / "reports").glob("junit-*.xml")} == {
        "junit-alpha.xml",
        "junit-beta.xml",
    }


def test_a_failing_target_exits_1(
    gateway: GatewayFactory, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = gateway(faults={"balance-arithmetic"})
    monkeypatch.setenv("GATECHECK_API_KEY", DEMO_KEY)
    code = main(["conform", "--base-url", broken.url, "--checks", "aux_balance,aux_models_list"])
    out = capsys.readouterr().out
    assert code == 1
    assert "  FAIL  aux_balance" in out and "FAIL: aux_balance" in out


def test_nothing_checked_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["conform", "--capabilities", "none", "-m", "aux"])
    captured = capsys.readouterr()
    assert code == 2
    assert "nothing was checked" in captured.err


def test_the_plan_prints_the_spend_and_sends_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["conform", "--plan", "--base-url", "http://127.0.0.1:9", "-m", "nonstream"])
    out = capsys.readouterr().out
    assert code == 0
    # nonstream_stop calibrates on the target: 3 requests (two answers without stop, one with);
    # reasoning_effort: 3 requests of 12 tokens; multimodal: 5 requests (a text part, four media) of 5
    assert "14 checks, at most 16 requests and 407 output tokens (budget 1000 requests" in out
    assert "about 3200 input tokens" in out
    assert "waits at least 0 s: 0 s of pacing at 60 rpm / 100000 tpm; 0 s of Retry-After windows" in out


def test_the_plan_estimates_the_waiting_at_the_declared_limits(capsys: pytest.CaptureFixture[str]) -> None:
    """About a hundred requests at 3 RPM: dozens of 63 s pacing windows, plus the Retry-After windows."""
    args = [
        "conform",
        "--plan",
        "--base-url",
        "http://127.0.0.1:9",
        "--rpm",
        "3",
        "--budget-requests",
        "5000",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "waits at least" in out and "of pacing at 3 rpm / 100000 tpm" in out
    waited = re.search(r"waits at least (?:(\d+) h )?(\d+) min", out)
    assert waited and int(waited[1] or 0) * 60 + int(waited[2]) >= 30, out


def test_a_run_over_the_budget_refuses_to_start(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["conform", "--plan", "--budget-requests", "3", "-m", "nonstream"]) == 2
    assert "would exceed --budget-requests 3" in capsys.readouterr().err
    assert main(["conform", "--budget-requests", "3", "-m", "nonstream"]) == 2
    captured = capsys.readouterr()
    assert "over the budget of 3" in captured.err
    assert "PASS" not in captured.out


def test_configuration_errors_exit_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["conform", "--profile", "strict"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "profile" in err


def test_list_names_every_check(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["conform", "--list"]) == 0
    out = capsys.readouterr().out
    assert "stream_done_last" in out and "[000 Streaming SSE Chunks (data: [DONE]); 004]" in out


def test_list_honours_the_selection(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["conform", "--list", "-m", "aux", "-k", "not images"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines() if not line.startswith(" ")]
    assert listed == [c.id for c in select() if c.area == "aux" and "images" not in c.id]
    assert "aux_models_list" in listed and not any("images" in check_id for check_id in listed)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"gatecheck {gatecheck.__version__}\n"


def test_every_fail_and_warn_is_printed_in_full_and_q_keeps_the_table(
    gateway: GatewayFactory, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = gateway(faults={"balance-arithmetic"})
    monkeypatch.setenv("GATECHECK_API_KEY", DEMO_KEY)
    args = ["conform", "--base-url", broken.url, "--checks", "aux_balance,aux_models_list"]
    assert main(args) == 1
    out = capsys.readouterr().out
    details = out[out.index("── FAIL aux_balance") :]
    for part in (
        "FAIL: daily_remaining",
        "Rule: balance-arithmetic",
        "Documented in:",
        "Expected:",
        "Received:",
    ):
        assert part in details, part
    assert "Reproduce with:\n    curl -X GET" in details and DEMO_KEY not in out
    assert f"json report: {Path('reports/conformance/results.json')}" in out  # written by default
    assert Path("reports/conformance/results.json").exists()
    assert main([*args, "-q"]) == 1
    quiet = capsys.readouterr().out
    assert "  FAIL: aux_balance" in quiet and "Reproduce with:" not in quiet and "PASS  aux" not in quiet


def test_one_root_cause_shared_by_several_checks_is_printed_once_failures_first() -> None:
    shared = "FAIL: the answer is an HTML page\n  Rule: x-status (documented)\n  Received: HTTP 502"
    warn = "WARN: the whole answer arrived in one burst\n  Rule: stream-burst (judgement)"
    results = [
        CheckResult("w", "stream", "WARN", "t", message=warn, extra={"findings": ["stream-burst:1"]}),
        CheckResult("a", "aux", "FAIL", "t", message=shared, extra={"findings": ["x-status:9"]}),
        CheckResult("b", "aux", "FAIL", "t", message=shared, extra={"findings": ["x-status:9"]}),
        CheckResult("s", "aux", "SKIP", "t", message="not checked: the target stopped answering after b"),
    ]
    text = findings_text(results, several=False)
    assert text.count("the answer is an HTML page") == 1
    assert text.index("── FAIL a, b  (2 checks, one root cause)") < text.index("── WARN w")
    assert text.endswith("SKIP s: not checked: the target stopped answering after b")


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("refused", "cannot reach http://127.0.0.1:{port}/v1/models: connection refused"),
        ("html", "does not answer like an API: HTTP 200 text/html"),
        ("401", "the key in $GATECHECK_API_KEY was rejected: 401"),
        ("no key", "no API key for https://gw.example.com: set $GATECHECK_API_KEY"),
    ],
)
def test_a_configuration_mistake_is_one_line_and_exit_2_within_seconds(
    case: str, expected: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def answer(seen: Seen) -> Reply:
        if case == "html":
            return Reply(200, {"content-type": "text/html"}, b"<html><body>Welcome</body></html>")
        return Reply(401, body=b'{"error":{"message":"invalid key"}}')

    with scripted(answer) as server:
        url = {"refused": refused_url(), "no key": "https://gw.example.com"}.get(case, server.url)
        if case == "401":
            monkeypatch.setenv("GATECHECK_API_KEY", "sk-CANARY-conform-1")
        code, seconds = elapsed(lambda: main(["conform", "--base-url", url, "-m", "aux"]))
        sent = len(server.seen)
    captured = capsys.readouterr()
    port = url.rsplit(":", 1)[-1]
    assert code == 2
    assert seconds < 12, seconds
    assert captured.err.count("\n") == 1 and expected.format(port=port) in captured.err
    assert "PASS" not in captured.out and "FAIL" not in captured.out
    assert sent <= 2 and "sk-CANARY-conform-1" not in captured.err


def test_pytest_runs_the_preflight_too(tmp_path: Path) -> None:
    from test_conformance_suite import run_pytest

    done = run_pytest(tmp_path, "--base-url", refused_url(), "-m", "aux")
    assert done.returncode == 4, done.stdout + done.stderr  # pytest's usage error
    assert "gatecheck: cannot reach" in done.stderr and "connection refused" in done.stderr
    assert "passed" not in done.stdout
