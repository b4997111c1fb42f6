"""Mergeable load-test measurements: histograms, counters per group, the time series, the knee.

:class:`Histogram` keeps HDR histograms (3 significant digits, integer microseconds for times) with
exact count, sum and max beside them; histograms are added, never their percentiles averaged, so
workers' raw histograms merge on the master (:meth:`LoadStats.to_wire` / :meth:`LoadStats.merge`).
Nothing here imports locust or gevent.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

from gatecheck._types import JSONObject
from gatecheck.load.timing import ALL_METRIC_KEYS, PERCENTILES, RequestMetrics

_SCALE = 1000
"""Histograms store value x 1000 as integers: microseconds for ms metrics, milli-tokens for rates."""
_HIGHEST = 3_600_000_000
"""One hour in microseconds: larger values are clamped (and still counted)."""
_DIGITS = 3
_PENDING_LIMIT = 200_000
_CDF_POINTS = (*range(0, 100, 2), 99, 99.5, 99.9, 100)


def _new_hdr() -> Any:
    return HdrHistogram(1, _HIGHEST, _DIGITS)


class Histogram:
    """A mergeable distribution: HDR buckets (0.1% resolution) plus exact count, sum and max.

    Values are buffered and recorded in batches (equal values collapse into one HDR update), which
    keeps the per-value cost of the hot path to a list append.
    """

    __slots__ = ("_hdr", "_max", "_pending", "_sum", "count")

    def __init__(self) -> None:
        self._hdr: Any = None
        self._pending: list[int] = []
        self.count = 0
        self._sum = 0
        self._max = 0

    def record(self, value: float) -> None:
        """Add one value (ms for times, tokens/s for rates); negative values count as 0."""
        scaled = min(max(int(value * _SCALE + 0.5), 0), _HIGHEST)
        self._pending.append(scaled)
        self.count += 1
        self._sum += scaled
        if scaled > self._max:
            self._max = scaled
        if len(self._pending) >= _PENDING_LIMIT:
            self._flush()

    def record_many(self, values: Iterable[float]) -> None:
        """Add several values."""
        for value in values:
            self.record(value)

    def record_scaled(self, values: Sequence[int]) -> None:
        """Add values already multiplied by 1000 (microseconds for a ms metric): the ITL hot path."""
        if not values:
            return
        self._pending.extend(values)
        self.count += len(values)
        self._sum += sum(values)
        self._max = max(self._max, max(values))
        if len(self._pending) >= _PENDING_LIMIT:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        if self._hdr is None:
            self._hdr = _new_hdr()
        for value, count in Counter(self._pending).items():
            self._hdr.record_value(min(max(value, 0), _HIGHEST), count)
        self._pending = []

    def merge(self, other: Histogram) -> None:
        """Add another histogram's values to this one (exactly as if recorded here)."""
        other._flush()
        self.count += other.count
        self._sum += other._sum
        self._max = max(self._max, other._max)
        if other._hdr is not None:
            if self._hdr is None:
                self._hdr = _new_hdr()
            self._hdr.add(other._hdr)

    def to_wire(self) -> JSONObject:
        """A JSON-ready form (HdrHistogram's compressed base64 encoding) for worker -> master."""
        self._flush()
        encoded = self._hdr.encode() if self._hdr is not None else b""
        text = encoded.decode("ascii") if isinstance(encoded, bytes) else str(encoded)
        return {"hdr": text, "count": self.count, "sum": self._sum, "max": self._max}

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Histogram:
        """The histogram :meth:`to_wire` described."""
        hist = cls()
        hist.count = int(data["count"])
        hist._sum = int(data["sum"])
        hist._max = int(data["max"])
        if data["hdr"]:
            decoded = HdrHistogram.decode(data["hdr"])
            hist._hdr = _new_hdr()
            hist._hdr.add(decoded)
        return hist

    def percentiles(self, points: Sequence[float]) -> dict[float, float]:
        """Value at each percentile (0-100), within the HDR resolution of 0.1%."""
        self._flush()
        if not self.count or self._hdr is None:
            return {}
        raw = self._hdr.get_percentile_to_value_dict(list(points))
        return {p: min(raw[p], self._max) / _SCALE for p in points}

    def stats(self) -> JSONObject:
        """``count``, ``mean``, ``p50``, ``p90``, ``p95``, ``p99`` and ``max`` (None when empty)."""
        out: JSONObject = {"count": self.count, "mean": None}
        out.update({f"p{p}": None for p in PERCENTILES})
        out["max"] = None
        if not self.count:
            return out
        out["mean"] = round(self._sum / self.count / _SCALE, 3)
        for p, value in self.percentiles(PERCENTILES).items():
            out[f"p{int(p)}"] = round(value, 3)
        out["max"] = round(self._max / _SCALE, 3)
        return out

    def cdf(self) -> list[list[float]]:
        """``[value, fraction]`` points of the cumulative distribution, for plots."""
        return [[round(v, 3), p / 100] for p, v in self.percentiles(_CDF_POINTS).items()]


