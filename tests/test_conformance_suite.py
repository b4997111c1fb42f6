"""The whole suite against the faithful reference gateway, through the core and through pytest.

Against the faithful gateway every check must PASS (no FAIL, no WARN, no SKIP: it claims every
capability), every check a fault is mapped to among them; and no check may send more than it
declared (the costs ``--plan`` adds up). The pytest plugin is exercised as users run it:
``pytest conformance`` in a subprocess, with JUnit names that are check ids and the reports.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from _replay import assert_replays_alike

from gatecheck.cassettes import Recorder
from gatecheck.checks import OBSERVATIONS, RunSettings, Session, run_checks, select
from gatecheck.checks.faultmap import FAULT_CHECKS
from gatecheck.checks.session import open_session, plan_settings
from gatecheck.config import Target
from gatecheck.profiles import load_profile
from gatecheck.reference import DEMO_KEY
from gatecheck.results import CheckResult
from gatecheck.schemas import default_store

if TYPE_CHECKING:
    from conftest import GatewayFactory

ROOT = Path(__file__).resolve().parent.parent
SUITE = ROOT / "conformance"
SETTINGS = RunSettings(fuzz_examples=3, fuzz_seed=7)


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("recording")


@pytest.fixture(scope="module")
def faithful(recording: Path) -> Iterator[tuple[Session, list[CheckResult]]]:
    """Every check against the faithful embedded gateway, once for the module, recorded."""
    recorder = Recorder(recording)
    settings = replace(SETTINGS, wire=recorder)
    with open_session(Target(), settings) as session:
        results = run_checks(session, select(profile=load_profile("gateway")))
        recorder.save(Target(), settings, [(r.check_id, r.verdict) for r in results])
        yield session, results


def test_the_recorded_run_replays_to_the_same_results(
    faithful: tuple[Session, list[CheckResult]], recording: Path
) -> None:
    """Every check, replayed offline from its cassette, gives its live verdict and message."""
    assert_replays_alike(recording, faithful[1])


def test_every_check_passes_against_the_faithful_gateway(faithful: tuple[Session, list[CheckResult]]) -> None:
    _, results = faithful
    assert len(results) == len(select(profile=load_profile("gateway")))
    not_passed = [f"{r.check_id}: {r.verdict}\n{r.message}" for r in results if r.verdict != "PASS"]
    assert not not_passed, "\n\n".join(not_passed)


def test_the_checks_that_catch_faults_pass_without_them(faithful: tuple[Session, list[CheckResult]]) -> None:
    _, results = faithful
    verdicts = {r.check_id: r.verdict for r in results}
    mapped = {check_id for checks in FAULT_CHECKS.values() for check_id in checks}
    assert {verdicts[c] for c in mapped} == {"PASS"}


def test_no_check_sends_more_than_it_declares(faithful: tuple[Session, list[CheckResult]]) -> None:
    session, results = faithful
    settings = plan_settings(Target(), SETTINGS.fuzz_examples)
    by_id = {c.id: c for c in select()}
    for result in results:
        declared = by_id[result.check_id].own_cost(settings).requests
        assert session.spent.get(result.check_id, 0) <= declared, result.check_id
    for account, sent in session.spent.items():
        if account.startswith("observation:"):
            name = account.removeprefix("observation:")
            assert sent <= OBSERVATIONS[name].cost_for(settings).requests, name


def run_pytest(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``pytest conformance ...`` in a subprocess, as a user runs it (bounded in time)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATECHECK_")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", str(SUITE), "-p", "no:cacheprovider", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def test_pytest_conformance_against_the_embedded_gateway(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    done = run_pytest(
        tmp_path, "-m", "not slow and not costly", "--fuzz-examples", "1", "--report-dir", str(reports)
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "gatecheck target: reference: embedded reference gateway" in done.stdout
    assert "gatecheck plan:" in done.stdout
    cases = ET.parse(reports / "junit.xml").getroot().iter("testcase")
    names = {case.get("name") for case in cases}
    expected = {c.id for c in select(profile=load_profile("gateway"))} - {
        "ratelimit_retry_after_honoured",
        "ratelimit_tpm_enforced",
    }
    assert names == expected
    document = json.loads((reports / "results.json").read_text())
    assert default_store().is_valid("gatecheck.conformance-results", document)
    assert (reports / "matrix.md").exists() and (reports / "matrix.html").exists()


def test_markers_select_an_area_and_a_capability_not_claimed_is_an_explained_skip(tmp_path: Path) -> None:
    done = run_pytest(tmp_path, "-q", "-m", "aux", "-rs", "--capabilities=-images,-search")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed, 6 skipped" in done.stdout  # four image checks, two search checks
    assert "the target declares it does not offer: images" in done.stdout


def test_a_rule_the_profile_does_not_state_is_deselected_and_said(tmp_path: Path) -> None:
    wanted = "errors_x_api_key_chat,nonstream_usage"
    done = run_pytest(tmp_path, "-q", "--profile", "openai", "--checks", wanted)
    assert "errors_x_api_key_chat does not apply under profile openai" in done.stdout
    assert re.search(r"\b1 passed, \d+ deselected\b", done.stdout), done.stdout


def test_a_run_over_the_budget_refuses_to_start(tmp_path: Path) -> None:
    done = run_pytest(tmp_path, "-q", "--budget-requests", "10")
    assert done.returncode == pytest.ExitCode.USAGE_ERROR
    assert "over the budget of 10 (--budget-requests)" in done.stderr
    assert "passed" not in done.stdout


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--fuzz-examples", "-1"), "an integer >= 0"),
        (("--profile", "strict"), "gateway, openai, lenient"),
        (("--checks", "no_such_check"), "unknown check ids"),
        (("--target", "a.toml", "--target", "b.toml"), "one target per pytest run"),
    ],
)
def test_a_bad_option_is_a_usage_error_naming_what_is_allowed(
    tmp_path: Path, args: tuple[str, ...], says: str
) -> None:
    done = run_pytest(tmp_path, "-q", "--collect-only", *args)
    assert done.returncode == pytest.ExitCode.USAGE_ERROR
    assert says in done.stderr


def test_the_report_header_shows_the_target_without_its_key(tmp_path: Path) -> None:
    canary = "canary-7e1f0c9d2b4a6e8f"
    done = run_pytest(tmp_path, "--collect-only", "--base-url", "http://127.0.0.1:9", "--api-key", canary)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "gatecheck target: 127.0.0.1: http://127.0.0.1:9" in done.stdout
    assert canary not in done.stdout + done.stderr


def test_a_warning_passes_the_item_and_is_shown_as_warned(tmp_path: Path, gateway: GatewayFactory) -> None:
    bursty = gateway(faults={"stream-burst"}, rpm=1000, tpm=10_000_000)
    args = (
        "--base-url",
        bursty.url,
        "--api-key",
        DEMO_KEY,
        "--checks",
        "stream_really_streams,stream_done_last",
    )
    done = run_pytest(tmp_path, *args)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"\b1 passed, \d+ deselected, 1 warned\b", done.stdout), done.stdout
    assert "WARN: the whole answer arrived in one burst" in done.stdout


@pytest.mark.parametrize(
    ("profile", "failing", "unseen"),
    [
        ("lenient", set(), set()),
        # The reference gateway sends the documented X-RateLimit-* headers, not OpenAI's dialect,
        # so in OpenAI's dialect no Remaining can be read, let alone compared.
        ("openai", {"ratelimit_headers"}, {"ratelimit_remaining_monotonic"}),
    ],
)
def test_the_profile_decides_the_verdicts(profile: str, failing: set[str], unseen: set[str]) -> None:
    with open_session(Target(profile=profile), RunSettings(fuzz_examples=0)) as session:
        results = run_checks(session, select(profile=session.profile))
    assert {r.check_id for r in results if r.verdict not in ("PASS", "SKIP")} == failing
    skipped = {r.check_id: r.message for r in results if r.verdict == "SKIP"}
    assert set(skipped) == unseen | {"fuzz_valid_requests", "fuzz_invalid_requests"}, skipped
    assert all(message.startswith("not checked: ") for message in skipped.values())
