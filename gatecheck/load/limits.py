"""The ``limits`` scenario's plan and verdict: does a key get what its RPM and TPM promise?

For each key, two probes run one after the other (an RPM probe, then a TPM probe, one window
apart), each in three phases driven by an open-loop generator at ``overdrive`` times the limit.
The TPM probe is sized in the target's own tokens: before the probes, one ``calibrate`` request
of ``CALIBRATION_UNITS`` prompt words tells how many tokens the target counts for them
(``gatecheck.calibration``); its requests are then each well under the TPM, and few enough per
window to stay under 80 % of the RPM, so requests cannot explain its 429s (when the RPM is too
small for that, the probe is not checked, and says why). A probe request refused for its own
size (400, 413) is reported as that, never as under-admission.

1. ``burst``: drive until the first 429 (when did it come, after how many admitted units, did it
   carry ``Retry-After`` and the ``X-RateLimit-*`` headers?);
2. ``retry``: wait what ``Retry-After`` said, send one request: did waiting work? (without a
   ``Retry-After`` the probe waits one window and skips this check);
3. ``sustain``: drive for ``windows`` windows and count what was admitted. Units are requests for
   RPM and tokens (``usage``) for TPM. Because the offered load stays above the limit, a window of
   any alignment admits its quota as soon as it opens, so admitted / windows estimates the
   per-window allowance whatever the gateway's window algorithm.

The verdict compares admitted per window to the limit (``ratio``) with a stated tolerance, widened
to one request's share when requests are coarse (a TPM window can only admit whole requests).
Pure functions over plain records: the locust users only send and record.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal, TypeAlias

from gatecheck._headers import parse_retry_after
from gatecheck._types import JSONObject
from gatecheck.calibration import CALIBRATION_UNITS, TokenRate
from gatecheck.errors import ConfigError

ProbeKind: TypeAlias = Literal["rpm", "tpm"]
PROBE_KINDS: tuple[ProbeKind, ...] = ("rpm", "tpm")
Phase: TypeAlias = Literal["calibrate", "burst", "retry", "sustain"]
CHEAP_PROMPT_WORDS = 8
CHEAP_MAX_TOKENS = 1
TPM_MAX_TOKENS = 8
_KEY_SPEC = re.compile(
    r"^(?P<label>[A-Za-z0-9_.-]+)=(?P<env>[A-Za-z_][A-Za-z0-9_]*):(?P<rpm>\d+):(?P<tpm>\d+)$"
)
_KEY_HELP = "LABEL=ENV_VAR:RPM:TPM, e.g. small=GATECHECK_API_KEY_2:10:5000 (the key is read from ENV_VAR)"
_TPM_GRANULARITY = 20
"""A TPM probe's requests are sized so that a window holds about this many of them."""
_TPM_RPM_SHARE = 0.8
"""...but never more requests per window than this share of the RPM, so the TPM limit trips first."""
_TPM_MAX_SHARE = 0.5
"""...and never more than this share of the TPM per request (a request must fit the TPM well)."""
_MIN_OVERDRIVE = 1.1
"""A TPM probe must offer this much of (TPM + one request) per window within the RPM, or is not checked."""
_SIZE_REFUSALS = (400, 413)


@dataclass(frozen=True, slots=True)
class LimitKey:
    """A key under test: a label for reports, where the key is (env var; None = the main key), limits."""

    label: str
    key_env: str | None
    rpm: int
    tpm: int


def parse_limits_key(spec: str) -> LimitKey:
    """``LABEL=ENV_VAR:RPM:TPM`` -> LimitKey (the key itself never appears on a command line)."""
    match = _KEY_SPEC.match(spec.strip())
    if match is None:
        raise ConfigError("--limits-key", spec, _KEY_HELP)
    rpm, tpm = int(match["rpm"]), int(match["tpm"])
    if rpm < 1 or tpm < 1:
        raise ConfigError("--limits-key", spec, f"{_KEY_HELP}; RPM and TPM at least 1")
    return LimitKey(match["label"], match["env"], rpm, tpm)


