"""Mergeable load-test measurements: histograms, counters per group, the time series, the knee.

:class:`Histogram` keeps HDR histograms (3 significant digits, integer microseconds for times) with
exact count, sum and max beside them; histograms are added, never their percentiles averaged, so
workers' raw histograms merge on the master (:meth:`LoadStats.to_wire` / :meth:`LoadStats.merge`).
:class:`Conformance` counts the protocol violations of the streams checked under load, by rule, with
one wire excerpt each. The time series keeps TTFT per second in a small log-bucket sketch
(:class:`Sketch`), since a full HDR histogram per second would cost ~200 KB each. :class:`Overhead`
holds the gateway overhead measured against the upstream harness (``gatecheck.load.overhead``).
Nothing here imports locust or gevent.
"""

from __future__ import annotations

import math
import operator
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

from gatecheck._types import JSONObject
from gatecheck.assemble import Violation
from gatecheck.load.timing import ALL_METRIC_KEYS, PERCENTILES, RequestMetrics

_SCALE = 1000
"""Histograms store value x 1000 as integers: microseconds for ms metrics, milli-tokens for rates."""
_HIGHEST = 3_600_000_000
"""One hour in microseconds: larger values are clamped (and still counted)."""
_DIGITS = 3
_PENDING_LIMIT = 200_000
_CDF_POINTS = (*range(0, 100, 2), 99, 99.5, 99.9, 100)
_NS_PER_US = 1_000
_HALF_US = 500
NOT_LOGGED = "the harness does not log every token write: start it with gatecheck upstream --log-writes"


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
    "usage_requests",
    "usage_differs",
    "usage_tokens",
    "counted_events",
)
"""The additive counters of :class:`Metrics` (merged by sum, sent by name)."""
MAX_ERROR_CODES = 50
"""Distinct (status, code) rows kept; beyond them a code counts as ``other`` (a target that puts a
request id in its error code must not grow the table, locust's failures or the summary)."""
OTHER_CODE = "other"


def _count_error(errors: Counter[tuple[int, str]], key: tuple[int, str], n: int = 1) -> None:
    if key not in errors and len(errors) >= MAX_ERROR_CODES:
        key = (key[0], OTHER_CODE)
    errors[key] += n


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
    usage_requests: int = 0
    usage_differs: int = 0
    usage_tokens: int = 0
    counted_events: int = 0
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
            _count_error(self.errors, (m.status, m.error_code or ""))
            return
        self.ok += 1
        self.output_tokens += m.output_tokens
        self.prompt_tokens += m.prompt_tokens or 0
        self.estimated_token_requests += m.tokens_estimated
        if m.streamed and not m.tokens_estimated and m.output_events:
            self.usage_requests += 1
            self.usage_differs += m.output_tokens != m.output_events
            self.usage_tokens += m.output_tokens
            self.counted_events += m.output_events
        for key in ("ttft_ms", "ttfc_ms", "tpot_ms", "e2e_ms", "output_tokens_per_s"):
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
        for row, n in other.errors.items():
            _count_error(self.errors, row, n)
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
        for s, c, n in data["errors"]:
            _count_error(m.errors, (int(s), str(c)), int(n))
        first, last = data["span"]
        m.first_start_s = math.inf if first is None else float(first)
        m.last_start_s = float(last)
        return m

    def failed(self) -> int:
        """Requests that did not succeed (429s included)."""
        return self.requests - self.ok

    def request_summary(self) -> JSONObject:
        """The ``requests`` object of the summary (no request at all: no success either)."""
        failed = self.failed()
        total = self.requests
        return {
            "total": total,
            "ok": self.ok,
            "failed": failed,
            "rate_limited": self.rate_limited,
            "rate_limited_with_retry_after": self.retry_after,
            "success_rate": round(self.ok / total, 6) if total else 0.0,
            "error_rate": round((failed - self.rate_limited) / total, 6) if total else 0.0,
            "rate_limited_rate": round(self.rate_limited / total, 6) if total else 0.0,
            "estimated_token_requests": self.estimated_token_requests,
        }

    def token_summary(self) -> JSONObject:
        """The ``tokens`` object: totals, the share of estimated counts, usage against counted events."""
        both = self.usage_requests
        return {
            "output": self.output_tokens,
            "prompt": self.prompt_tokens,
            "estimated_share": round(self.estimated_token_requests / self.ok, 6) if self.ok else 0.0,
            "usage_vs_events": {
                "requests": both,
                "differ": self.usage_differs,
                "usage_tokens": self.usage_tokens,
                "counted_events": self.counted_events,
                "tokens_per_event": round(self.usage_tokens / self.counted_events, 4) if both else None,
            },
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
            "tokens": self.token_summary(),
            "throughput": self.throughput(duration_s),
            "metrics": self.metric_summary(),
        }


