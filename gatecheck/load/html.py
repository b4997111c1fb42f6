"""The load run's human outputs: a terminal table and a self-contained HTML report page.

Both read only the summary (``gatecheck.load.summary.build_summary``), so a saved summary can be
rendered again later. The page comes from a jinja2 template (``templates/load_report.html.j2``,
autoescaped: every target-provided string is text, never markup); plots are made with matplotlib's
Agg backend and embedded as base64 PNGs: no network, no external files. The page opens with a
banner (verdict, how many requests succeeded, the SLO result, a loud warning when none did).

Plot rules: every linear axis starts at 0 (no negative axes); per-second series leave out seconds
only partly inside the run (``span_s`` < 1: the first and last are usually partial and would read
as a drop); the ITL histogram has log-spaced bins on a log axis so the tail (p99) is visible.
No locust here.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gatecheck.load.timing import ALL_METRIC_KEYS, ERROR_CODES, OVERHEAD_KEYS, PERCENTILES

_STAT_COLUMNS = ("count", "mean", *(f"p{p}" for p in PERCENTILES), "max")
_BINS = 40
_LABELS = {
    "ttft_ms": "TTFT (ms)",
    "ttfc_ms": "TTFC (ms)",
    "itl_ms": "ITL (ms)",
    "tpot_ms": "TPOT (ms)",
    "e2e_ms": "E2E (ms)",
    "output_tokens_per_s": "output tok/s per request",
    "ttfb_ms": "TTFB (ms)",
    "overhead_ms": "gateway overhead (ms)",
    "chunk_overhead_ms": "overhead per chunk (ms)",
}
_TEMPLATE = "load_report.html.j2"
_SMALLEST_GAP_MS = 0.001
"""The log axis of the ITL histogram starts here: gaps below (events of one packet) go in bin one."""


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def _metric_keys(summary: Mapping[str, Any]) -> list[str]:
    """The metrics this summary has (older summaries have no ``ttfc_ms``; overhead needs --upstream)."""
    return [k for k in (*ALL_METRIC_KEYS, *OVERHEAD_KEYS) if k in summary["metrics"]]


def _headline(summary: Mapping[str, Any]) -> str:
    outcome = summary.get("outcome")
    if outcome:
        return f"{outcome['verdict'].upper()}: {outcome['headline']}"
    req = summary["requests"]
    return f"{req['ok']} of {req['total']} requests succeeded"


def summary_table(summary: Mapping[str, Any]) -> str:
    """A plain-text table of the run for terminals: the headline, throughput, metrics, gates."""
    run, req, thr = summary["run"], summary["requests"], summary["throughput"]
    lines = [
        _headline(summary),
        f"gatecheck load: {run['scenario']} against {run['host']} ({run['model']}, {run['dialect']}, "
        f"{'stream' if run['stream'] else 'no stream'}), {thr['duration_s']:.1f} s",
        f"requests {req['total']}  ok {req['ok']}  failed {req['failed']} (429: {req['rate_limited']})  "
        f"error rate {req['error_rate']:.2%}  |  {thr['requests_per_s']:.2f} req/s  "
        f"{thr['output_tokens_per_s']:.1f} output tok/s",
        "",
        f"{'metric':<26}" + "".join(f"{c:>10}" for c in _STAT_COLUMNS),
    ]
    for key in _metric_keys(summary):
        stats = summary["metrics"][key]
        lines.append(f"{_LABELS[key]:<26}" + "".join(f"{_fmt(stats[c]):>10}" for c in _STAT_COLUMNS))
    lines += [f"error {e['status']} {e['code']}: {e['count']}" for e in summary["errors"]]
    lines += _upstream_lines(summary)
    lines += _conformance_lines(summary)
    lines += _gate_lines(summary)
    lines += [f"warning: {w}" for w in summary["warnings"]]
    return "\n".join(lines)


def _upstream_lines(summary: Mapping[str, Any]) -> list[str]:
    """What the gateway added against the upstream harness (``--upstream``), or why it is unknown."""
    section = summary.get("upstream")
    if not section:
        return []
    if not section["measured"]:
        return [f"gateway overhead: not measured: {section['reason']}"]
    line = (
        f"gateway overhead: {section['matched']} streams matched in the log of the harness at "
        f"{section['harness']}"
    )
    if section["chunks_reason"]:
        line += f"; per chunk: {section['chunks_reason']}"
    return [line]


def _conformance_line(summary: Mapping[str, Any]) -> str:
    section = summary.get("conformance")
    if section is None:
        return "conformance under load: not recorded in this summary"
    if not section["checked"]:
        return f"conformance under load: no stream checked (sample {section['sample']:g})"
    rate, sample = section["violation_rate"], section["sample"]
    return (
        f"conformance under load: {section['with_violations']} of {section['checked']} checked streams "
        f"broke a protocol rule (violation rate {rate:.2%}, sample {sample:g})"
    )


def _conformance_lines(summary: Mapping[str, Any]) -> list[str]:
    section = summary.get("conformance") or {"rules": []}
    return [_conformance_line(summary)] + [
        f"  violation {r['rule']}: {r['streams']} streams, {r['occurrences']} times" for r in section["rules"]
    ]


def _gate_lines(summary: Mapping[str, Any]) -> list[str]:
    lines: list[str] = []
    if summary.get("slo"):
        lines += [o["line"] for o in summary["slo"]["objectives"]]
    if summary.get("baseline"):
        lines += [r["line"] for r in summary["baseline"]["regressions"]] or ["baseline: no regression"]
    if summary.get("limits"):
        for p in summary["limits"]["probes"]:
            verdict = "ok" if p["passed"] else "FAIL: " + "; ".join(p["failures"])
            lines.append(
                f"limits {p['probe']}: {p['admitted_per_window']:g} per window / limit {p['limit']} "
                f"(ratio {p['ratio']:g}), first 429 at {_fmt(p['first_429_s'])} s, {verdict}"
            )
    if summary.get("ramp"):
        knee = summary["ramp"]["knee"]
        lines.append("ramp knee: " + (f"{knee['users']} users ({knee['reason']})" if knee else "not reached"))
    return lines


# --- plots -------------------------------------------------------------------------------------

Draw = Callable[[Any], None]


@dataclass(frozen=True, slots=True)
class Plot:
    """One plot of the page: its key (``data-plot``), title, caption and drawing function."""

    key: str
    title: str
    caption: str
    draw: Draw


def figure(draw: Draw) -> Any:
    """A matplotlib figure (Agg) with one axes drawn by ``draw``."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 3.2), dpi=100)
    draw(fig.add_subplot(1, 1, 1))
    fig.tight_layout()
    return fig