@dataclass(frozen=True, slots=True)
class ProbePlan:
    """One probe: which key and limit, how hard to drive it, with what requests, for how long."""

    label: str
    kind: ProbeKind
    limit: int
    window_s: float
    rate_per_s: float
    windows: int
    prompt_words: int
    max_tokens: int
    tokens_per_word: float = 1.0
    """The target's tokens per prompt word, from the calibration request (1 until it is known)."""
    not_checked: str = ""
    """Why the probe cannot be judged (the calibration failed, the RPM is too small for the TPM)."""
    key_rpm: int = 0
    """The key's RPM (a TPM probe stays under 80 % of it)."""
    overdrive: float = 2.0
    """The offered load asked for, as a multiple of the limit."""

    @property
    def name(self) -> str:
        """``label:kind``, the probe's id in records, groups and reports."""
        return f"{self.label}:{self.kind}"

    @property
    def cost_tokens(self) -> int:
        """Tokens one request is planned to cost, in the target's tokens (prompt and output cap)."""
        return math.ceil(self.prompt_words * self.tokens_per_word) + self.max_tokens

    @property
    def burst_timeout_s(self) -> float:
        """How long the burst phase may wait for a first 429."""
        return 2 * self.window_s + 1

    @property
    def sustain_s(self) -> float:
        """Length of the sustain phase."""
        return self.windows * self.window_s

    def expected_s(self) -> float:
        """About how long the probe takes against a gateway that enforces its limit."""
        return self.limit_requests() / self.rate_per_s + self.window_s + 1 + self.sustain_s

    def limit_requests(self) -> float:
        """The limit expressed in requests per window."""
        return self.limit if self.kind == "rpm" else self.limit / self.cost_tokens


def plan_probes(
    key: LimitKey,
    window_s: float,
    *,
    overdrive: float = 2.0,
    windows: int = 2,
    kinds: Sequence[ProbeKind] = PROBE_KINDS,
) -> list[ProbePlan]:
    """The probes of ``key`` in order (RPM, then TPM, or the ``kinds`` asked for)."""
    if not overdrive > 1:
        raise ConfigError("--limits-overdrive", overdrive, "a factor above 1 (drive above the limit)")
    if windows < 1:
        raise ConfigError("--limits-windows", windows, "at least 1 window")
    if not window_s > 0:
        raise ConfigError("--window-seconds", window_s, "a duration above 0 seconds")
    plans = {
        "rpm": _rpm_plan(key, window_s, overdrive, windows),
        "tpm": _tpm_plan(key, window_s, overdrive, windows),
    }
    return [plans[kind] for kind in PROBE_KINDS if kind in kinds]


def _rpm_plan(key: LimitKey, window_s: float, overdrive: float, windows: int) -> ProbePlan:
    """Cheap requests (a few tokens each) at ``overdrive`` x the RPM."""
    rate = overdrive * key.rpm / window_s
    return ProbePlan(
        key.label,
        "rpm",
        key.rpm,
        window_s,
        rate,
        windows,
        CHEAP_PROMPT_WORDS,
        CHEAP_MAX_TOKENS,
        key_rpm=key.rpm,
        overdrive=overdrive,
    )


def _tpm_plan(
    key: LimitKey, window_s: float, overdrive: float, windows: int, rate: TokenRate | None = None
) -> ProbePlan:
    """Large requests at ``overdrive`` x the TPM, few enough per window to stay under the RPM.

    Sizes are in the target's tokens (``rate``, from the calibration request); without a rate the
    plan is a placeholder sized at one token per word that ``calibrated`` replaces before it runs.
    Each request is at least 1/20 of the TPM, large enough that ``overdrive`` x the TPM takes at
    most 80 % of the RPM, and at most half the TPM. When the RPM is too small for that, the
    overdrive is lowered; the offered load must still pass the TPM by more than one request (what a
    gateway charging tokens after serving them admits per window) with a tenth to spare, or the
    probe is not checked.
    """
    rate = rate or TokenRate(1, 1)
    cost = min(
        max(
            math.ceil(key.tpm / _TPM_GRANULARITY),
            math.ceil(overdrive * key.tpm / (_TPM_RPM_SHARE * key.rpm)),
        ),
        math.floor(key.tpm * _TPM_MAX_SHARE),
    )
    words = rate.units_for(max(cost - TPM_MAX_TOKENS, 1))
    cost = rate.tokens_for(words) + TPM_MAX_TOKENS
    drive = min(overdrive, _TPM_RPM_SHARE * key.rpm * cost / key.tpm)
    needed = _MIN_OVERDRIVE * (1 + cost / key.tpm)
    reason = ""
    if drive < needed:
        reason = (
            f"with {key.rpm} RPM, requests of at most half the TPM ({cost} tokens) within 80% of the "
            f"RPM offer {drive:.2f} x the {key.tpm} TPM per window, not the {needed:.2f} x that passes it "
            "by more than one request (what a gateway charging tokens after serving admits): the TPM "
            "cannot be told from the RPM"
        )
    rate_per_s = max(drive, 1.0) * key.tpm / cost / window_s
    return ProbePlan(
        key.label,
        "tpm",
        key.tpm,
        window_s,
        rate_per_s,
        windows,
        words,
        TPM_MAX_TOKENS,
        tokens_per_word=rate.per_unit,
        not_checked=reason,
        key_rpm=key.rpm,
        overdrive=overdrive,
    )