_COUNTERS = (
    "requests",
    "ok",
    "rate_limited",
    "retry_after",
    "output_tokens",
    "prompt_tokens",
    "estimated_token_requests",
    "bytes_received",
)
"""The additive counters of :class:`Metrics` (merged by sum, sent by name)."""


@dataclass(slots=True)
class Metrics:
    """Counters and histograms for one group of requests (a scenario, a ramp step, a key)."""

    histograms: dict[str, Histogram] = field(
        default_factory=lambda: {k: Histogram() for k in ALL_METRIC_KEYS}
    )
    requests: int = 0
    ok: int = 0
    rate_limited: int = 0
    retry_after: int = 0
    errors: Counter[tuple[int, str]] = field(default_factory=Counter)
    output_tokens: int = 0
    prompt_tokens: int = 0
    estimated_token_requests: int = 0
    bytes_received: int = 0
    first_start_s: float = math.inf
    last_start_s: float = 0.0

    def add(self, m: RequestMetrics) -> None:
        """Count one request."""
        h = self.histograms
        self.requests += 1
        self.first_start_s = min(self.first_start_s, m.wall_start_s)
        self.last_start_s = max(self.last_start_s, m.wall_start_s)
        self.bytes_received += m.bytes_received
        if m.ttfb_ms is not None:
            h["ttfb_ms"].record(m.ttfb_ms)
        if not m.ok:
            self.rate_limited += m.rate_limited
            self.retry_after += m.rate_limited and m.retry_after_s is not None
            self.errors[(m.status, m.error_code or "")] += 1
            return
        self.ok += 1
        self.output_tokens += m.output_tokens
        self.prompt_tokens += m.prompt_tokens or 0
        self.estimated_token_requests += m.tokens_estimated
        for key in ("ttft_ms", "tpot_ms", "e2e_ms", "output_tokens_per_s"):
            value = getattr(m, key)
            if value is not None:
                h[key].record(value)
        h["itl_ms"].record_scaled(m.itl_us)

    def merge(self, other: Metrics) -> None:
        """Add another group's counts and histograms to this one."""
        for key, hist in other.histograms.items():
            self.histograms[key].merge(hist)
        for name in _COUNTERS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.errors.update(other.errors)
        self.first_start_s = min(self.first_start_s, other.first_start_s)
        self.last_start_s = max(self.last_start_s, other.last_start_s)

    def to_wire(self) -> JSONObject:
        """A JSON-ready form for the worker -> master report."""
        return {
            "histograms": {k: v.to_wire() for k, v in self.histograms.items() if v.count},
            "counts": {name: getattr(self, name) for name in _COUNTERS},
            "errors": [[status, code, n] for (status, code), n in self.errors.items()],
            "span": [self.first_start_s if self.requests else None, self.last_start_s],
        }

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Metrics:
        """The group :meth:`to_wire` described."""
        m = cls()
        for key, hist in data["histograms"].items():
            m.histograms[key] = Histogram.from_wire(hist)
        for name in _COUNTERS:
            setattr(m, name, int(data["counts"][name]))
        m.errors = Counter({(int(s), str(c)): int(n) for s, c, n in data["errors"]})
        first, last = data["span"]
        m.first_start_s = math.inf if first is None else float(first)
        m.last_start_s = float(last)
        return m

    def failed(self) -> int:
        """Requests that did not succeed (429s included)."""
        return self.requests - self.ok

    def request_summary(self) -> JSONObject:
        """The ``requests`` object of the summary."""
        failed = self.failed()
        total = self.requests
        return {
            "total": total,
            "ok": self.ok,
            "failed": failed,
            "rate_limited": self.rate_limited,
            "rate_limited_with_retry_after": self.retry_after,
            "error_rate": round((failed - self.rate_limited) / total, 6) if total else 0.0,
            "rate_limited_rate": round(self.rate_limited / total, 6) if total else 0.0,
            "estimated_token_requests": self.estimated_token_requests,
        }

    def error_summary(self) -> list[JSONObject]:
        """Failures by status and error code, most frequent first."""
        rows = sorted(self.errors.items(), key=lambda item: (-item[1], item[0]))
        return [{"status": s, "code": c, "count": n} for (s, c), n in rows]

    def metric_summary(self) -> JSONObject:
        """``ttft_ms`` ... ``output_tokens_per_s`` (and ``ttfb_ms``) statistics."""
        return {key: self.histograms[key].stats() for key in ALL_METRIC_KEYS}

    def throughput(self, duration_s: float) -> JSONObject:
        """Aggregate rates over a run of ``duration_s`` seconds."""
        if duration_s <= 0:
            return {"duration_s": 0.0, "requests_per_s": 0.0, "output_tokens_per_s": 0.0}
        return {
            "duration_s": round(duration_s, 3),
            "requests_per_s": round(self.ok / duration_s, 3),
            "output_tokens_per_s": round(self.output_tokens / duration_s, 3),
        }

    def summary(self, duration_s: float) -> JSONObject:
        """One group's part of the summary."""
        return {
            "requests": self.request_summary(),
            "errors": self.error_summary(),
            "tokens": {"output": self.output_tokens, "prompt": self.prompt_tokens},
            "throughput": self.throughput(duration_s),
            "metrics": self.metric_summary(),
        }


