"""gatecheck.load.limits: probe plans and verdicts on synthetic records (live runs: test_load_run)."""

from __future__ import annotations

import pytest

from gatecheck.calibration import CALIBRATION_UNITS
from gatecheck.errors import ConfigError
from gatecheck.load.limits import (
    LimitKey,
    Phase,
    ProbePlan,
    ProbeRecord,
    calibrated,
    judge,
    parse_limits_key,
    plan_probes,
    retry_wait_s,
    verdict,
)

KEY = LimitKey("main", None, 10, 2000)


def test_key_specs() -> None:
    assert parse_limits_key("small=GATECHECK_API_KEY_2:10:5000") == LimitKey(
        "small", "GATECHECK_API_KEY_2", 10, 5000
    )
    for bad in ("small=bad-name:1:2", "small:10:5000", "x=ENV:0:5", "x=ENV:ten:5"):
        with pytest.raises(ConfigError, match="--limits-key"):
            parse_limits_key(bad)


def test_plans_drive_above_the_limit_and_keep_tpm_probes_under_the_rpm() -> None:
    rpm, tpm = plan_probes(LimitKey("k", None, 60, 100_000), 60.0, overdrive=2.0, windows=2)
    assert (rpm.kind, rpm.limit, rpm.rate_per_s) == ("rpm", 60, 2.0)
    assert tpm.kind == "tpm"
    assert tpm.rate_per_s * 60 * tpm.cost_tokens == pytest.approx(200_000)
    assert tpm.rate_per_s * 60 <= 0.8 * 60, "the TPM probe stays under the RPM"
    assert tpm.cost_tokens <= 100_000 / 20 + 1, "a window holds about 20 TPM-probe requests"
    assert rpm.expected_s() < 4 * 60
    for bad in ({"overdrive": 1.0}, {"windows": 0}):
        with pytest.raises(ConfigError):
            plan_probes(KEY, 1.0, **bad)  # type: ignore[arg-type]


def _plan(kind: str = "rpm") -> ProbePlan:
    return next(p for p in plan_probes(KEY, 1.0, overdrive=2.0, windows=2) if p.kind == kind)


def _records(
    plan: ProbePlan,
    *,
    admit_per_window: int,
    retry_after: str | None = "1",
    retry_ok: bool = True,
    windows: int = 2,
    no_429: bool = False,
) -> list[ProbeRecord]:
    """A gateway with fixed windows of 1 s admitting ``admit_per_window`` requests of 20 per window."""
    out: list[ProbeRecord] = []

    def add(phase: Phase, t: float, admitted: bool) -> None:
        status = 200 if admitted or no_429 else 429
        out.append(
            ProbeRecord(
                plan.name, phase, t, status, 100, True, None if admitted else retry_after, not admitted
            )
        )

    for i in range(admit_per_window + 1):
        add("burst", i * 0.05, i < admit_per_window)
    add("retry", 2.0, retry_ok)
    for w in range(windows):
        for i in range(1 if w == 0 else 0, 20):
            add("sustain", 2.0 + w + i * 0.05, i < admit_per_window)
    return out


def test_a_correct_gateway_passes() -> None:
    plan = _plan()
    result = judge(plan, _records(plan, admit_per_window=10))
    assert result["passed"], result["failures"]
    assert result["ratio"] == 1.0 and result["admitted_per_window"] == 10
    assert result["first_429_s"] == 0.5 and result["admitted_before_first_429"] == 10
    assert result["retry_after_present"] and result["limit_headers_present"] and result["wait_worked"]
    assert result["peak_per_window"] == 10


def test_never_429_fails() -> None:
    plan = _plan()
    result = judge(plan, _records(plan, admit_per_window=20, no_429=True))
    assert not result["passed"]
    assert any(f.startswith("never answered 429") for f in result["failures"])
    assert any(f.startswith("over-admits") for f in result["failures"])


def test_over_and_under_admission_beyond_the_tolerance_fail() -> None:
    plan = _plan()
    over = judge(plan, _records(plan, admit_per_window=14))
    assert over["ratio"] == 1.4 and any(f.startswith("over-admits") for f in over["failures"])
    under = judge(plan, _records(plan, admit_per_window=6))
    assert any(f.startswith("under-admits") for f in under["failures"])
    assert judge(plan, _records(plan, admit_per_window=11))["passed"], "one request is within 10% of 10"


def test_missing_retry_after_and_failed_wait_fail() -> None:
    plan = _plan()
    no_header = judge(plan, _records(plan, admit_per_window=10, retry_after=None))
    assert any("Retry-After" in f for f in no_header["failures"]) and not no_header["retry_after_present"]
    failed_wait = judge(plan, _records(plan, admit_per_window=10, retry_ok=False))
    assert failed_wait["wait_worked"] is False
    assert any("waiting Retry-After did not work" in f for f in failed_wait["failures"])


