"""Known deviations (``--expected-failures``): listed, unlisted, stale, expired, rule-level, per target.

The rules are pinned on hand-made results first (``ExpectedFailures.apply``), then end to end with
``gatecheck conform`` (in-process) and ``pytest conformance`` against a reference gateway with two
faults: ``balance-arithmetic`` fails ``aux_balance``, ``error-unknown-model-400`` fails
``errors_unknown_model`` (rule ``unknown-model-status``); ``aux_models_list`` passes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from gatecheck.cli import main
from gatecheck.errors import ConfigError
from gatecheck.expected import PLACEHOLDER_REASON, Entry, ExpectedFailures, load_expected, write_expected
from gatecheck.reference import DEMO_KEY
from gatecheck.results import CheckResult
from gatecheck.schemas import default_store

if TYPE_CHECKING:
    from conftest import GatewayFactory, RunningGateway

TODAY = date(2026, 6, 1)
FILE = Path("known.toml")
CHECKS = ["--checks", "aux_balance,errors_unknown_model,aux_models_list"]


def failed(check_id: str, *rules: str, target: str = "gw") -> CheckResult:
    findings = "\n\n".join(f"FAIL: {rule} broke\n  Rule: {rule} (documented)" for rule in rules)
    return CheckResult(
        check_id, "errors", "FAIL", target, message=findings, extra={"failing_rules": list(rules)}
    )


def judged(result: CheckResult, *entries: Entry) -> CheckResult:
    return ExpectedFailures(FILE, entries).apply(result, TODAY)


# ---------------------------------------------------------------- the rules, on hand-made results


def test_a_listed_check_that_fails_is_a_known_deviation() -> None:
    result = judged(
        failed("errors_unknown_model", "unknown-model-status"), Entry("errors_unknown_model", "ok")
    )
    assert result.verdict == "XFAIL"
    assert result.message.startswith(
        "XFAIL: known deviation, accepted in known.toml: errors_unknown_model: ok\n"
    )
    assert "FAIL: unknown-model-status broke" in result.message, "the evidence stays"
    assert result.extra["expected_failure"]["status"] == "known"
    assert result.extra["expected_failure"]["verdict"] == "FAIL"


def test_an_unlisted_failure_still_fails() -> None:
    result = judged(failed("aux_balance", "balance-arithmetic"), Entry("errors_unknown_model", "ok"))
    assert result == failed("aux_balance", "balance-arithmetic")


def test_a_listed_check_that_passes_fails_as_a_stale_entry() -> None:
    passed = CheckResult("aux_models_list", "aux", "PASS", "gw")
    result = judged(passed, Entry("aux_models_list", "was broken in May"))
    assert result.verdict == "FAIL"
    assert result.message.startswith("FAIL: stale entry in known.toml: remove it\n")
    assert "the check passes now" in result.message
    warned = CheckResult("aux_models_list", "aux", "WARN", "gw", message="WARN: something")
    assert judged(warned, Entry("aux_models_list", "x")).verdict == "FAIL"


def test_a_skipped_check_neither_confirms_nor_stales_its_entry() -> None:
    skipped = CheckResult("aux_balance", "aux", "SKIP", "gw", message="not checked: no budget")
    assert judged(skipped, Entry("aux_balance", "x")) == skipped


def test_an_expired_entry_accepts_nothing() -> None:
    entry = Entry("errors_unknown_model", "until the fix", expires=date(2026, 5, 31))
    result = judged(failed("errors_unknown_model", "unknown-model-status"), entry)
    assert result.verdict == "FAIL"
    assert "FAIL: expired entry in known.toml" in result.message and "Expired: 2026-05-31" in result.message
    assert result.extra["expected_failure"]["status"] == "expired"
    still_valid = Entry("errors_unknown_model", "until the fix", expires=TODAY)
    assert judged(failed("errors_unknown_model", "unknown-model-status"), still_valid).verdict == "XFAIL"


def test_rule_entries_accept_only_their_rules() -> None:
    two = failed("errors_unknown_model", "unknown-model-status", "client-error-5xx")
    one_listed = Entry("errors_unknown_model", "400 is fine", rule="unknown-model-status")
    assert judged(two, one_listed).verdict == "FAIL", "client-error-5xx is nobody's accepted deviation"
    both = Entry("errors_unknown_model", "being fixed", rule="client-error-5xx")
    assert judged(two, one_listed, both).verdict == "XFAIL"


def test_a_rule_entry_whose_rule_no_longer_fails_is_stale() -> None:
    result = judged(
        failed("errors_unknown_model", "unknown-model-status"),
        Entry("errors_unknown_model", "400 is fine", rule="unknown-model-status"),
        Entry("errors_unknown_model", "the 500 is known", rule="client-error-5xx"),
    )
    assert result.verdict == "FAIL"
    assert "stale entry" in result.message
    assert "no longer fails rule client-error-5xx (it fails: unknown-model-status)" in result.message


def test_entries_naming_a_target_apply_to_that_target_only() -> None:
    expected = ExpectedFailures(FILE, (Entry("aux_balance", "alpha only", target="alpha"),))
    assert (
        expected.for_target("alpha").apply(failed("aux_balance", "x", target="alpha"), TODAY).verdict
        == "XFAIL"
    )
    assert (
        expected.for_target("beta").apply(failed("aux_balance", "x", target="beta"), TODAY).verdict == "FAIL"
    )
    assert expected.other_targets(["beta"]) == ["alpha"]


# ---------------------------------------------------------------- the file


def write(tmp_path: Path, text: str, name: str = "known.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_valid_file_loads_with_dates_as_toml_dates_or_strings(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'version = 1\n[[deviation]]\ncheck = "aux_balance"\nreason = "budget math"\nexpires = 2026-09-30\n'
        '[[deviation]]\ncheck = "errors_unknown_model"\nrule = "unknown-model-status"\ntarget = "litellm"\n'
        'reason = "400"\nexpires = "2026-10-01"\n',
    )
    entries = load_expected(path).entries
    assert entries == (
        Entry("aux_balance", "budget math", expires=date(2026, 9, 30)),
        Entry("errors_unknown_model", "400", "unknown-model-status", "litellm", date(2026, 10, 1)),
    )


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ('[[deviation]]\ncheck = "aux_balanse"\nreason = "x"\n', "did you mean 'aux_balance'?"),
        (
            '[[deviation]]\ncheck = "aux_balance"\nrule = "no-such-rule"\nreason = "x"\n',
            "rule in deviation 1",
        ),
        (
            '[[deviation]]\ncheck = "errors_unknown_model"\nrule = "error-body"\nreason = "x"\n',
            "a rule errors_unknown_model reports: unknown-model-status, client-error-5xx",
        ),
        ('[[deviation]]\ncheck = "aux_balance"\n', "why the deviation is accepted (required)"),
        (f'[[deviation]]\ncheck = "aux_balance"\nreason = "{PLACEHOLDER_REASON}"\n', "written by a person"),
        ('[[deviation]]\ncheck = "aux_balance"\nreason = "x"\nexpires = "soon"\n', "a date"),
        (
            '[[deviation]]\ncheck = "aux_balance"\nreason = "x"\nexpires = 2026-01-01T00:00:00\n',
            "not a date and",
        ),
        ('[[deviation]]\ncheck = "aux_balance"\nreason = "x"\nreasn = "y"\n', "did you mean 'reason'?"),
        ('[[deviation]]\ncheck = "aux_balance"\nreason = "x"\n' * 2, "each check, rule and target once"),
        ("version = 2\n", "version"),
        ("deviation = 3\n", "an array of tables"),
        ("[[deviation]\n", "valid TOML"),
    ],
)
def test_a_mistake_in_the_file_is_a_config_error(tmp_path: Path, body: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_expected(write(tmp_path, body))
    assert says in str(caught.value)


def test_written_failures_are_a_starting_point_that_must_be_reviewed(tmp_path: Path) -> None:
    results = [
        failed("errors_unknown_model", "unknown-model-status"),
        judged(failed("aux_balance", "balance-arithmetic"), Entry("aux_balance", "kept as it was")),
        CheckResult("aux_models_list", "aux", "PASS", "gw"),
    ]
    out = tmp_path / "written.toml"
    assert write_expected(results, out, today=TODAY) == 2
    text = out.read_text(encoding="utf-8")
    assert "# unknown-model-status broke" in text and 'rule = "unknown-model-status"' in text
    assert "expires = 2026-08-30" in text and 'reason = "kept as it was"' in text
    with pytest.raises(ConfigError, match="placeholder of --write-expected-failures"):
        load_expected(out)
    out.write_text(
        text.replace(PLACEHOLDER_REASON, "accepted: 400 is our gateway's answer"), encoding="utf-8"
    )
    reviewed = load_expected(out)
    assert [r.verdict for r in (reviewed.apply(results[0], TODAY), reviewed.apply(results[1], TODAY))] == [
        "XFAIL",
        "FAIL",
    ], "the second result was already judged: its entry is in the file again, as it was"


# ---------------------------------------------------------------- end to end


@pytest.fixture
def faulty(gateway: GatewayFactory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> RunningGateway:
    for name in [n for n in os.environ if n.startswith("GATECHECK_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("GATECHECK_API_KEY", DEMO_KEY)
    monkeypatch.chdir(tmp_path)
    return gateway(faults={"balance-arithmetic", "error-unknown-model-400"})


def conform(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["conform", *CHECKS, "--no-preflight", *args])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_conform_listed_failures_pass_the_run_and_show_everywhere(
    faulty: RunningGateway, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    known = write(
        tmp_path,
        '[[deviation]]\ncheck = "aux_balance"\nreason = "budget math is upstream\'s"\n'
        '[[deviation]]\ncheck = "errors_unknown_model"\nrule = "unknown-model-status"\n'
        'reason = "400 accepted"\n',
    )
    reports = tmp_path / "reports"
    code, out = conform(
        capsys, "--base-url", faulty.url, "--expected-failures", str(known), "--report-dir", str(reports)
    )
    assert code == 0, out
    assert "  XFAIL  aux_balance" in out and "  XFAIL: aux_balance, errors_unknown_model" in out
    assert "── XFAIL errors_unknown_model: known deviation, accepted in" in out and "400 accepted" in out
    document = json.loads((reports / "results.json").read_text())
    assert default_store().is_valid("gatecheck.conformance-results", document)
    assert document["format_version"] == 2 and document["counts"]["XFAIL"] == 2
    assert document["targets"][0]["expected_failures"] == str(known)
    assert "XFAIL" in (reports / "matrix.html").read_text() and "XFAIL" in (reports / "matrix.md").read_text()
    cases = {c.get("name"): c for c in ET.parse(reports / "junit.xml").getroot().iter("testcase")}
    skipped = cases["aux_balance"].find("skipped")
    assert skipped is not None and skipped.get("type") == "pytest.xfail"
    assert "budget math" in (skipped.get("message") or "")
    properties = {p.get("name"): p.get("value") for p in cases["aux_balance"].iter("property")}
    assert properties["verdict"] == "XFAIL" and "budget math" in (properties["gatecheck.known"] or "")


def test_conform_an_unlisted_stale_or_expired_entry_fails_the_run(
    faulty: RunningGateway, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    known = write(
        tmp_path,
        '[[deviation]]\ncheck = "aux_balance"\nreason = "was known"\nexpires = 2000-01-01\n'
        '[[deviation]]\ncheck = "aux_models_list"\nreason = "was broken"\n',
    )
    reports = tmp_path / "reports"
    code, out = conform(
        capsys, "--base-url", faulty.url, "--expected-failures", str(known), "--report-dir", str(reports)
    )
    assert code == 1, out
    results = {r["check_id"]: r for r in json.loads((reports / "results.json").read_text())["results"]}
    assert {c: r["verdict"] for c, r in results.items()} == dict.fromkeys(results, "FAIL")
    assert "FAIL: expired entry" in results["aux_balance"]["message"]  # listed, but expired
    assert "FAIL: stale entry" in results["aux_models_list"]["message"]  # listed, passes now
    assert "entry" not in results["errors_unknown_model"]["message"]  # not listed
    assert "FAIL: stale entry in" in out and "remove it" in out


def test_conform_a_mistaken_file_is_exit_2_before_anything_is_sent(
    faulty: RunningGateway, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    known = write(tmp_path, '[[deviation]]\ncheck = "errors_unknown_modle"\nreason = "x"\n')
    code, out = conform(capsys, "--base-url", faulty.url, "--expected-failures", str(known))
    assert code == 2
    assert "did you mean 'errors_unknown_model'?" in out and "PASS" not in out


def test_conform_several_targets_each_get_their_entries(
    gateway: GatewayFactory, faulty: RunningGateway, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    faithful = gateway()
    write(
        tmp_path,
        f'name = "alpha"\nbase_url = "{faulty.url}"\nexpected_failures = "known.toml"\n',
        "alpha.toml",
    )
    write(tmp_path, f'name = "beta"\nbase_url = "{faithful.url}"\n', "beta.toml")
    write(
        tmp_path,
        '[[deviation]]\ncheck = "aux_balance"\ntarget = "alpha"\nreason = "alpha\'s budget"\n'
        '[[deviation]]\ncheck = "errors_unknown_model"\ntarget = "alpha"\nreason = "alpha\'s 400"\n',
    )
    targets = ["--target", str(tmp_path / "alpha.toml"), "--target", str(tmp_path / "beta.toml")]
    code, out = conform(capsys, *targets, "--report-dir", str(tmp_path / "r"))
    assert code == 0, out
    verdicts = {
        (r["target"], r["check_id"]): r["verdict"]
        for r in json.loads((tmp_path / "r/results.json").read_text())["results"]
    }
    assert verdicts[("alpha", "aux_balance")] == "XFAIL" and verdicts[("beta", "aux_balance")] == "PASS"
    # The same file given to both: an entry naming no target applies to each, and is stale where it passes.
    write(tmp_path, '[[deviation]]\ncheck = "aux_balance"\nreason = "everywhere"\n', "shared.toml")
    code, out = conform(capsys, *targets, "--expected-failures", str(tmp_path / "shared.toml"), "-q")
    assert code == 1
    lines = out.splitlines()
    alpha, beta = (
        next(i for i, line in enumerate(lines) if line.startswith(name)) for name in ("alpha", "beta")
    )
    assert lines[alpha + 1 : beta] == ["  FAIL: errors_unknown_model", "  XFAIL: aux_balance"], out
    assert lines[beta + 1] == "  FAIL: aux_balance", out  # listed for every target: stale where it passes


def test_conform_writes_todays_failures_as_a_starting_point(
    faulty: RunningGateway, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    written = tmp_path / "start.toml"
    code, out = conform(capsys, "--base-url", faulty.url, "--write-expected-failures", str(written), "-q")
    assert code == 1 and f"expected failures written: {written} (2 entries)" in out
    code, out = conform(capsys, "--base-url", faulty.url, "--expected-failures", str(written), "-q")
    assert code == 2 and "placeholder of --write-expected-failures" in out
    written.write_text(written.read_text().replace(PLACEHOLDER_REASON, "accepted by the platform team"))
    code, out = conform(capsys, "--base-url", faulty.url, "--expected-failures", str(written), "-q")
    assert code == 0, out


def test_pytest_conformance_shows_a_known_deviation_as_xfail(faulty: RunningGateway, tmp_path: Path) -> None:
    known = write(tmp_path, '[[deviation]]\ncheck = "aux_balance"\nreason = "budget math"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATECHECK_")}
    suite = Path(__file__).resolve().parents[1] / "conformance"
    args = ["--base-url", faulty.url, "--api-key", DEMO_KEY, "--checks", "aux_balance", "--no-preflight"]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(suite),
            "-p",
            "no:cacheprovider",
            *args,
            "--expected-failures",
            str(known),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (
        "1 xfailed" in done.stdout
        and f"gatecheck expected failures: {known} (1 entries apply)" in done.stdout
    )
