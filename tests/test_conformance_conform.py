"""``gatecheck conform``: progress, summary, reports, the plan, several targets, and exit codes.

The command runs the conformance suite with pytest in-process, as users run it; every test here
selects a few checks so the whole file stays quick.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from gatecheck.cli import main
from gatecheck.reference import DEMO_KEY
from gatecheck.schemas import default_store

if TYPE_CHECKING:
    from conftest import GatewayFactory

FEW = ["--checks", "aux_models_list,aux_balance,nonstream_usage"]


@pytest.fixture(autouse=True)
def no_gatecheck_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The user's GATECHECK_* variables must not leak into these runs."""
    for name in [n for n in os.environ if n.startswith("GATECHECK_")]:
        monkeypatch.delenv(name)


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