class Sketch:
    """A mergeable distribution in log buckets 2% wide (quantiles within 1%), for one second of the
    time series: a few hundred bytes where an HDR histogram of the same range takes ~200 KB."""

    __slots__ = ("counts",)
    _BASE = math.log(1.02)

    def __init__(self, counts: dict[int, int] | None = None) -> None:
        self.counts: dict[int, int] = counts or {}

    def add(self, value_ms: float) -> None:
        """Count one positive value (ms); values under 1 µs count as 1 µs."""
        key = round(math.log(max(value_ms, 0.001)) / self._BASE)
        self.counts[key] = self.counts.get(key, 0) + 1

    def merge(self, other: Sketch) -> None:
        """Add another sketch's counts."""
        for key, n in other.counts.items():
            self.counts[key] = self.counts.get(key, 0) + n

    def quantile(self, q: float) -> float | None:
        """The value at quantile ``q`` (0-1), None when empty."""
        total = sum(self.counts.values())
        if not total:
            return None
        rank, seen = q * (total - 1), 0
        for key in sorted(self.counts):  # the loop stops at the bucket holding the rank
            seen += self.counts[key]
            if seen > rank:
                break
        return round(math.exp(key * self._BASE), 3)


_SERIES_FIELDS = ("requests", "ok", "output_tokens", "rate_limited", "errors")


@dataclass(slots=True)
class TimeSeries:
    """Per-second counts keyed by the wall-clock second a request started in (sums merge), with
    the TTFT of that second's successful streams."""

    buckets: dict[int, list[int]] = field(default_factory=dict)
    users: dict[int, int] = field(default_factory=dict)
    ttft: dict[int, Sketch] = field(default_factory=dict)

    def add(self, m: RequestMetrics) -> None:
        """Count one request in its second."""
        second = int(m.wall_start_s)
        row = self.buckets.setdefault(second, [0, 0, 0, 0, 0])
        row[0] += 1
        if m.ok:
            row[1] += 1
            row[2] += m.output_tokens
            if m.ttft_ms is not None:
                self.ttft.setdefault(second, Sketch()).add(m.ttft_ms)
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
        for second, sketch in other.ttft.items():
            self.ttft.setdefault(second, Sketch()).merge(sketch)
        self.users.update(other.users)

    def to_wire(self) -> JSONObject:
        """A JSON-ready form (keys as strings)."""
        return {
            "buckets": {str(k): v for k, v in self.buckets.items()},
            "users": {str(k): v for k, v in self.users.items()},
            "ttft": {str(k): [[b, n] for b, n in v.counts.items()] for k, v in self.ttft.items()},
        }

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> TimeSeries:
        """The series :meth:`to_wire` described."""
        return cls(
            {int(k): list(v) for k, v in data["buckets"].items()},
            {int(k): int(v) for k, v in data["users"].items()},
            {int(k): Sketch({int(b): int(n) for b, n in v}) for k, v in data["ttft"].items()},
        )

    def rows(self, start_s: float, end_s: float | None = None) -> list[JSONObject]:
        """One row per second from the run start, gaps filled with zeros.

        ``span_s`` is how much of that second lies inside the run (the first and last seconds are
        usually partial: a plot of rates must not read their counts as whole seconds).
        """
        seconds = set(self.buckets) | set(self.users)
        if not seconds:
            return []
        first = int(start_s) if start_s > 0 else min(seconds)
        end = end_s if end_s is not None else max(seconds) + 1
        out: list[JSONObject] = []
        for second in range(min(first, min(seconds)), max(seconds) + 1):
            row = self.buckets.get(second, [0, 0, 0, 0, 0])
            entry: JSONObject = {"t": second - first, **dict(zip(_SERIES_FIELDS, row, strict=True))}
            entry["users"] = self.users.get(second)
            sketch = self.ttft.get(second, Sketch())
            entry["ttft_p50_ms"] = sketch.quantile(0.5)
            entry["ttft_p95_ms"] = sketch.quantile(0.95)
            span = min(second + 1, end) - max(second, start_s if start_s > 0 else second)
            entry["span_s"] = round(min(max(span, 0.0), 1.0), 3)
            out.append(entry)
        return out


@dataclass(slots=True)
class RuleCount:
    """One violation rule under load: streams that broke it, occurrences, the first one's words."""

    streams: int
    occurrences: int
    message: str
    excerpt: str


