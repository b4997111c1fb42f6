"""The load run's human outputs: a terminal table and a self-contained HTML page with plots.

Both read only the summary (``gatecheck.load.summary.build_summary``), so a saved summary can be
rendered again later. Plots are made with matplotlib's Agg backend and embedded as base64 PNGs:
no network, no external files. No locust here.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from gatecheck.load.timing import ALL_METRIC_KEYS, PERCENTILES

_STAT_COLUMNS = ("count", "mean", *(f"p{p}" for p in PERCENTILES), "max")
_BINS = 40
_LABELS = {
    "ttft_ms": "TTFT (ms)",
    "itl_ms": "ITL (ms)",
    "tpot_ms": "TPOT (ms)",
    "e2e_ms": "E2E (ms)",
    "output_tokens_per_s": "output tok/s per request",
    "ttfb_ms": "TTFB (ms)",
}
_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}
table{border-collapse:collapse;margin:0.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left}
.fail{color:#b00020;font-weight:bold}.ok{color:#1b7f1b}
img{max-width:100%;border:1px solid #eee;margin:0.5em 0}
"""


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def summary_table(summary: Mapping[str, Any]) -> str:
    """A plain-text table of the run for terminals: requests, throughput, metric statistics, gates."""
    run, req, thr = summary["run"], summary["requests"], summary["throughput"]
    lines = [
        f"gatecheck load: {run['scenario']} against {run['host']} ({run['model']}, {run['dialect']}, "
        f"{'stream' if run['stream'] else 'no stream'}), {thr['duration_s']:.1f} s",
        f"requests {req['total']}  ok {req['ok']}  failed {req['failed']} (429: {req['rate_limited']})  "
        f"error rate {req['error_rate']:.2%}  |  {thr['requests_per_s']:.2f} req/s  "
        f"{thr['output_tokens_per_s']:.1f} output tok/s",
        "",
        f"{'metric':<26}" + "".join(f"{c:>10}" for c in _STAT_COLUMNS),
    ]
    for key in ALL_METRIC_KEYS:
        stats = summary["metrics"][key]
        lines.append(f"{_LABELS[key]:<26}" + "".join(f"{_fmt(stats[c]):>10}" for c in _STAT_COLUMNS))
    lines += [f"error {e['status']} {e['code']}: {e['count']}" for e in summary["errors"]]
    lines += _gate_lines(summary)
    lines += [f"warning: {w}" for w in summary["warnings"]]
    return "\n".join(lines)


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


def _png(draw: Callable[[Any], None]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 3.2), dpi=100)
    draw(figure.add_subplot(1, 1, 1))
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _cdf_plot(points: Sequence[Sequence[float]], label: str) -> Callable[[Any], None]:
    def draw(ax: Any) -> None:
        ax.step([p[0] for p in points], [p[1] for p in points], where="post")
        ax.set_xlabel(label)
        ax.set_ylabel("fraction of requests")
        ax.grid(alpha=0.3)

    return draw


def _histogram_plot(points: Sequence[Sequence[float]], label: str) -> Callable[[Any], None]:
    """A histogram of equal-width bins, read off the CDF points (up to p99.5: the tail is in the table)."""

    def draw(ax: Any) -> None:
        import numpy as np

        values = np.array([p[0] for p in points])
        fractions = np.array([p[1] for p in points])
        high = float(np.interp(0.995, fractions, values))
        edges = np.linspace(float(values[0]), max(high, float(values[0]) + 1e-3), _BINS + 1)
        shares = np.diff(np.interp(edges, values, fractions))
        ax.bar(edges[:-1], shares, width=np.diff(edges), align="edge", color="#4c72b0")
        ax.set_xlabel(label)
        ax.set_ylabel("share of gaps")
        ax.grid(alpha=0.3)

    return draw


def _series_plot(
    rows: Sequence[Mapping[str, Any]], keys: Sequence[tuple[str, str]], ylabel: str
) -> Callable[[Any], None]:
    def draw(ax: Any) -> None:
        t = [r["t"] for r in rows]
        for key, label in keys:
            ax.plot(t, [r[key] for r in rows], label=label)
        ax.set_xlabel("seconds since start (by request start)")
        ax.set_ylabel(ylabel)
        ax.legend()
        ax.grid(alpha=0.3)

    return draw


