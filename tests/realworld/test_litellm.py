"""LiteLLM's proxy, a gateway we did not write, through the whole conformance suite (issue 9, item 6).

Every check's verdict is compared with the table recorded in ``litellm_verdicts.toml``, so a change
that turns a verdict (a false alarm fixed, a check made stricter, another LiteLLM) is seen and the
table is updated on purpose. docs/real-gateways.md gives each verdict its wire evidence and says
which FAILs are LiteLLM's real deviations. The harness is in this folder's conftest.py.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from gatecheck.cassettes import replay
from gatecheck.schemas import default_store

if importlib.util.find_spec("litellm") is None:
    pytest.skip("LiteLLM is not installed: run tox -e realworld", allow_module_level=True)

TABLE = tomllib.loads((Path(__file__).parent / "litellm_verdicts.toml").read_text(encoding="utf-8"))


def test_litellm_is_the_recorded_version() -> None:
    assert importlib.metadata.version("litellm") == TABLE["litellm"], "tox.ini and the table disagree"


def test_the_suite_ran_to_the_end(conformance_run) -> None:
    results = conformance_run.results
    assert default_store().is_valid("gatecheck.conformance-results", results)
    failed = any(r["verdict"] == "FAIL" for r in results["results"])
    assert conformance_run.exit_code == (1 if failed else 0), conformance_run.output[-3000:]
    assert (conformance_run.report_dir / "junit.xml").is_file()


def test_every_verdict_is_the_recorded_one(conformance_run) -> None:
    now = {r["check_id"]: r for r in conformance_run.results["results"]}
    recorded = {check: _allowed(verdicts) for check, verdicts in TABLE["verdicts"].items()}
    changes = [
        f"{check}: recorded {' or '.join(recorded.get(check, ['absent']))}, now {_describe(now.get(check))}"
        for check in sorted(recorded.keys() | now.keys())
        if now.get(check, {}).get("verdict") not in recorded.get(check, [])
    ]
    header = "verdicts turned (update litellm_verdicts.toml and docs/real-gateways.md):"
    assert not changes, "\n".join([header, *changes])


def _allowed(recorded: str | list[str]) -> list[str]:
    """A recorded verdict, or the verdicts a timing-dependent check was seen to give."""
    return [recorded] if isinstance(recorded, str) else recorded


def _describe(result: dict[str, str] | None) -> str:
    """A result's verdict and the first line of its message, for the list of changes."""
    if result is None:
        return "absent"
    first = (result.get("message") or "").splitlines()[:1]
    return result["verdict"] + (f" ({first[0]})" if first else "")


def test_the_recording_replays_to_the_same_verdicts(conformance_run) -> None:
    """``gatecheck replay`` of this very run, offline, gives every check the verdict it had live."""
    done = replay(conformance_run.report_dir.parent / "recording" / "litellm")
    live = {r["check_id"]: r["verdict"] for r in conformance_run.results["results"]}
    assert {r.check_id: r.verdict for r in done.results} == live
    assert not done.replayer.misses and not done.replayer.unused() and not done.changed


def test_gateway_overhead_under_load_through_litellm(
    conformance_run, keys: dict[str, str], timings: dict[str, float]
) -> None:
    """``gatecheck load --upstream`` through LiteLLM (issue 12): every stream matched in the
    harness's log, the first token's overhead measured. After the suite: it never shares LiteLLM.
    The target file names the harness and LiteLLM's alias of it (``upstream``, ``upstream_model``)."""
    folder = conformance_run.report_dir.parent
    report_dir = folder / "load"
    shutil.rmtree(report_dir, ignore_errors=True)
    gatecheck = str(Path(sys.executable).parent / "gatecheck")
    command = [gatecheck, "load", "--target", str(folder / "litellm.toml")]
    command += ["-u", "4", "-t", "8s", "--budget-requests", "2000"]
    command += ["--report-dir", str(report_dir), "--run-name", "overhead", "--plots", "off"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATECHECK_")}
    env.update(GATECHECK_API_KEY=keys["main"], GATECHECK_API_KEY_2=keys["second"], NO_PROXY="127.0.0.1")
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180, check=False)
    output = run.stdout + run.stderr
    (folder / "load.log").write_text(output, encoding="utf-8")
    assert (report_dir / "overhead.json").is_file(), output[-3000:]
    summary = json.loads((report_dir / "overhead.json").read_text(encoding="utf-8"))
    upstream, overhead = summary["upstream"], summary["metrics"]["overhead_ms"]
    assert run.returncode == 0 and upstream["measured"], output[-3000:]
    assert upstream["matched"] == summary["requests"]["ok"] > 0 and upstream["negative"] == 0
    assert overhead["count"] == upstream["matched"] and 0 <= overhead["p50"] <= overhead["p99"]
    timings.update({f"overhead_{stat}_ms": overhead[stat] for stat in ("p50", "p90", "p99", "max")})
    timings["overhead_streams"] = float(upstream["matched"])


def test_no_key_in_any_report_or_log(conformance_run, harness, keys: dict[str, str]) -> None:
    written = [p for p in conformance_run.report_dir.parent.rglob("*") if p.is_file()]
    leaks = [(p.name, name) for p in written for name, key in keys.items() if key.encode() in p.read_bytes()]
    # gatecheck upstream prints its key on its second line, by design (the operator configures it)
    allowed = {(harness.log.name, "harness")}
    assert written and set(leaks) <= allowed, leaks