@dataclass(slots=True)
class Conformance:
    """The assembler's violation rules on the streams checked under load (``--conformance-sample``)."""

    checked: int = 0
    with_violations: int = 0
    rules: dict[str, RuleCount] = field(default_factory=dict)

    def add(self, violations: Sequence[Violation]) -> None:
        """Count one checked stream (its violations' messages and bytes already redacted)."""
        self.checked += 1
        if not violations:
            return
        self.with_violations += 1
        seen: set[str] = set()
        for v in violations:
            count = self.rules.get(v.rule)
            if count is None:
                text = v.raw.decode("utf-8", "replace")
                count = self.rules[v.rule] = RuleCount(0, 0, v.message, text)
            count.occurrences += 1
            if v.rule not in seen:
                count.streams += 1
                seen.add(v.rule)

    def merge(self, other: Conformance) -> None:
        """Add another process's counts (the first excerpt of a rule stays)."""
        self.checked += other.checked
        self.with_violations += other.with_violations
        for rule, count in other.rules.items():
            mine = self.rules.get(rule)
            if mine is None:
                self.rules[rule] = RuleCount(count.streams, count.occurrences, count.message, count.excerpt)
            else:
                mine.streams += count.streams
                mine.occurrences += count.occurrences

    def to_wire(self) -> JSONObject:
        """A JSON-ready form."""
        rules = {r: [c.streams, c.occurrences, c.message, c.excerpt] for r, c in self.rules.items()}
        return {"checked": self.checked, "with_violations": self.with_violations, "rules": rules}

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Conformance:
        """The counts :meth:`to_wire` described."""
        rules = {r: RuleCount(int(a), int(b), str(m), str(e)) for r, (a, b, m, e) in data["rules"].items()}
        return cls(int(data["checked"]), int(data["with_violations"]), rules)

    def summary(self, sample: float) -> JSONObject:
        """The summary's ``conformance`` section: rules by the number of streams that broke them."""
        rows = sorted(self.rules.items(), key=lambda item: (-item[1].streams, item[0]))
        return {
            "sample": sample,
            "checked": self.checked,
            "with_violations": self.with_violations,
            "violation_rate": round(self.with_violations / self.checked, 6) if self.checked else None,
            "rules": [
                {
                    "rule": rule,
                    "streams": c.streams,
                    "occurrences": c.occurrences,
                    "message": c.message,
                    "excerpt": c.excerpt,
                }
                for rule, c in rows
            ],
        }