def _png(draw: Draw) -> str:
    buffer = io.BytesIO()
    figure(draw).savefig(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _from_zero(ax: Any, *, x: bool = True) -> None:
    """No negative axis: linear axes start at 0."""
    ax.set_ylim(bottom=0)
    if x:
        ax.set_xlim(left=0)


def _cdf_plot(points: Sequence[Sequence[float]], label: str) -> Draw:
    def draw(ax: Any) -> None:
        ax.step([p[0] for p in points], [p[1] for p in points], where="post")
        ax.set_xlabel(label)
        ax.set_ylabel("fraction of requests")
        ax.set_ylim(0, 1.02)
        ax.set_xlim(left=0)
        ax.grid(alpha=0.3)

    return draw


def _itl_histogram(points: Sequence[Sequence[float]]) -> Draw | None:
    """ITL histogram on a log axis from the CDF points: log-spaced bins from the smallest gap to the
    largest, so p99 and the max are on the plot; p50 and p99 marked."""
    import numpy as np

    values = np.array([p[0] for p in points], dtype=float)
    fractions = np.array([p[1] for p in points], dtype=float)
    if values.size == 0 or values.max() <= 0:
        return None
    low = max(float(values[values > 0].min()), _SMALLEST_GAP_MS)
    high = max(float(values.max()), low * 1.01)

    def draw(ax: Any) -> None:
        edges = np.geomspace(low, high, _BINS + 1)
        cumulative = np.interp(edges, values, fractions)
        shares = np.diff(cumulative)
        shares[0] += cumulative[0]  # gaps below the first edge (events of one packet)
        ax.bar(edges[:-1], shares, width=np.diff(edges), align="edge", color="#4c72b0")
        ax.set_xscale("log")
        for q, style in ((0.5, "--"), (0.99, ":")):
            ax.axvline(
                float(np.interp(q, fractions, values)), color="black", linestyle=style, label=f"p{q * 100:g}"
            )
        ax.set_xlabel("ITL (ms, log scale)")
        ax.set_ylabel("share of gaps")
        ax.set_ylim(bottom=0)
        ax.legend()
        ax.grid(alpha=0.3)

    return draw


def full_seconds(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The per-second rows wholly inside the run (partial first and last seconds left out)."""
    return [r for r in rows if r.get("span_s", 1) >= 1]


def _series_plot(rows: Sequence[Mapping[str, Any]], keys: Sequence[tuple[str, str]], ylabel: str) -> Draw:
    def draw(ax: Any) -> None:
        t = [r["t"] for r in rows]
        for key, label in keys:
            ax.plot(
                t, [float("nan") if r.get(key) is None else r[key] for r in rows], marker=".", label=label
            )
        ax.set_xlabel("seconds since start (by request start)")
        ax.set_ylabel(ylabel)
        _from_zero(ax)
        ax.legend()
        ax.grid(alpha=0.3)

    return draw


def _overhead_plot(dist: Mapping[str, Any]) -> Draw:
    """The gateway overhead's CDFs: first token (per request) and every chunk."""

    def draw(ax: Any) -> None:
        for key, label in (("overhead_ms", "first token"), ("chunk_overhead_ms", "every chunk")):
            points = dist.get(key) or []
            if points:
                ax.step([p[0] for p in points], [p[1] for p in points], where="post", label=label)
        ax.set_xlabel("client arrival - harness write (ms)")
        ax.set_ylabel("fraction")
        ax.set_ylim(0, 1.02)
        ax.set_xlim(left=0)
        ax.legend()
        ax.grid(alpha=0.3)

    return draw


def _ramp_plot(ramp: Mapping[str, Any]) -> Draw:
    def draw(ax: Any) -> None:
        steps = ramp["steps"]
        users = [s["users"] for s in steps]
        for key, label in (
            ("ttft_p50_ms", "TTFT p50"),
            ("ttft_p95_ms", "TTFT p95"),
            ("e2e_p50_ms", "E2E p50"),
            ("e2e_p95_ms", "E2E p95"),
        ):
            values = [s[key] for s in steps]
            if any(v is not None for v in values):
                ax.plot(users, [float("nan") if v is None else v for v in values], marker="o", label=label)
        ax.set_xlabel("concurrent users")
        ax.set_ylabel("latency (ms)")
        twin = ax.twinx()
        twin.plot(
            users,
            [s["output_tokens_per_s"] for s in steps],
            color="black",
            linestyle="--",
            marker="s",
            label="output tok/s",
        )
        twin.set_ylabel("output tokens/s")
        twin.set_ylim(bottom=0)
        if ramp["knee"]:
            ax.axvline(ramp["knee"]["users"], color="red", alpha=0.5, label="knee")
        _from_zero(ax)
        ax.legend(loc="upper left")
        twin.legend(loc="lower right")
        ax.grid(alpha=0.3)

    return draw


def _limits_plot(probe: Mapping[str, Any]) -> Draw:
    def draw(ax: Any) -> None:
        windows = probe["sustain_windows"]
        index = list(range(1, len(windows) + 1))
        ax.bar(index, windows, color="#4c72b0", label="admitted")
        ax.axhline(probe["limit"], color="red", label=f"limit {probe['limit']}")
        unit = "requests" if probe["kind"] == "rpm" else "tokens"
        ax.set_xlabel(f"sustain window ({probe['window_s']:g} s each, from the retry)")
        ax.set_ylabel(f"admitted {unit}")
        ax.set_xticks(index)
        ax.set_ylim(0, max([probe["limit"], *windows]) * 1.2)
        ax.legend()
        ax.grid(alpha=0.3, axis="y")

    return draw


def plots(summary: Mapping[str, Any]) -> list[Plot]:
    """The page's plots, in order (only those the summary has data for)."""
    out: list[Plot] = []
    rows = full_seconds(summary["timeseries"])
    partial = len(summary["timeseries"]) - len(rows)
    note = f"{partial} partial second(s) at the edges left out" if partial else ""
    if any(r.get("ttft_p50_ms") is not None for r in rows):
        keys = [("ttft_p50_ms", "TTFT p50"), ("ttft_p95_ms", "TTFT p95")]
        out.append(
            Plot("ttft-per-second", "TTFT p50 and p95 per second", note, _series_plot(rows, keys, "ms"))
        )
    dist = summary["distributions"]
    if dist["ttft_ms"]:
        out.append(
            Plot("ttft-cdf", "TTFT, cumulative distribution", "", _cdf_plot(dist["ttft_ms"], "TTFT (ms)"))
        )
    itl = _itl_histogram(dist["itl_ms"]) if dist["itl_ms"] else None
    if itl is not None:
        caption = (
            "log-spaced bins on a log axis, so the tail is visible; gaps under 1 µs are in the first bin"
        )
        out.append(Plot("itl-histogram", "Inter-token latency, histogram", caption, itl))
    if rows:
        out += [
            Plot("tokens-per-second", "Output tokens per second", note,
                 _series_plot(rows, [("output_tokens", "output tokens")], "per second")),
            Plot("requests-per-second", "Requests per second", note,
                 _series_plot(rows, [("requests", "started"), ("ok", "succeeded")], "per second")),
            Plot("failures-per-second", "429s and errors per second", note,
                 _series_plot(rows, [("rate_limited", "429"), ("errors", "other errors")], "per second")),
        ]  # fmt: skip
    if dist.get("overhead_ms"):
        caption = (
            "what the gateway added: each stream's first token (and every chunk, with the harness's "
            "--log-writes) as the client received it, minus when the upstream harness wrote it"
        )
        out.append(
            Plot("overhead", "Gateway overhead, cumulative distribution", caption, _overhead_plot(dist))
        )
    if summary.get("ramp"):
        out.append(
            Plot("ramp", "Latency and throughput against concurrency", "", _ramp_plot(summary["ramp"]))
        )
    for probe in (summary.get("limits") or {}).get("probes", []):
        if probe.get("sustain_windows"):
            title = f"limits {probe['probe']}: admitted per window against the limit"
            out.append(Plot(f"limits-{probe['probe']}", title, "sustain phase", _limits_plot(probe)))
    return out


# --- page --------------------------------------------------------------------------------------


def _outcome(summary: Mapping[str, Any]) -> Mapping[str, Any]:
    """The summary's outcome (a version 1 summary has none: it is worked out without gates)."""
    from gatecheck.load.summary import outcome_section

    return summary.get("outcome") or outcome_section(summary, None, early_stop=None, budget=None)


def _banner(summary: Mapping[str, Any]) -> dict[str, Any]:
    outcome = _outcome(summary)
    nothing = summary["requests"]["ok"] == 0
    slo = summary.get("slo")
    if slo is None:
        slo_text = "not gated (no --slo file)"
    else:
        missed = sum(not o["passed"] for o in slo["objectives"])
        total = len(slo["objectives"])
        slo_text = (
            f"passed ({total} of {total} objectives met)"
            if not missed
            else (f"FAILED ({missed} of {total} objectives missed)")
        )
    return {
        "verdict": outcome["verdict"].upper(),
        "css": outcome["verdict"] + (" nothing" if nothing else ""),
        "nothing": nothing,
        "slo": slo_text,
    }


def _facts(summary: Mapping[str, Any]) -> list[tuple[str, str]]:
    run, req, thr = summary["run"], summary["requests"], summary["throughput"]
    facts = [
        ("scenario", run["scenario"]),
        ("host", run["host"]),
        ("model", run["model"]),
        ("dialect", run["dialect"]),
        ("stream", run["stream"]),
        ("users", run.get("users")),
        ("started", run["started"]),
        ("duration (s)", thr["duration_s"]),
        ("requests", req["total"]),
        ("succeeded", req["ok"]),
        ("429", req["rate_limited"]),
        ("error rate (429s apart)", req["error_rate"]),
        ("requests/s", thr["requests_per_s"]),
        ("output tokens/s", thr["output_tokens_per_s"]),
    ]
    tokens = summary["tokens"]
    if "estimated_share" in tokens:
        facts.append(("requests with estimated tokens", f"{tokens['estimated_share']:.1%}"))
        both = tokens["usage_vs_events"]
        if both["requests"]:
            facts.append(
                (
                    "usage vs counted chunks",
                    f"{both['differ']} of {both['requests']} streams differ; "
                    f"{both['tokens_per_event']:g} usage tokens per counted chunk",
                )
            )
    if run.get("excluded_requests"):
        facts.append(("left out (warm-up, reset)", run["excluded_requests"]))
    upstream = summary.get("upstream")
    if upstream:
        facts.append(("upstream harness", upstream["harness"]))
        facts.append(("streams matched in its log", upstream["matched"] if upstream["measured"] else "-"))
    return [(label, _fmt(value)) for label, value in facts]


def _meaning(code: str) -> str:
    """What one of gatecheck's error codes means ("" for the target's own codes)."""
    return ERROR_CODES.get(code.split(":", 1)[0], "the target's own error code" if code else "")


def render_load_html(summary: Mapping[str, Any]) -> str:
    """The page as a string: banner, run facts, metrics, errors, violations, gates, plots."""
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("gatecheck.load", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    metric_rows = [
        [_LABELS[k], *(_fmt(summary["metrics"][k][c]) for c in _STAT_COLUMNS)] for k in _metric_keys(summary)
    ]
    errors = [{**e, "meaning": _meaning(e["code"])} for e in summary["errors"]]
    rendered = [
        {"key": p.key, "title": p.title, "caption": p.caption, "png": _png(p.draw)} for p in plots(summary)
    ]
    return environment.get_template(_TEMPLATE).render(
        run=summary["run"],
        requests=summary["requests"],
        outcome=_outcome(summary),
        banner=_banner(summary),
        facts=_facts(summary),
        stat_columns=_STAT_COLUMNS,
        metric_rows=metric_rows,
        errors=errors,
        conformance=summary.get("conformance") or {"rules": []},
        conformance_line=_conformance_line(summary),
        upstream_lines=_upstream_lines(summary),
        gate_lines=_gate_lines(summary),
        warnings=summary["warnings"],
        plots=rendered,
    )


def write_load_html(summary: Mapping[str, Any], path: Path) -> Path:
    """Write the page next to the summary and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_load_html(summary), encoding="utf-8")
    return path
