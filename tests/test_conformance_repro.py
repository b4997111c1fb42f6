"""What a conformance run leaves for a person and for CI: runnable repros, JUnit per target, WARNs shown.

A body too large to inline is saved next to the reports and the curl command reads it; the
invalid-key repro names the wrong key it sent; JUnit suites and classnames carry the target's name
and a WARN is visible there; a report directory that cannot be written stops the run before it
starts.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from gatecheck.checks.errors import INVALID_KEY
from gatecheck.cli import main
from gatecheck.reference import DEMO_KEY
from gatecheck.report.junit import WARNING_PROPERTY, annotate_junit
from gatecheck.results import CheckResult

if TYPE_CHECKING:
    from conftest import GatewayFactory

SUITE = Path(__file__).resolve().parent.parent / "conformance"
UNLIMITED = {"rpm": 1_000_000_000, "tpm": 1_000_000_000_000}
"""The over-long prompt must meet the context check, not the gateway's token limit."""


@pytest.fixture(autouse=True)
def demo_key_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """The user's GATECHECK_* variables must not leak in; the key is the reference gateway's."""
    for name in [n for n in os.environ if n.startswith("GATECHECK_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("GATECHECK_API_KEY", DEMO_KEY)


def results_of(report_dir: Path) -> dict[str, dict[str, object]]:
    document = json.loads((report_dir / "results.json").read_text())
    return {r["check_id"]: r for r in document["results"]}


def curl_of(message: str) -> str:
    """The reproducing command of a message (its note line included), as the shell reads it."""
    return message.split("Reproduce with:\n", 1)[1].replace("\n    ", "\n").strip()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed: cannot run the repro")
def test_a_huge_body_is_saved_next_to_the_report_and_the_repro_runs(
    gateway: GatewayFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = gateway(faults={"context-length-unchecked"}, **UNLIMITED)
    reports = tmp_path / "reports"
    code = main(
        [
            "conform",
            "--base-url",
            broken.url,
            "--checks",
            "errors_context_length",
            "--report-dir",
            str(reports),
        ]
    )
    capsys.readouterr()
    assert code == 1
    results = results_of(reports)
    command = curl_of(str(results["errors_context_length"]["message"]))
    (name,) = re.findall(r"--data-binary @(request-body-[0-9a-f]{16}\.json)", command)
    assert "# the request body (" in command and name in command.splitlines()[0]
    saved = json.loads((reports / name).read_bytes())
    assert saved["messages"][0]["content"].count("x") > 1_000_000  # the over-long prompt itself
    junit = (reports / "junit.xml").read_text()
    assert name in junit
    # Run it as printed, from the report directory: the gateway answers it as it answered the check.
    done = subprocess.run(
        ["bash", "-c", command + " -s -o /dev/null -w '%{http_code}'"],
        cwd=reports,
        env={"GATECHECK_API_KEY": DEMO_KEY, "PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.stdout == "200", done.stderr


def test_the_invalid_key_repro_shows_the_wrong_key_it_sent(
    gateway: GatewayFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = gateway(faults={"auth-accept-any-key"})
    code = main(
        ["conform", "--base-url", broken.url, "--checks", "errors_invalid_key", "--report-dir", str(tmp_path)]
    )
    capsys.readouterr()
    assert code == 1
    command = curl_of(str(results_of(tmp_path)["errors_invalid_key"]["message"]))
    assert f"-H 'Authorization: Bearer {INVALID_KEY}'" in command
    assert "$" not in command  # no variable left to set: the command runs as printed
    done = subprocess.run(
        ["bash", "-c", command + " -s -o /dev/null -w '%{http_code}'"],
        env={"PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.stdout == "200"  # the fault: any key is accepted, as the check found


def test_junit_names_each_target_and_shows_its_warnings(
    gateway: GatewayFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    urls = {"alpha": gateway(itl_ms=5).url, "beta": gateway(itl_ms=5, faults={"stream-burst"}).url}
    args = ["conform"]
    for name, url in urls.items():
        (tmp_path / f"{name}.toml").write_text(f'name = "{name}"\nbase_url = "{url}"\n')
        args += ["--target", str(tmp_path / f"{name}.toml")]
    reports = tmp_path / "reports"
    code = main(
        [*args, "--checks", "stream_really_streams,aux_models_list", "--report-dir", str(reports), "-q"]
    )
    capsys.readouterr()
    assert code == 0  # a WARN is no failure
    for name in urls:
        root = ET.parse(reports / f"junit-{name}.xml").getroot()
        assert {s.get("name") for s in root.iter("testsuite")} == {f"gatecheck.{name}"}
        cases = {c.get("name"): c for c in root.iter("testcase")}
        assert set(cases) == {"stream_really_streams", "aux_models_list"}
        assert cases["aux_models_list"].get("classname") == f"gatecheck.{name}.aux"
        streams = cases["stream_really_streams"]
        assert streams.get("classname") == f"gatecheck.{name}.stream"
        warnings = [p.get("value") for p in streams.iter("property") if p.get("name") == WARNING_PROPERTY]
        out = streams.find("system-out")
        if name == "alpha":
            assert warnings == [] and out is None
        else:
            assert warnings and warnings[0].startswith("WARN: ")
            assert out is not None and out.text is not None
            assert out.text.startswith("gatecheck WARN: stream_really_streams (beta)\nWARN: ")


def test_annotating_junit_keeps_pytest_output_and_scrubs_keys(tmp_path: Path) -> None:
    key = "canary-junit-0123456789abcdef"
    path = tmp_path / "junit.xml"
    path.write_text(
        '<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests">'
        '<testsuite name="pytest" tests="2"><testcase classname="test_stream" name="stream_done_last">'
        f'<failure message="FAIL: key {key}">FAIL: echoed {key.replace("-", "&#45;")}</failure></testcase>'
        '<testcase classname="test_stream" name="stream_really_streams"><system-out>captured</system-out>'
        "</testcase></testsuite></testsuites>"
    )
    results = [
        CheckResult("stream_done_last", "stream", "FAIL", "gw", message="FAIL: ..."),
        CheckResult("stream_really_streams", "stream", "WARN", "gw", message="WARN: one burst\n  Rule: x"),
        CheckResult("stream_really_streams", "stream", "PASS", "other"),
    ]
    annotate_junit(path, "gw", results, [key])
    text = path.read_text()
    assert key not in text and "canary-junit" not in text
    root = ET.parse(path).getroot()
    assert root.get("name") == "gatecheck.gw"
    warned = next(c for c in root.iter("testcase") if c.get("name") == "stream_really_streams")
    assert [child.tag for child in warned] == ["properties", "system-out"]
    assert (
        warned.findtext("system-out")
        == "gatecheck WARN: stream_really_streams (gw)\nWARN: one burst\n  Rule: x\ncaptured"
    )
    assert [(p.get("name"), p.get("value")) for p in warned.iter("property")] == [
        (WARNING_PROPERTY, "WARN: one burst")
    ]


def test_an_unwritable_report_dir_is_a_configuration_error_before_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    started = time.monotonic()
    code = main(["conform", "--checks", "aux_models_list", "--report-dir", str(blocker / "reports")])
    elapsed = time.monotonic() - started
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err.count("\n") == 1 and "--report-dir" in captured.err and str(blocker) in captured.err
    assert "Traceback" not in captured.err and "PASS" not in captured.out
    assert elapsed < 5, elapsed


def test_pytest_refuses_an_unwritable_report_dir_before_collecting(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATECHECK_")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(SUITE),
            "-p",
            "no:cacheprovider",
            "--report-dir",
            str(blocker / "r"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == pytest.ExitCode.USAGE_ERROR, done.stdout + done.stderr
    assert "gatecheck: invalid configuration: --report-dir" in done.stderr
    assert "Traceback" not in done.stderr