_SERIES_FIELDS = ("requests", "ok", "output_tokens", "rate_limited", "errors")


@dataclass(slots=True)
class TimeSeries:
    """Per-second counts keyed by the wall-clock second a request started in (sums merge)."""

    buckets: dict[int, list[int]] = field(default_factory=dict)
    users: dict[int, int] = field(default_factory=dict)

    def add(self, m: RequestMetrics) -> None:
        """Count one request in its second."""
        row = self.buckets.setdefault(int(m.wall_start_s), [0, 0, 0, 0, 0])
        row[0] += 1
        if m.ok:
            row[1] += 1
            row[2] += m.output_tokens
        elif m.rate_limited:
            row[3] += 1
        else:
            row[4] += 1

    def sample_users(self, wall_s: float, users: int) -> None:
        """Record the running user count (sampled once a second on the master)."""
        self.users[int(wall_s)] = users

    def merge(self, other: TimeSeries) -> None:
        """Add another process's counts."""
        for second, row in other.buckets.items():
            mine = self.buckets.setdefault(second, [0, 0, 0, 0, 0])
            for i, value in enumerate(row):
                mine[i] += value
        self.users.update(other.users)

    def to_wire(self) -> JSONObject:
        """A JSON-ready form (keys as strings)."""
        return {
            "buckets": {str(k): v for k, v in self.buckets.items()},
            "users": {str(k): v for k, v in self.users.items()},
        }

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> TimeSeries:
        """The series :meth:`to_wire` described."""
        return cls(
            {int(k): list(v) for k, v in data["buckets"].items()},
            {int(k): int(v) for k, v in data["users"].items()},
        )

    def rows(self, start_s: float) -> list[JSONObject]:
        """One row per second from the run start, gaps filled with zeros."""
        seconds = set(self.buckets) | set(self.users)
        if not seconds:
            return []
        first = int(start_s) if start_s > 0 else min(seconds)
        out: list[JSONObject] = []
        for second in range(min(first, min(seconds)), max(seconds) + 1):
            row = self.buckets.get(second, [0, 0, 0, 0, 0])
            entry: JSONObject = {"t": second - first, **dict(zip(_SERIES_FIELDS, row, strict=True))}
            entry["users"] = self.users.get(second)
            out.append(entry)
        return out


