"""The load run's JSON summary: its sections, the whole document, and reading and writing it.

The summary's format is ``schemas/gatecheck.load-summary.json`` (every file is validated against it
on the way out and on the way in); the figures come from a merged :class:`LoadStats`.
Nothing here imports locust or gevent.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gatecheck._types import JSONObject
from gatecheck.load.limits import ProbePlan, ProbeRecord, verdict
from gatecheck.load.options import LoadSettings, public_url
from gatecheck.load.stats import LoadStats, Metrics, RampStep, RateStats, find_knee
from gatecheck.load.timing import ALL_METRIC_KEYS, OVERHEAD_KEYS

SUMMARY_SCHEMA = "gatecheck.load-summary"
SUMMARY_VERSION = 2


# --- the summary file --------------------------------------------------------------------------


def iso(ts: float) -> str:
    """An ISO-8601 UTC timestamp."""
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="seconds")


def write_summary(summary: JSONObject, path: Path) -> Path:
    """Validate ``summary`` against ``schemas/gatecheck.load-summary.json`` and write it."""
    from gatecheck.schemas import default_store

    issues = default_store().issues(SUMMARY_SCHEMA, summary)
    if issues:
        raise ValueError(f"load summary does not match its schema: {issues[0]}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def read_summary(path: Path) -> JSONObject:
    """Read a summary written by :func:`write_summary`, checking it against the schema."""
    from gatecheck.errors import ConfigError
    from gatecheck.schemas import default_store

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError("summary", str(path), f"a readable load summary JSON file ({exc})") from None
    issues = default_store().issues(SUMMARY_SCHEMA, data)
    if issues:
        raise ConfigError("summary", str(path), f"a file matching {SUMMARY_SCHEMA} ({issues[0]})")
    result: JSONObject = data
    return result


# --- summary sections --------------------------------------------------------------------------

_LAG_WARN_MS = 50.0
_ACHIEVED_WARN = 0.95


def rate_section(rate: RateStats, requested_per_s: float, duration_s: float) -> JSONObject:
    """The open-model generator's account: requested vs achieved rate, schedule lag, a warning."""
    achieved = rate.started / duration_s if duration_s > 0 else 0.0
    lag = rate.lag.stats()
    warning = None
    if rate.skipped:
        warning = (
            f"{rate.skipped} of {rate.due} requests skipped: the in-flight cap was reached "
            "(or the run was backing off after connection failures)"
        )
    elif lag["p99"] is not None and lag["p99"] > _LAG_WARN_MS:
        warning = f"the generator fell behind: schedule lag p99 {lag['p99']} ms"
    elif rate.due and achieved < requested_per_s * _ACHIEVED_WARN:
        warning = f"achieved {achieved:.2f} requests/s of the {requested_per_s:g} requested"
    return {
        "requested_per_s": requested_per_s,
        "achieved_per_s": round(achieved, 3),
        "due": rate.due,
        "started": rate.started,
        "skipped": rate.skipped,
        "lag_ms": lag,
        "warning": warning,
    }


def ramp_group(users: int) -> str:
    """The metrics group of one ramp step."""
    return f"ramp:{users}"


def ramp_section(groups: Mapping[str, Metrics], levels: Sequence[int], step_s: float) -> JSONObject:
    """Throughput and latency per concurrency level, and the knee where they part ways."""
    rows: list[JSONObject] = []
    steps: list[RampStep] = []
    for users in levels:
        metrics = groups.get(ramp_group(users), Metrics())
        e2e = metrics.histograms["e2e_ms"].stats()
        ttft = metrics.histograms["ttft_ms"].stats()
        step = RampStep(users, metrics.ok / step_s, metrics.output_tokens / step_s, e2e["p50"])
        steps.append(step)
        rows.append(
            {
                "users": users,
                "requests": metrics.requests,
                "requests_per_s": round(step.requests_per_s, 3),
                "output_tokens_per_s": round(step.output_tokens_per_s, 3),
                "ttft_p50_ms": ttft["p50"],
                "ttft_p95_ms": ttft["p95"],
                "e2e_p50_ms": e2e["p50"],
                "e2e_p95_ms": e2e["p95"],
                "error_rate": metrics.request_summary()["error_rate"],
            }
        )
    knee = find_knee(steps)
    return {
        "step_s": step_s,
        "steps": rows,
        "knee": None if knee is None else _knee_json(steps[knee], steps[knee + 1]),
    }


def _knee_json(knee: RampStep, after: RampStep) -> JSONObject:
    gain = (after.output_tokens_per_s / knee.output_tokens_per_s - 1) * 100
    rise = ((after.latency_ms or 0.0) / (knee.latency_ms or 1.0) - 1) * 100
    return {
        "users": knee.users,
        "output_tokens_per_s": round(knee.output_tokens_per_s, 3),
        "reason": f"from {knee.users} to {after.users} users output throughput rose {gain:.1f}% "
        f"while E2E p50 rose {rise:.1f}%",
    }


