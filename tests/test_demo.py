"""The README's main command: ``gatecheck demo`` checks and loads the embedded gateway, writes reports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from gatecheck.schemas import default_store


def test_demo_checks_and_loads_the_embedded_gateway(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    command = [
        sys.executable,
        "-m",
        "gatecheck.cli",
        "demo",
        "--report-dir",
        str(reports),
        "--load-seconds",
        "3",
    ]
    run = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    results = json.loads((reports / "conformance" / "results.json").read_text(encoding="utf-8"))
    verdicts = {r["verdict"] for r in results["results"]}
    assert verdicts == {"PASS"}, verdicts
    assert sum(r["area"] == "upstream" for r in results["results"]) >= 10  # the harness behind a proxy
    assert (reports / "conformance" / "matrix.html").is_file()
    assert (reports / "conformance" / "junit.xml").is_file()

    (summary_path,) = (
        p for p in (reports / "load").glob("load-*.json") if not p.name.endswith(".locust.json")
    )
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    assert default_store().is_valid("gatecheck.load-summary", summary)
    ttft = summary["metrics"]["ttft_ms"]
    assert ttft["count"] > 0 and 50 <= ttft["p50"] < 150, ttft  # the demo injects TTFT 50 ms

    for path in (reports / "conformance" / "matrix.html", summary_path, summary_path.with_suffix(".html")):
        assert str(path) in run.stdout, f"{path} not announced"
