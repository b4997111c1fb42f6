"""The ``limits`` scenario's plan and verdict: does a key get what its RPM and TPM promise?

For each key, two probes run one after the other (an RPM probe, then a TPM probe, one window
apart), each in three phases driven by an open-loop generator at ``overdrive`` times the limit:

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
from dataclasses import asdict, dataclass
from typing import Any, Literal, TypeAlias

from gatecheck._headers import parse_retry_after
from gatecheck._types import JSONObject
from gatecheck.errors import ConfigError

ProbeKind: TypeAlias = Literal["rpm", "tpm"]
PROBE_KINDS: tuple[ProbeKind, ...] = ("rpm", "tpm")
Phase: TypeAlias = Literal["burst", "retry", "sustain"]
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

    @property
    def name(self) -> str:
        """``label:kind``, the probe's id in records, groups and reports."""
        return f"{self.label}:{self.kind}"

    @property
    def cost_tokens(self) -> int:
        """Tokens one request is planned to cost (words + output against the reference gateway)."""
        return self.prompt_words + self.max_tokens

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
    return ProbePlan(key.label, "rpm", key.rpm, window_s, rate, windows, CHEAP_PROMPT_WORDS, CHEAP_MAX_TOKENS)


def _tpm_plan(key: LimitKey, window_s: float, overdrive: float, windows: int) -> ProbePlan:
    """Large requests at ``overdrive`` x the TPM, few enough per window to stay under the RPM."""
    cost = max(
        math.ceil(key.tpm / _TPM_GRANULARITY), math.ceil(overdrive * key.tpm / (_TPM_RPM_SHARE * key.rpm))
    )
    words = max(cost - TPM_MAX_TOKENS, 1)
    rate = overdrive * key.tpm / (words + TPM_MAX_TOKENS) / window_s
    return ProbePlan(key.label, "tpm", key.tpm, window_s, rate, windows, words, TPM_MAX_TOKENS)


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
    """The probe's verdict: figures, and the reasons it fails (none when it passes)."""
    mine = [r for r in records if r.probe == plan.name]
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
    if not mine:
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
        "passed": not failures,
        "failures": failures,
    }


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
