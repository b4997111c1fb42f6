"""Proof that the upstream area's checks can fail: every proxy fault is caught by its checks.

For each fault of ``PROXY_FAULT_CHECKS`` the embedded pair (the harness, and the reference gateway
proxying to it) is started with that fault in the gateway, and only the mapped checks are run
against it as against any real target with ``--upstream``: each must reach its mapped verdict, and
the run's recording must replay to the same verdicts and messages.
The faithful pair, checked the same way, passes every check of the area (the embedded run of the
whole suite in test_conformance_suite.py proves it once more).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path

import pytest
from _replay import run_recorded

from gatecheck.cassettes import Recorder, replay, stand_in
from gatecheck.checks import CHECKS, RunSettings, load_all, run_checks, select
from gatecheck.checks.faultmap import FAULT_CHECKS, PROXY_FAULT_CHECKS
from gatecheck.checks.session import EMBEDDED_MAIN_KEY, open_session
from gatecheck.config import Target
from gatecheck.redaction import Secret
from gatecheck.reference import FAULTS
from gatecheck.results import CheckResult
from gatecheck.upstream.embedded import EMBEDDED_RETRIES, EMBEDDED_TIMEOUT_S, Pair, start_pair

FAST = RunSettings(fuzz_examples=0, fuzz_seed=1)


def target_for(pair: Pair) -> Target:
    """The proxying gateway as a real target whose provider is the harness."""
    return Target(
        name="proxy",
        base_url=pair.gateway.url,
        api_key=Secret(EMBEDDED_MAIN_KEY),
        upstream=pair.harness.url,
        upstream_timeout_s=EMBEDDED_TIMEOUT_S,
        retries=EMBEDDED_RETRIES,
        rpm=1_000_000,
        tpm=1_000_000_000,
    )


def run_area(check_ids: Iterable[str], **gateway: object) -> dict[str, CheckResult]:
    """The checks against the pair, recorded; the recording replays to the same results (offline:
    the harness's control calls are in the cassettes too)."""
    with start_pair(**gateway) as pair:
        return {r.check_id: r for r in run_recorded(target_for(pair), FAST, select(list(check_ids)))}


def upstream_checks() -> list[str]:
    load_all()
    return [c.id for c in CHECKS.values() if c.area == "upstream"]


def test_every_proxy_fault_is_mapped_and_every_upstream_check_is_proven() -> None:
    proxy_faults = {name for name, fault in FAULTS.items() if fault.area == "proxy"}
    assert proxy_faults <= set(PROXY_FAULT_CHECKS) and proxy_faults <= set(FAULT_CHECKS)
    mapped = {check for checks in PROXY_FAULT_CHECKS.values() for check in checks}
    assert mapped == set(upstream_checks())


def test_the_faithful_pair_passes_the_area_as_a_real_target() -> None:
    results = run_area(upstream_checks())
    not_passed = [f"{r.check_id}: {r.verdict}\n{r.message}" for r in results.values() if r.verdict != "PASS"]
    assert not not_passed, "\n\n".join(not_passed)
    assert all("undeclared_rules" not in r.extra for r in results.values())


@pytest.mark.parametrize("fault", sorted(PROXY_FAULT_CHECKS))
def test_the_proxy_fault_is_caught_by_its_checks(fault: str) -> None:
    expected = PROXY_FAULT_CHECKS[fault]
    results = run_area(expected, faults=frozenset({fault}))
    got = {check_id: result.verdict for check_id, result in results.items()}
    details = "\n\n".join(f"{r.check_id}: {r.verdict}\n{r.message}" for r in results.values())
    assert got == dict(expected), f"fault {fault}: {FAULTS[fault].rule}\n{details}"
    for check_id, verdict in expected.items():
        result = results[check_id]
        assert "undeclared_rules" not in result.extra, result.extra
        assert result.message.startswith(f"{verdict}: "), result.message
        assert "Rule: upstream-" in result.message and "Reproduce with:" in result.message


def test_the_leaked_key_is_masked_in_the_finding_and_the_recording(tmp_path: Path) -> None:
    """The harness's key is recorded as its stand-in (as long as the key), so the leak replays."""
    recorder = Recorder(tmp_path)
    settings = dataclasses.replace(FAST, wire=recorder)
    with start_pair(faults=frozenset({"proxy-key-leaked"})) as pair:
        target = target_for(pair)
        with open_session(target, settings) as session:
            (result,) = run_checks(session, select(["upstream_key_not_leaked"]))
        recorder.save(target, settings, [(result.check_id, result.verdict)])
        assert result.verdict == "WARN"
        assert pair.harness_key not in result.message
        assert pair.harness_key not in str(result.to_json())
        recorded = "".join(p.read_text(encoding="utf-8") for p in tmp_path.iterdir())
        assert pair.harness_key not in recorded and stand_in(pair.harness_key) in recorded
    (replayed,) = replay(tmp_path).results
    assert (replayed.verdict, replayed.message) == (result.verdict, result.message)