@dataclass(slots=True)
class Overhead:
    """Gateway overhead measured so far (mergeable: histograms add, counts sum, reasons unite)."""

    first: Histogram = field(default_factory=Histogram)
    chunks: Histogram = field(default_factory=Histogram)
    matched: int = 0
    unmatched: int = 0
    chunk_mismatch: int = 0
    negative: int = 0
    poll_errors: int = 0
    measuring: int = 0
    """Processes that passed the clock check and measure."""
    log_writes: bool | None = None
    reasons: list[str] = field(default_factory=list)
    """Why a process does not measure (one line each, distinct)."""

    def not_measured(self, reason: str) -> None:
        """A process cannot measure: say why once."""
        if reason not in self.reasons:
            self.reasons.append(reason)

    def record(self, client_ns: list[int], first_write_ns: int, writes_ns: list[int] | None) -> None:
        """One matched request: its first-token overhead and, when the writes are known and line up
        one to one, every chunk's. Negative differences (only stamps off by a clock step could give
        one) are counted and recorded as 0."""
        self.matched += 1
        self.first.record_scaled(self._us([client_ns[0] - first_write_ns]))
        if writes_ns is None:
            return
        if len(writes_ns) != len(client_ns):
            self.chunk_mismatch += 1
            return
        self.chunks.record_scaled(self._us(list(map(operator.sub, client_ns, writes_ns))))

    def _us(self, deltas_ns: list[int]) -> list[int]:
        """Differences in ns as whole microseconds (the histograms' unit), negatives counted, as 0."""
        if min(deltas_ns) < 0:
            self.negative += sum(d < 0 for d in deltas_ns)
            deltas_ns = [max(d, 0) for d in deltas_ns]
        return [(d + _HALF_US) // _NS_PER_US for d in deltas_ns]

    def merge(self, other: Overhead) -> None:
        """Add another process's measurements."""
        self.first.merge(other.first)
        self.chunks.merge(other.chunks)
        self.matched += other.matched
        self.unmatched += other.unmatched
        self.chunk_mismatch += other.chunk_mismatch
        self.negative += other.negative
        self.poll_errors += other.poll_errors
        self.measuring += other.measuring
        if other.log_writes is not None:
            self.log_writes = other.log_writes and self.log_writes is not False
        for reason in other.reasons:
            self.not_measured(reason)

    def left_out(self) -> Overhead:
        """No measurement, the same setup (a stats reset)."""
        return Overhead(measuring=self.measuring, log_writes=self.log_writes, reasons=list(self.reasons))

    def to_wire(self) -> JSONObject:
        """A JSON-ready form for the worker -> master report."""
        counts = [self.matched, self.unmatched, self.chunk_mismatch, self.negative, self.poll_errors]
        return {
            "first": self.first.to_wire(),
            "chunks": self.chunks.to_wire(),
            "counts": [*counts, self.measuring],
            "log_writes": self.log_writes,
            "reasons": self.reasons,
        }

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Overhead:
        """The measurements :meth:`to_wire` described."""
        matched, unmatched, mismatch, negative, errors, measuring = (int(n) for n in data["counts"])
        return cls(
            Histogram.from_wire(data["first"]),
            Histogram.from_wire(data["chunks"]),
            matched,
            unmatched,
            mismatch,
            negative,
            errors,
            measuring,
            data["log_writes"],
            [str(r) for r in data["reasons"]],
        )

    def reason(self) -> str | None:
        """Why nothing was measured, None when something was."""
        if self.matched:
            return None
        if self.reasons:
            return "; ".join(self.reasons)
        if not self.measuring:
            return "no load process started measuring it (see the run's log)"
        if self.unmatched:
            return "no streamed request was found in the harness's log (does the model route to it?)"
        return "no streamed request succeeded"

    def section(self, harness: str) -> JSONObject:
        """The summary's ``upstream`` section (the figures go in ``metrics``)."""
        chunks_reason = None
        if self.log_writes is False:
            chunks_reason = NOT_LOGGED
        elif self.matched and not self.chunks.count:
            chunks_reason = "no request's chunks lined up one to one with the harness's writes"
        return {
            "harness": harness,
            "measured": bool(self.matched),
            "reason": self.reason(),
            "chunks_reason": chunks_reason,
            "matched": self.matched,
            "unmatched": self.unmatched,
            "chunk_mismatch": self.chunk_mismatch,
            "negative": self.negative,
            "poll_errors": self.poll_errors,
            "log_writes": self.log_writes,
            "clock": "one host: the client's and the harness's CLOCK_MONOTONIC stamps, subtracted",
        }

    def warnings(self) -> list[str]:
        """What the run's warnings say about the overhead."""
        found = []
        reason = self.reason()
        if reason is not None:
            found.append(f"gateway overhead not measured: {reason}")
        if self.matched and self.unmatched:
            found.append(
                f"{self.unmatched} successful streams had no harness record: the gateway did not send "
                "them to the harness (another provider, a cache?) or the harness log dropped them"
            )
        if self.negative:
            found.append(f"{self.negative} overhead samples were negative (recorded as 0): did a clock step?")
        if self.poll_errors:
            found.append(f"the harness's log could not be read {self.poll_errors} times")
        return found


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
    conformance: Conformance = field(default_factory=Conformance)
    excluded: int = 0
    """Requests that started in the warm-up (or before a stats reset): sent, not counted."""
    overhead: Overhead = field(default_factory=Overhead)
    """Gateway overhead against the upstream harness (``--upstream``; ``gatecheck.load.overhead``)."""

    def add(self, group: str, m: RequestMetrics, *, good: bool = False) -> None:
        """Count one request in ``group`` and in the time series (and its violations, if checked)."""
        metrics = self.groups.get(group)
        if metrics is None:
            metrics = self.groups[group] = Metrics()
        metrics.add(m)
        self.series.add(m)
        self.goodput_met += good
        if m.checked:
            self.conformance.add(m.violations)

    def merge(self, other: LoadStats) -> None:
        """Add another process's measurements."""
        for name, metrics in other.groups.items():
            self.groups.setdefault(name, Metrics()).merge(metrics)
        self.series.merge(other.series)
        self.rate.merge(other.rate)
        self.probes.extend(other.probes)
        self.goodput_met += other.goodput_met
        self.conformance.merge(other.conformance)
        self.excluded += other.excluded
        self.overhead.merge(other.overhead)

    def left_out(self) -> LoadStats:
        """Empty measurements that remember how many requests these held (a stats reset)."""
        return LoadStats(
            excluded=self.excluded + sum(m.requests for m in self.groups.values()),
            overhead=self.overhead.left_out(),
        )

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
            "conformance": self.conformance.to_wire(),
            "excluded": self.excluded,
            "overhead": self.overhead.to_wire(),
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
            conformance=Conformance.from_wire(data["conformance"]),
            excluded=int(data["excluded"]),
            overhead=Overhead.from_wire(data["overhead"]),
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