def calibration_failure(record: ProbeRecord | None) -> str:
    """Why a calibration record gives no rate ("" when it does)."""
    if record is None:
        return "the calibration request was not sent (the run ended before it)"
    if not record.admitted:
        return f"the calibration request was answered {record.status}"
    if not record.tokens_from_usage or record.tokens < 1:
        return (
            "the calibration answer had no usage.prompt_tokens: no size can be stated in the target's tokens"
        )
    return ""


def calibrated(plan: ProbePlan, record: ProbeRecord | None) -> ProbePlan:
    """The TPM ``plan`` sized in the target's tokens by its calibration record (or marked not checked)."""
    failure = calibration_failure(record)
    if failure or record is None:
        return replace(plan, not_checked=failure)
    key = LimitKey(plan.label, None, plan.key_rpm, plan.limit)
    rate = TokenRate(CALIBRATION_UNITS, record.tokens)
    return _tpm_plan(key, plan.window_s, plan.overdrive, plan.windows, rate)


def calibration_record(plan: ProbePlan, records: Iterable[ProbeRecord]) -> ProbeRecord | None:
    """The calibration record of ``plan`` (the TPM probe of its key), if one was sent."""
    return next((r for r in records if r.probe == plan.name and r.phase == "calibrate"), None)


@dataclass(frozen=True, slots=True)
class ProbeRecord:
    """One probe request: when it was sent (seconds from the probe start), what came back."""

    probe: str
    phase: Phase
    t: float
    status: int
    tokens: int
    tokens_from_usage: bool
    retry_after: str | None
    limit_headers: bool

    def to_json(self) -> JSONObject:
        """Plain dict (travels from workers to the master)."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProbeRecord:
        """The record :meth:`to_json` gave."""
        return cls(**data)

    @property
    def admitted(self) -> bool:
        """The gateway accepted the request."""
        return 200 <= self.status < 300


def _units(plan: ProbePlan, record: ProbeRecord) -> int:
    if not record.admitted:
        return 0
    return 1 if plan.kind == "rpm" else record.tokens


def _peak(plan: ProbePlan, records: Sequence[ProbeRecord]) -> int:
    """Most units admitted within any window-long interval (by send time)."""
    admitted = sorted((r.t, _units(plan, r)) for r in records if r.admitted)
    best = total = lo = 0
    for t, units in admitted:
        total += units
        while admitted[lo][0] <= t - plan.window_s:
            total -= admitted[lo][1]
            lo += 1
        best = max(best, total)
    return best


def _sustain_span(records: Sequence[ProbeRecord]) -> list[ProbeRecord]:
    return [r for r in records if r.phase in ("retry", "sustain")]


def _first_429(plan: ProbePlan, records: Sequence[ProbeRecord]) -> tuple[ProbeRecord | None, int]:
    """The first 429 of the burst and the units admitted before it was sent."""
    count = 0
    for record in sorted((r for r in records if r.phase == "burst"), key=lambda r: r.t):
        if record.status == 429:
            return record, count
        count += _units(plan, record)
    return None, count


def _tolerance(plan: ProbePlan, tolerance: float) -> float:
    share = 1 / plan.limit if plan.kind == "rpm" else plan.cost_tokens / plan.limit
    return max(tolerance, share)


def judge(plan: ProbePlan, records: Iterable[ProbeRecord], tolerance: float = 0.1) -> JSONObject:
    """The probe's verdict: figures, and the reasons it fails (none when it passes).

    A TPM probe is first sized by its calibration record (as the user that ran it was); one that
    cannot be judged (no calibration, an RPM too small, requests refused for their own size) is
    ``not_checked`` with the reason, neither passed nor failed by admission figures.
    """
    records = list(records)
    if plan.kind == "tpm":
        plan = calibrated(plan, calibration_record(plan, records))
    mine = [r for r in records if r.probe == plan.name and r.phase != "calibrate"]
    not_checked = plan.not_checked or _size_refusals(plan, mine)
    if not_checked:
        mine = []
    limited = [r for r in mine if r.status == 429]
    first, admitted_before = _first_429(plan, mine)
    retry = next((r for r in mine if r.phase == "retry"), None)
    sustain = _sustain_span(mine)
    admitted = sum(_units(plan, r) for r in sustain)
    offered = len(sustain) if plan.kind == "rpm" else len(sustain) * plan.cost_tokens
    per_window = admitted / plan.windows
    ratio = per_window / plan.limit
    tol = _tolerance(plan, tolerance)
    with_retry_after = sum(parse_retry_after(r.retry_after, 0) is not None for r in limited)
    with_headers = sum(r.limit_headers for r in limited)
    failures: list[str] = []
    unit = "requests" if plan.kind == "rpm" else "tokens"
    if not_checked:
        pass
    elif not mine:
        failures.append("the probe sent nothing (the run ended before it started)")
    elif not limited:
        failures.append(f"never answered 429 while driven at {offered / plan.windows:.0f} {unit} per window")
    if sustain and ratio > 1 + tol:
        failures.append(f"over-admits: {per_window:.0f} {unit} per window against a limit of {plan.limit}")
    if sustain and ratio < 1 - tol and offered / plan.windows >= plan.limit * (1 + tol):
        failures.append(f"under-admits: {per_window:.0f} {unit} per window against a limit of {plan.limit}")
    if limited and with_retry_after < len(limited):
        failures.append(f"{len(limited) - with_retry_after} of {len(limited)} 429s had no valid Retry-After")
    if retry is not None and not retry.admitted:
        failures.append(f"waiting Retry-After did not work (the retry got {retry.status})")
    if mine and not sustain:
        failures.append("the sustain phase did not run (the run ended early)")
    return {
        "probe": plan.name,
        "key": plan.label,
        "kind": plan.kind,
        "limit": plan.limit,
        "window_s": plan.window_s,
        "offered_per_window": round(offered / plan.windows, 3),
        "admitted_per_window": round(per_window, 3),
        "ratio": round(ratio, 4),
        "tolerance": round(tol, 4),
        "peak_per_window": _peak(plan, sustain),
        "first_429_s": None if first is None else round(first.t, 3),
        "admitted_before_first_429": admitted_before,
        "rate_limited": len(limited),
        "retry_after_present": bool(limited) and with_retry_after == len(limited),
        "limit_headers_present": bool(limited) and with_headers == len(limited),
        "retry_after_s": None if first is None else parse_retry_after(first.retry_after, 0),
        "wait_worked": None if retry is None else retry.admitted,
        "tokens_estimated": any(r.admitted and not r.tokens_from_usage for r in sustain),
        "request_cost": plan.cost_tokens if plan.kind == "tpm" else 1,
        "tokens_per_word": round(plan.tokens_per_word, 4)
        if plan.kind == "tpm" and not plan.not_checked
        else None,
        "not_checked": not_checked or None,
        "passed": not failures and not not_checked,
        "failures": failures,
    }


def _size_refusals(plan: ProbePlan, records: Sequence[ProbeRecord]) -> str:
    """Why a TPM probe cannot be judged when the target refused its requests for their size ("" if not)."""
    refused = [r for r in records if r.status in _SIZE_REFUSALS]
    if plan.kind != "tpm" or not refused:
        return ""
    statuses = ", ".join(sorted({str(r.status) for r in refused}))
    return (
        f"the target refused {len(refused)} probe requests of about {plan.cost_tokens} of its tokens "
        f"({plan.prompt_words} words) for their own size (HTTP {statuses}), so what it admits per window "
        "was not measured"
    )


def verdict(plans: Sequence[ProbePlan], records: Iterable[ProbeRecord], tolerance: float = 0.1) -> JSONObject:
    """Every probe's verdict and the overall one (the ``limits`` section of the summary)."""
    records = list(records)
    probes = [judge(plan, records, tolerance) for plan in plans]
    return {"tolerance": tolerance, "passed": all(p["passed"] for p in probes), "probes": probes}


def retry_wait_s(limited: Sequence[ProbeRecord], plan: ProbePlan) -> float | None:
    """How long to wait after the burst: the first 429's ``Retry-After`` (capped), None without one."""
    for record in limited:
        wait = parse_retry_after(record.retry_after)
        if wait is not None:
            return min(wait, 2 * plan.window_s + 1)
    return None