def _ramp_plot(ramp: Mapping[str, Any]) -> Callable[[Any], None]:
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
        if ramp["knee"]:
            ax.axvline(ramp["knee"]["users"], color="red", alpha=0.5, label="knee")
        ax.legend(loc="upper left")
        twin.legend(loc="lower right")
        ax.grid(alpha=0.3)

    return draw


def _plots(summary: Mapping[str, Any]) -> list[tuple[str, str]]:
    plots: list[tuple[str, Callable[[Any], None]]] = []
    dist = summary["distributions"]
    if dist["ttft_ms"]:
        plots.append(("TTFT, cumulative distribution", _cdf_plot(dist["ttft_ms"], "TTFT (ms)")))
    if dist["itl_ms"]:
        plots.append(("Inter-token latency, histogram", _histogram_plot(dist["itl_ms"], "ITL (ms)")))
    rows = summary["timeseries"]
    if rows:
        plots.append(
            (
                "Output tokens per second",
                _series_plot(rows, [("output_tokens", "output tokens")], "per second"),
            )
        )
        plots.append(
            (
                "Requests per second",
                _series_plot(rows, [("requests", "started"), ("ok", "succeeded")], "per second"),
            )
        )
        plots.append(
            (
                "429s and errors per second",
                _series_plot(rows, [("rate_limited", "429"), ("errors", "other errors")], "per second"),
            )
        )
    if summary.get("ramp"):
        plots.append(("Latency and throughput against concurrency", _ramp_plot(summary["ramp"])))
    return [(title, _png(draw)) for title, draw in plots]


# --- page --------------------------------------------------------------------------------------


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _lines(title: str, lines: Sequence[str]) -> str:
    if not lines:
        return ""
    items = "".join(
        f'<li class="{"fail" if ("FAIL" in line or "REGRESSION" in line) else "ok"}">{html.escape(line)}</li>'
        for line in lines
    )
    return f"<h2>{html.escape(title)}</h2><ul>{items}</ul>"


def render_load_html(summary: Mapping[str, Any]) -> str:
    """The page as a string: run facts, metric table, errors, gates, plots."""
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
        ("ok", req["ok"]),
        ("429", req["rate_limited"]),
        ("error rate (429s apart)", req["error_rate"]),
        ("requests/s", thr["requests_per_s"]),
        ("output tokens/s", thr["output_tokens_per_s"]),
    ]
    metric_rows = [[_LABELS[k], *(summary["metrics"][k][c] for c in _STAT_COLUMNS)] for k in ALL_METRIC_KEYS]
    parts = [
        '<!DOCTYPE html><html><head><meta charset="utf-8">',
        f"<title>gatecheck load run {html.escape(run['name'])}</title><style>{_STYLE}</style></head><body>",
        f"<h1>gatecheck load run <code>{html.escape(run['name'])}</code></h1>",
        _table(["", ""], facts),
        "<h2>Metrics</h2>",
        _table(["metric", *_STAT_COLUMNS], metric_rows),
    ]
    if summary["errors"]:
        parts += [
            "<h2>Errors</h2>",
            _table(
                ["status", "code", "count"], [[e["status"], e["code"], e["count"]] for e in summary["errors"]]
            ),
        ]
    parts.append(_lines("Gates and verdicts", _gate_lines(summary)))
    parts.append(_lines("Warnings", summary["warnings"]))
    for title, png in _plots(summary):
        parts.append(
            f'<h2>{html.escape(title)}</h2><img alt="{html.escape(title)}" src="data:image/png;base64,{png}">'
        )
    parts.append("</body></html>")
    return "\n".join(p for p in parts if p)


def write_load_html(summary: Mapping[str, Any], path: Path) -> Path:
    """Write the page next to the summary and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_load_html(summary), encoding="utf-8")
    return path
