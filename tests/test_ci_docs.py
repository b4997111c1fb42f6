"""docs/ci.md's pipelines are real: they parse, and every gatecheck command in them parses too.

The GitHub Actions workflow and the GitLab CI file in docs/ci/ are parsed as YAML (PyYAML, YAML
1.1 as both CI systems read it), every ``gatecheck ...`` command in their ``run``/``script``
entries is parsed by gatecheck's own argument parser (``gatecheck.cli.build_parser``: an unknown
option or a bad value fails here), and the example files they read (target, expected failures,
SLO objectives) load with gatecheck's own loaders. docs/ci.md shows each file verbatim.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gatecheck.cli import COMMANDS, build_parser
from gatecheck.config import load_target
from gatecheck.expected import load_expected
from gatecheck.load.slo import load_slo

CI = Path(__file__).resolve().parents[1] / "docs" / "ci"
PIPELINES = ("github-workflow.yml", "gitlab-ci.yml")
SHELL_KEYS = ("run", "script", "before_script", "after_script")


def load(name: str) -> dict[Any, Any]:
    document = yaml.safe_load((CI / name).read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def shell_entries(node: object) -> Iterator[str]:
    """Every shell text under a ``run``/``script``-like key, anywhere in the document."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in SHELL_KEYS:
                yield from [value] if isinstance(value, str) else [str(v) for v in value]
            else:
                yield from shell_entries(value)
    elif isinstance(node, list):
        for item in node:
            yield from shell_entries(item)


def gatecheck_commands(name: str) -> list[list[str]]:
    """The ``gatecheck`` command lines of a pipeline, split as a shell would."""
    found = []
    for text in shell_entries(load(name)):
        joined = text.replace("\\\n", " ")
        for line in joined.splitlines():
            for part in line.replace("&&", ";").replace("||", ";").split(";"):
                words = shlex.split(part, comments=True)
                if words and words[0] == "gatecheck":
                    found.append(words)
    return found


def test_the_github_workflow_has_the_jobs_docs_ci_describes() -> None:
    workflow = load("github-workflow.yml")
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert {"push", "pull_request", "schedule"} <= set(triggers)
    jobs = workflow["jobs"]
    assert set(jobs) == {"conformance", "load-nightly"}
    for job in jobs.values():
        assert job["runs-on"] and job["timeout-minutes"] and job["steps"]
    uploaded = next(s for s in jobs["conformance"]["steps"] if "upload-artifact" in s.get("uses", ""))
    assert "junit.xml" in uploaded["with"]["path"] and "matrix.html" in uploaded["with"]["path"]
    secret = jobs["conformance"]["steps"][3]["env"]["GATECHECK_API_KEY"]
    assert secret == "${{ secrets.GATECHECK_API_KEY }}"


def test_the_gitlab_file_has_the_jobs_docs_ci_describes() -> None:
    pipeline = load("gitlab-ci.yml")
    assert pipeline["conformance"]["artifacts"]["reports"]["junit"] == "reports/conformance/junit.xml"
    assert "reports/conformance/matrix.html" in pipeline["conformance"]["artifacts"]["paths"]
    assert pipeline["load-nightly"]["rules"] == [{"if": '$CI_PIPELINE_SOURCE == "schedule"'}]
    assert set(pipeline["stages"]) == {pipeline[job]["stage"] for job in ("conformance", "load-nightly")}


@pytest.mark.parametrize("name", PIPELINES)
def test_every_gatecheck_command_exists_and_its_options_are_real(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    commands = gatecheck_commands(name)
    assert {words[1] for words in commands} == {"conform", "load"}, commands
    for words in commands:
        argv = words[1:]
        assert argv[0] in COMMANDS
        try:
            build_parser(argv).parse_args(argv)
        except SystemExit:
            pytest.fail(f"{name}: {shlex.join(words)}\n{capsys.readouterr().err}")


@pytest.mark.parametrize("name", PIPELINES)
def test_the_conformance_job_uses_the_expected_failures_and_keeps_the_reports(name: str) -> None:
    conform = next(w for w in gatecheck_commands(name) if w[1] == "conform")
    args = build_parser(conform[1:]).parse_args(conform[1:])
    assert args.targets == ["gatecheck.toml"] and str(args.expected_failures) == "expected-failures.toml"
    assert str(args.report_dir) == "reports/conformance" and args.record is not None
    load_run = next(w for w in gatecheck_commands(name) if w[1] == "load")
    options = build_parser(load_run[1:]).parse_args(load_run[1:])
    assert (options.slo, options.baseline) == ("slo.toml", "baseline/load-nightly.json")


def test_the_files_the_pipelines_read_load_with_gatecheck_itself() -> None:
    target = load_target(CI / "gatecheck.toml", env={})
    assert target.base_url is not None and target.api_key is None, "the key comes from the CI secret"
    entries = load_expected(CI / "expected-failures.toml").entries
    assert entries and all(e.reason for e in entries)
    assert load_slo(CI / "slo.toml").objectives


def test_docs_ci_md_shows_every_file_as_it_is() -> None:
    page = (CI.parent / "ci.md").read_text(encoding="utf-8")
    for name in (*PIPELINES, "gatecheck.toml", "expected-failures.toml", "slo.toml"):
        assert (CI / name).read_text(encoding="utf-8") in page, (
            f"docs/ci.md does not show docs/ci/{name} as it is"
        )


@pytest.mark.parametrize(
    "argv",
    [["conform", "--expected-failure", "x"], ["load", "--baselin", "x"], ["conform", "--no-such-option"]],
)
def test_an_option_misspelt_or_abbreviated_is_refused(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """What makes the check above strict: argparse would otherwise accept a prefix of an option."""
    with pytest.raises(SystemExit):
        build_parser(argv).parse_args(argv)
    assert "unrecognized arguments" in capsys.readouterr().err
