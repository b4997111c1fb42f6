"""Recording a run and proving its replay gives the same results (shared by the suite's tests)."""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from gatecheck.cassettes import Recorder, replay
from gatecheck.checks import Check, RunSettings, run_checks
from gatecheck.checks.session import open_session
from gatecheck.config import Target
from gatecheck.results import CheckResult


def same(result: CheckResult) -> tuple[str, str, str, dict[str, Any]]:
    """What a replay must reproduce: verdict, message and extra (not the duration)."""
    return result.check_id, result.verdict, result.message, result.extra


def assert_replays_alike(directory: Path, live: Iterable[CheckResult]) -> None:
    """Replaying ``directory`` gives ``live``'s verdicts, messages and extras from all it recorded."""
    done = replay(directory)
    assert [same(r) for r in done.results] == [same(r) for r in live]
    assert not done.replayer.misses and not done.replayer.unused() and not done.changed


def run_recorded(
    target: Target,
    settings: RunSettings,
    checks: Iterable[Check],
    gateway_overrides: Mapping[str, Any] | None = None,
) -> list[CheckResult]:
    """Run ``checks`` live while recording, and prove the recording replays to the same results."""
    with tempfile.TemporaryDirectory() as folder:
        recorder = Recorder(Path(folder))
        recorded = dataclasses.replace(settings, wire=recorder)
        with open_session(target, recorded, gateway_overrides=gateway_overrides) as session:
            results = run_checks(session, list(checks))
        recorder.save(target, recorded, [(r.check_id, r.verdict) for r in results])
        assert_replays_alike(Path(folder), results)
    return results
