"""Service-level objectives for a load run, the gate that checks them, and baseline comparison.

An SLO file is TOML with one objective per key (all optional)::

    ttft_p95_ms = 800             # <metric>_<stat>_ms: an upper bound on a latency statistic
    itl_p99_ms = 150              #   metric: ttft, ttfc, itl, tpot, e2e, ttfb; stat: mean, p50...p99, max
    overhead_p99_ms = 5           #   also overhead, chunk_overhead: what the gateway added (--upstream)
    success_rate = 0.99           # successful requests / all requests (lower bound; 429s count against it)
    error_rate = 0.01             # failed requests / all requests, 429s excluded (upper bound)
    rate_limited_rate = 0.05      # 429s / all requests (upper bound)
    violation_rate = 0            # checked streams breaking a protocol rule / streams checked (upper bound)
    min_output_tokens_per_s = 200 # aggregate output tokens per second of the run (lower bound)
    min_requests_per_s = 2        # aggregate successful requests per second (lower bound)
    goodput = 0.9                 # share of requests meeting every [goodput_targets] entry (lower bound)

    [goodput_targets]             # what makes one request "good" (as vLLM's --goodput and DistServe)
    ttft_ms = 1000
    tpot_ms = 50
    e2e_ms = 20000

:func:`parse_objectives` turns the mapping into :class:`Objective` objects (an unknown key is a
``ConfigError`` naming it); :func:`evaluate` checks a summary and returns an :class:`SloResult`
with one printable line per objective. The same gate runs at the end of a locust run
(``--slo FILE``) and offline (``gatecheck slo reports/<run>.json --slo FILE``). Goodput is counted
during the run (it needs every request), so offline it can be gated only with the same targets.
"""

from __future__ import annotations

import difflib
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeAlias

from gatecheck._types import JSONObject
from gatecheck.errors import ConfigError
from gatecheck.load.timing import PERCENTILES, RequestMetrics

Bound: TypeAlias = Literal["max", "min"]
LATENCY_METRICS = ("ttft", "ttfc", "itl", "tpot", "e2e", "ttfb", "overhead", "chunk_overhead")
STATS = ("mean", *(f"p{p}" for p in PERCENTILES), "max")
GOODPUT_TARGETS = ("ttft_ms", "tpot_ms", "e2e_ms")
_LATENCY_KEY = re.compile(rf"^({'|'.join(LATENCY_METRICS)})_({'|'.join(STATS)})_ms$")
_FIXED: dict[str, tuple[tuple[str, ...], Bound, str]] = {
    "success_rate": (("requests", "success_rate"), "min", "share of successful requests"),
    "error_rate": (("requests", "error_rate"), "max", "share of failed requests (429s excluded)"),
    "rate_limited_rate": (("requests", "rate_limited_rate"), "max", "share of 429 answers"),
    "min_output_tokens_per_s": (("throughput", "output_tokens_per_s"), "min", "output tokens per second"),
    "min_requests_per_s": (("throughput", "requests_per_s"), "min", "successful requests per second"),
    "goodput": (("goodput", "ratio"), "min", "share of requests meeting the goodput targets"),
    "violation_rate": (
        ("conformance", "violation_rate"),
        "max",
        "share of checked streams breaking a protocol rule",
    ),
}
_ALLOWED = "<metric>_<stat>_ms (metric: {}; stat: {}), {}, [goodput_targets]".format(
    "/".join(LATENCY_METRICS), "/".join(STATS), ", ".join(_FIXED)
)


@dataclass(frozen=True, slots=True)
class Objective:
    """One bound on one figure of the summary (``path`` walks the summary's JSON)."""

    key: str
    path: tuple[str, ...]
    bound: Bound
    limit: float
    what: str

    def holds(self, measured: float) -> bool:
        """Whether a measured value satisfies the bound."""
        return measured <= self.limit if self.bound == "max" else measured >= self.limit