def _calibration(plan: ProbePlan, prompt_tokens: int | None, status: int = 200) -> ProbeRecord:
    """The calibration record of a TPM probe: the target counted ``prompt_tokens`` for 256 words."""
    return ProbeRecord(
        plan.name, "calibrate", 0.0, status, prompt_tokens or 0, prompt_tokens is not None, None, True
    )


def test_tpm_probe_counts_tokens_and_widens_the_tolerance_to_one_request() -> None:
    placeholder = _plan("tpm")
    plan = calibrated(placeholder, _calibration(placeholder, CALIBRATION_UNITS))
    records = [_calibration(plan, CALIBRATION_UNITS), *_records(plan, admit_per_window=20)]
    result = judge(placeholder, records)
    assert result["kind"] == "tpm" and result["admitted_per_window"] == 2000
    assert result["tolerance"] == pytest.approx(max(0.1, plan.cost_tokens / 2000))
    assert result["tokens_per_word"] == 1.0 and result["not_checked"] is None


def test_tpm_probes_are_sized_in_the_targets_tokens_not_in_words() -> None:
    """Issue 9: a key whose model counts a word as half a token (or two tokens)."""
    placeholder = plan_probes(LimitKey("small", None, 6, 2000), 60.0, overdrive=2.0, windows=2)[1]
    for prompt_tokens in (128, 512):
        plan = calibrated(placeholder, _calibration(placeholder, prompt_tokens))
        assert not plan.not_checked, plan.not_checked
        assert plan.cost_tokens <= 2000 / 2 + 1, "a request is at most half the TPM, in the target's tokens"
        assert plan.tokens_per_word == prompt_tokens / CALIBRATION_UNITS
        assert plan.rate_per_s * 60 <= 0.8 * 6, "requests cannot explain a 429: under 80% of the RPM"
        offered = plan.rate_per_s * 60 * plan.cost_tokens
        assert offered > 1.1 * (2000 + plan.cost_tokens), "more than a gateway charging after serving admits"


def test_a_tpm_probe_that_cannot_pass_the_tpm_within_the_rpm_is_not_checked() -> None:
    """A 3-RPM/2,000-TPM key: 2.4 requests a window of at most 1,000 tokens cannot pass 2,000 + 1,000."""
    for rpm in (1, 3):
        placeholder = plan_probes(LimitKey("small", None, rpm, 2000), 60.0)[1]
        plan = calibrated(placeholder, _calibration(placeholder, 128))
        assert "the TPM cannot be told from the RPM" in plan.not_checked
        assert judge(placeholder, [_calibration(placeholder, 128)])["not_checked"] == plan.not_checked


def test_a_tpm_probe_without_calibration_or_refused_for_its_size_is_not_checked() -> None:
    placeholder = _plan("tpm")
    for record in (_calibration(placeholder, None), _calibration(placeholder, 300, status=429)):
        result = judge(placeholder, [record, *_records(placeholder, admit_per_window=20)])
        assert not result["passed"] and not result["failures"] and result["not_checked"]
    plan = calibrated(placeholder, _calibration(placeholder, CALIBRATION_UNITS))
    refused = [ProbeRecord(plan.name, "burst", 0.1 * i, 400, 0, False, None, False) for i in range(5)]
    result = judge(placeholder, [_calibration(plan, CALIBRATION_UNITS), *refused])
    assert "for their own size" in result["not_checked"] and not result["failures"]
    assert not any("under-admits" in f for f in result["failures"])


def test_an_empty_probe_fails_and_the_overall_verdict_needs_every_probe() -> None:
    rpm, tpm = plan_probes(KEY, 1.0)
    result = verdict([rpm, tpm], _records(rpm, admit_per_window=10))
    assert [p["passed"] for p in result["probes"]] == [True, False]
    assert not result["passed"]
    assert "calibration request was not sent" in result["probes"][1]["not_checked"]
    empty = verdict([rpm], [])
    assert "sent nothing" in empty["probes"][0]["failures"][0]


def test_retry_wait_is_the_first_usable_retry_after_capped() -> None:
    plan = _plan()
    limited = [
        ProbeRecord(plan.name, "burst", 0, 429, 0, False, value, True) for value in (None, "soon", "30")
    ]
    assert retry_wait_s(limited, plan) == 2 * plan.window_s + 1
    assert retry_wait_s(limited[:2], plan) is None
    assert retry_wait_s([ProbeRecord(plan.name, "burst", 0, 429, 0, False, "1", True)], plan) == 1.0


def test_records_round_trip_through_json() -> None:
    record = ProbeRecord("main:rpm", "burst", 0.25, 429, 0, False, "1", True)
    assert ProbeRecord.from_json(record.to_json()) == record
    assert not record.admitted