@dataclass(slots=True)
class RateStats:
    """The open-model generator's own account: requests due, started on time, skipped, lag."""

    due: int = 0
    started: int = 0
    skipped: int = 0
    lag: Histogram = field(default_factory=Histogram)

    def merge(self, other: RateStats) -> None:
        """Add another process's account."""
        self.due += other.due
        self.started += other.started
        self.skipped += other.skipped
        self.lag.merge(other.lag)

    def to_wire(self) -> JSONObject:
        """A JSON-ready form."""
        return {"counts": [self.due, self.started, self.skipped], "lag": self.lag.to_wire()}

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> RateStats:
        """The account :meth:`to_wire` described."""
        due, started, skipped = data["counts"]
        return cls(due, started, skipped, Histogram.from_wire(data["lag"]))


@dataclass(slots=True)
class LoadStats:
    """Everything one process measured: groups of metrics, the time series, the generator's account
    and the rate-limit probes' raw records. Workers send it in deltas; the master merges."""

    groups: dict[str, Metrics] = field(default_factory=dict)
    series: TimeSeries = field(default_factory=TimeSeries)
    rate: RateStats = field(default_factory=RateStats)
    probes: list[JSONObject] = field(default_factory=list)
    goodput_met: int = 0

    def add(self, group: str, m: RequestMetrics, *, good: bool = False) -> None:
        """Count one request in ``group`` and in the time series."""
        metrics = self.groups.get(group)
        if metrics is None:
            metrics = self.groups[group] = Metrics()
        metrics.add(m)
        self.series.add(m)
        self.goodput_met += good

    def merge(self, other: LoadStats) -> None:
        """Add another process's measurements."""
        for name, metrics in other.groups.items():
            self.groups.setdefault(name, Metrics()).merge(metrics)
        self.series.merge(other.series)
        self.rate.merge(other.rate)
        self.probes.extend(other.probes)
        self.goodput_met += other.goodput_met

    def overall(self) -> Metrics:
        """All groups together."""
        total = Metrics()
        for metrics in self.groups.values():
            total.merge(metrics)
        return total

    def to_wire(self) -> JSONObject:
        """A JSON-ready form for ``report_to_master``."""
        return {
            "groups": {k: v.to_wire() for k, v in self.groups.items()},
            "series": self.series.to_wire(),
            "rate": self.rate.to_wire(),
            "probes": self.probes,
            "goodput_met": self.goodput_met,
        }

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> LoadStats:
        """The measurements :meth:`to_wire` described."""
        return cls(
            groups={k: Metrics.from_wire(v) for k, v in data["groups"].items()},
            series=TimeSeries.from_wire(data["series"]),
            rate=RateStats.from_wire(data["rate"]),
            probes=list(data["probes"]),
            goodput_met=int(data["goodput_met"]),
        )


# --- ramp: the knee ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RampStep:
    """One concurrency level of a ramp and what it achieved."""

    users: int
    requests_per_s: float
    output_tokens_per_s: float
    latency_ms: float | None


def find_knee(
    steps: Sequence[RampStep], *, min_gain: float = 0.1, min_latency_rise: float = 0.2
) -> int | None:
    """Index of the step where throughput stopped rising while latency climbed, else None.

    The knee is the first step after which the next step's output throughput grows by less than
    ``min_gain`` (relative) while its latency grows by more than ``min_latency_rise``.
    """
    for i in range(len(steps) - 1):
        here, nxt = steps[i], steps[i + 1]
        if here.output_tokens_per_s <= 0 or here.latency_ms is None or nxt.latency_ms is None:
            continue
        gain = nxt.output_tokens_per_s / here.output_tokens_per_s - 1
        rise = nxt.latency_ms / here.latency_ms - 1 if here.latency_ms > 0 else 0.0
        if gain < min_gain and rise > min_latency_rise:
            return i
    return None