@dataclass(frozen=True, slots=True)
class SloSpec:
    """The objectives of one SLO file and its per-request goodput targets (ms)."""

    objectives: tuple[Objective, ...]
    goodput_targets: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ObjectiveResult:
    """An objective with what was measured; ``measured`` None means the run has no such figure."""

    objective: Objective
    measured: float | None
    passed: bool
    note: str = ""

    def line(self) -> str:
        """One line for a terminal or CI log."""
        o = self.objective
        sign = "<=" if o.bound == "max" else ">="
        if self.measured is None:
            return f"SLO {o.key}: FAIL, not measured ({self.note or 'no data'}); objective {sign} {o.limit:g}"
        verdict = "ok" if self.passed else "FAIL"
        return f"SLO {o.key}: {verdict}, measured {self.measured:g} ({o.what}); objective {sign} {o.limit:g}"

    def to_json(self) -> JSONObject:
        """JSON-ready record for the summary."""
        o = self.objective
        return {
            "key": o.key,
            "bound": o.bound,
            "limit": o.limit,
            "measured": self.measured,
            "passed": self.passed,
            "line": self.line(),
        }


@dataclass(frozen=True, slots=True)
class SloResult:
    """The gate's outcome: passed only if every objective held."""

    results: tuple[ObjectiveResult, ...]

    @property
    def passed(self) -> bool:
        """True when no objective was violated."""
        return all(r.passed for r in self.results)

    def lines(self) -> list[str]:
        """One line per objective, in file order."""
        return [r.line() for r in self.results]

    def to_json(self) -> JSONObject:
        """The ``slo`` section of the summary."""
        return {"passed": self.passed, "objectives": [r.to_json() for r in self.results]}


def _number(key: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"slo {key}", value, "a finite number >= 0")
    return float(value)


def _unknown(key: str, allowed: list[str]) -> ConfigError:
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigError("slo objective", key, _ALLOWED + hint)


def _objective(key: str, value: object) -> Objective:
    limit = _number(key, value)
    match = _LATENCY_KEY.match(key)
    if match:
        metric, stat = match.groups()
        name = metric.replace("_", " ") if "overhead" in metric else metric.upper()
        return Objective(key, ("metrics", f"{metric}_ms", stat), "max", limit, f"{name} {stat}, ms")
    if key in _FIXED:
        path, bound, what = _FIXED[key]
        return Objective(key, path, bound, limit, what)
    examples = [f"{m}_{s}_ms" for m in LATENCY_METRICS for s in STATS] + [*_FIXED, "goodput_targets"]
    raise _unknown(key, examples)


def _goodput_targets(value: object) -> dict[str, float]:
    if not isinstance(value, dict):
        raise ConfigError("slo goodput_targets", value, f"a table with any of {', '.join(GOODPUT_TARGETS)}")
    targets: dict[str, float] = {}
    for key, limit in value.items():
        if key not in GOODPUT_TARGETS:
            raise ConfigError("slo goodput_targets", key, f"one of {', '.join(GOODPUT_TARGETS)}")
        targets[key] = _number(f"goodput_targets.{key}", limit)
    return targets


def parse_objectives(data: Mapping[str, object]) -> SloSpec:
    """Objectives from a decoded SLO file; an unknown key is a ConfigError naming it."""
    targets = _goodput_targets(data["goodput_targets"]) if "goodput_targets" in data else {}
    objectives = tuple(_objective(k, v) for k, v in data.items() if k != "goodput_targets")
    if any(o.key == "goodput" for o in objectives) and not targets:
        raise ConfigError(
            "slo goodput", data["goodput"], "a [goodput_targets] table saying what a good request is"
        )
    if not objectives:
        raise ConfigError("slo", "(no objectives)", _ALLOWED)
    return SloSpec(objectives, targets)