def goodput_section(
    met: int, overall: Metrics, targets: Mapping[str, float], duration_s: float
) -> JSONObject | None:
    """Requests meeting every goodput target (None when no targets were set)."""
    if not targets:
        return None
    return {
        "targets": dict(targets),
        "met": met,
        "total": overall.requests,
        "ratio": round(met / overall.requests, 6) if overall.requests else 0.0,
        "requests_per_s": round(met / duration_s, 3) if duration_s > 0 else 0.0,
    }


def limits_windows(plan: ProbePlan, records: Sequence[ProbeRecord]) -> list[float]:
    """Units admitted in each window of a probe's sustain phase (requests for RPM, tokens for TPM),
    windows counted from the retry that starts it: the series the report plots against the limit."""
    span = sorted((r for r in records if r.probe == plan.name and r.phase in ("retry", "sustain")), key=_t)
    if not span:
        return []
    origin = span[0].t
    windows = [0.0] * plan.windows
    for record in span:
        index = int((record.t - origin) // plan.window_s)
        if record.admitted and index < plan.windows:
            windows[index] += 1 if plan.kind == "rpm" else record.tokens
    return windows


def _t(record: ProbeRecord) -> float:
    return record.t


def build_summary(
    stats: LoadStats,
    run: Mapping[str, Any],
    *,
    start_s: float,
    end_s: float,
    goodput_targets: Mapping[str, float] | None = None,
    sections: Mapping[str, Any] | None = None,
    warnings: Sequence[str] = (),
    conformance_sample: float = 0.0,
    upstream: str | None = None,
) -> JSONObject:
    """The whole summary: run facts, overall and per-group figures, series, distributions.

    ``sections`` fills ``rate``, ``ramp``, ``limits``, ``slo`` and ``baseline`` (null otherwise);
    ``upstream`` (the harness's public URL) adds the gateway overhead (``metrics.overhead_ms``,
    ``metrics.chunk_overhead_ms``, their distributions and the ``upstream`` section);
    ``outcome`` is added by the plugin once the gates have run.
    """
    from gatecheck import __version__

    duration = max(end_s - start_s, 0.0)
    overall = stats.overall()
    body = overall.summary(duration)
    summary: JSONObject = {
        "schema": SUMMARY_SCHEMA,
        "version": SUMMARY_VERSION,
        "tool": {"name": "gatecheck", "version": __version__},
        "run": {
            **run,
            "started": iso(start_s),
            "finished": iso(end_s),
            "duration_s": round(duration, 3),
            "excluded_requests": stats.excluded,
        },
        **body,
        "goodput": goodput_section(stats.goodput_met, overall, goodput_targets or {}, duration),
        "scenarios": {name: m.summary(duration) for name, m in sorted(stats.groups.items())},
        "timeseries": stats.series.rows(start_s, end_s),
        "distributions": {
            "ttft_ms": overall.histograms["ttft_ms"].cdf(),
            "itl_ms": overall.histograms["itl_ms"].cdf(),
            "e2e_ms": overall.histograms["e2e_ms"].cdf(),
        },
        "rate": None,
        "ramp": None,
        "limits": None,
        "slo": None,
        "baseline": None,
        "conformance": stats.conformance.summary(conformance_sample),
        "upstream": None,
        "warnings": list(warnings),
    }
    if upstream is not None:
        overhead = stats.overhead
        for key, hist in (("overhead_ms", overhead.first), ("chunk_overhead_ms", overhead.chunks)):
            summary["metrics"][key] = hist.stats()
            summary["distributions"][key] = hist.cdf()
        summary["upstream"] = overhead.section(upstream)
        summary["warnings"] += overhead.warnings()
    summary.update(sections or {})
    summary["outcome"] = outcome_section(summary, None, early_stop=None, budget=None)
    return summary


def scenario_sections(stats: LoadStats, settings: LoadSettings, duration_s: float) -> dict[str, Any]:
    """The sections of the run's scenario: ``rate``, ``ramp`` or ``limits`` (none for ``steady``)."""
    sections: dict[str, Any] = {}
    if settings.scenario == "rate":
        sections["rate"] = rate_section(stats.rate, settings.request_rate, duration_s)
    if settings.scenario == "ramp":
        sections["ramp"] = ramp_section(stats.groups, settings.ramp.levels(), settings.ramp.step_s)
    if settings.scenario == "limits":
        plans = [plan for key in settings.limits_keys for plan in settings.probe_plans(key)]
        records = [ProbeRecord.from_json(r) for r in stats.probes]
        section = verdict(plans, records, settings.tolerance)
        for plan, probe in zip(plans, section["probes"], strict=True):
            probe["sustain_windows"] = limits_windows(plan, records)
        sections["limits"] = section
    return sections


def run_summary(
    stats: LoadStats,
    settings: LoadSettings,
    *,
    name: str,
    users: int | None,
    spawn_rate: float | None,
    workers: int,
    start_s: float,
    end_s: float,
) -> JSONObject:
    """A run's summary from its settings and everything merged so far (without gates)."""
    run = {
        "name": name,
        "scenario": settings.scenario,
        "host": public_url(settings.host),
        "model": settings.model,
        "dialect": settings.dialect,
        "stream": settings.stream and settings.scenario != "limits",
        "users": users,
        "spawn_rate": spawn_rate,
        "workers": workers,
        "prompt_tokens": str(settings.prompt_tokens),
        "output_tokens": str(settings.output_tokens),
        "dataset": os.path.basename(settings.dataset_path) if settings.dataset_path else None,
        "seed": settings.seed,
        "options": settings.describe(),
    }
    sections = scenario_sections(stats, settings, max(end_s - start_s, 1e-9))
    warnings = [sections["rate"]["warning"]] if sections.get("rate", {}).get("warning") else []
    if stats.excluded:
        warnings.append(f"{stats.excluded} requests of the warm-up (or before a stats reset) are not counted")
    targets = settings.slo.goodput_targets if settings.slo else None
    return build_summary(
        stats,
        run,
        start_s=start_s,
        end_s=end_s,
        goodput_targets=targets,
        sections=sections,
        warnings=warnings,
        conformance_sample=settings.conformance_sample,
        upstream=public_url(settings.upstream) if settings.upstream else None,
    )


# --- the outcome -------------------------------------------------------------------------------


def headline(summary: Mapping[str, Any]) -> str:
    """How many requests succeeded, and what became of the others: the line people read first."""
    req = summary["requests"]
    total, ok = req["total"], req["ok"]
    if total == 0:
        return "NO REQUEST COMPLETED: nothing was measured"
    errors = req["failed"] - req["rate_limited"]
    share = f"{ok / total:.1%}"
    line = f"{ok} of {total} requests succeeded ({share}); 429: {req['rate_limited']}, errors: {errors}"
    return ("NO REQUEST SUCCEEDED: " if ok == 0 else "") + line


def outcome_section(
    summary: Mapping[str, Any], gates_failed: bool | None, *, early_stop: str | None, budget: str | None
) -> JSONObject:
    """The run's verdict and exit code, with the reasons (the ``outcome`` section).

    2: the run stopped early or completed no request (nothing measured); 1: no request succeeded,
    or a gate (SLO, baseline, limits) failed, or, without any gate, some request failed; else 0.
    """
    req = summary["requests"]
    reasons: list[str] = []
    code = 0
    if early_stop is not None:
        reasons.append(f"stopped early: {early_stop}")
        code = 2
    elif req["total"] == 0:
        reasons.append("no request completed: nothing was measured (is the target answering?)")
        code = 2
    else:
        if req["ok"] == 0:
            reasons.append(f"no request succeeded: {_failure_mix(summary)}")
        if gates_failed:
            reasons.append("a gate failed (SLO, baseline or limits: see the lines above)")
        if gates_failed is None and req["failed"]:
            reasons.append(f"{req['failed']} requests failed and no gate was given (--slo decides otherwise)")
        code = 1 if reasons else 0
    slo = summary.get("slo")
    return {
        "verdict": "pass" if code == 0 else ("stopped" if code == 2 else "fail"),
        "exit_code": code,
        "headline": headline(summary),
        "reasons": reasons,
        "slo_passed": None if slo is None else slo["passed"],
        "stop": early_stop or budget,
    }


def _failure_mix(summary: Mapping[str, Any]) -> str:
    """The most frequent failures, e.g. ``429 RATE_LIMIT x 12, 200 stream-no-finish-reason x 3``."""
    rows = summary["errors"][:3]
    return ", ".join(f"{e['status']} {e['code']} x {e['count']}" for e in rows) or "none recorded"


def live_rows(stats: LoadStats) -> list[JSONObject]:
    """The web UI tab's rows: each metric's statistics so far (the master's merged histograms)."""
    overall = stats.overall()
    histograms = [(key, overall.histograms[key]) for key in ALL_METRIC_KEYS]
    if stats.overhead.matched:
        histograms += zip(OVERHEAD_KEYS, (stats.overhead.first, stats.overhead.chunks), strict=True)
    rows: list[JSONObject] = []
    for key, hist in histograms:
        figures = hist.stats()
        rows.append({"metric": key, **{k: v if v is not None else "" for k, v in figures.items()}})
    return rows