def load_slo(path: Path) -> SloSpec:
    """Read and parse an SLO file."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError("--slo", str(path), f"a readable TOML file ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("--slo", str(path), f"valid TOML ({exc})") from None
    return parse_objectives(data)


def is_good(m: RequestMetrics, targets: Mapping[str, float]) -> bool:
    """Whether one request meets every goodput target (an undefined value never does)."""
    if not m.ok:
        return False
    for key, limit in targets.items():
        value = getattr(m, key)
        if value is None or value > limit:
            return False
    return True


def _lookup(summary: Mapping[str, object], path: tuple[str, ...]) -> float | None:
    node: object = summary
    for part in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return float(node) if isinstance(node, int | float) and not isinstance(node, bool) else None


def _goodput_mismatch(summary: Mapping[str, object], spec: SloSpec) -> str:
    goodput = summary.get("goodput")
    recorded = goodput.get("targets") if isinstance(goodput, Mapping) else None
    if recorded is None:
        return "the run counted no goodput: run it with this --slo file"
    if dict(recorded) != dict(spec.goodput_targets):
        return f"the run counted goodput against {dict(recorded)}, not {dict(spec.goodput_targets)}"
    return ""


_UNMEASURED = {
    "violation_rate": "no stream was checked: streams must succeed and --conformance-sample be above 0",
}
_OVERHEAD_UNMEASURED = "gateway overhead is measured with --upstream only (the summary's upstream section)"


def _unmeasured(summary: Mapping[str, object], key: str) -> str:
    """Why an objective has no figure, when the run can say."""
    if "overhead" in key:
        section = summary.get("upstream")
        reason = section.get("reason") if isinstance(section, Mapping) else None
        if key.startswith("chunk") and isinstance(section, Mapping) and section.get("chunks_reason"):
            reason = section["chunks_reason"]
        return str(reason) if reason else _OVERHEAD_UNMEASURED
    return _UNMEASURED.get(key, "")


def evaluate(summary: Mapping[str, object], spec: SloSpec) -> SloResult:
    """Check every objective against a load summary."""
    results: list[ObjectiveResult] = []
    for objective in spec.objectives:
        note = _goodput_mismatch(summary, spec) if objective.key == "goodput" else ""
        measured = None if note else _lookup(summary, objective.path)
        if measured is None and not note:
            note = _unmeasured(summary, objective.key)
        passed = measured is not None and objective.holds(measured)
        results.append(ObjectiveResult(objective, measured, passed, note))
    return SloResult(tuple(results))


# --- baselines ---------------------------------------------------------------------------------

_LOWER_IS_BETTER = tuple(
    ("metrics", f"{m}_ms", s)
    for m in ("ttft", "itl", "tpot", "e2e", "overhead", "chunk_overhead")
    for s in ("p50", "p95", "p99")
)
_HIGHER_IS_BETTER = (("throughput", "output_tokens_per_s"), ("throughput", "requests_per_s"))
_ERROR_SLACK = 0.01


@dataclass(frozen=True, slots=True)
class Regression:
    """A figure that got worse than the baseline by more than the threshold."""

    figure: str
    baseline: float
    current: float

    def line(self) -> str:
        """One line for a terminal or CI log."""
        change = (self.current / self.baseline - 1) * 100 if self.baseline else math.inf
        return f"REGRESSION {self.figure}: {self.current:g} vs baseline {self.baseline:g} ({change:+.1f}%)"

    def to_json(self) -> JSONObject:
        """JSON-ready record for the summary."""
        return {
            "figure": self.figure,
            "baseline": self.baseline,
            "current": self.current,
            "line": self.line(),
        }


def compare(
    summary: Mapping[str, object], baseline: Mapping[str, object], threshold: float = 0.1
) -> list[Regression]:
    """Figures worse than ``baseline`` by more than ``threshold`` (relative).

    Latencies (p50/p95/p99 of TTFT, ITL, TPOT, E2E, and the gateway overhead when both runs have it)
    regress when higher, throughput when lower, the error rate when it rises by more than one
    percentage point.
    """
    found: list[Regression] = []
    for path in (*_LOWER_IS_BETTER, *_HIGHER_IS_BETTER, ("requests", "error_rate")):
        now, then = _lookup(summary, path), _lookup(baseline, path)
        if now is None or then is None:
            continue
        if path[-1] == "error_rate":
            worse = now > then + _ERROR_SLACK
        elif path in _HIGHER_IS_BETTER:
            worse = now < then * (1 - threshold)
        else:
            worse = then > 0 and now > then * (1 + threshold)
        if worse:
            found.append(Regression(".".join(path), then, now))
    return found
