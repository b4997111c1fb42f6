"""Writing a conformance run's reports: ``results.json``, ``matrix.md`` and ``matrix.html``.

One call writes all three from the same results, for one target or several side by side. Keys
are kept out twice over: every string from the results and the run info is redacted before
rendering (known secrets and credential-looking values; before escaping, which could hide a key
from the redactor), and every rendered page is searched again for the known secrets before it
is written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from gatecheck.redaction import Secret
from gatecheck.report._html import render_html
from gatecheck.report._json import render_json, results_document
from gatecheck.report._markdown import render_markdown
from gatecheck.report._matrix import build_matrix
from gatecheck.report._redact import Redactor
from gatecheck.report._run_info import RunInfo, parse_run_info, target_field
from gatecheck.results import CheckResult

_KEY_FIELDS = ("api_key", "api_key_2")

REPORT_FILES = {"json": "results.json", "markdown": "matrix.md", "html": "matrix.html"}
"""The file each writer produces inside the report directory, by ``write_reports`` key."""

JUNIT_FILE = "junit.xml"
"""Where the pytest plugin points ``--junitxml`` inside the report directory (pytest writes it)."""


def write_reports(
    results: Sequence[CheckResult],
    report_dir: Path,
    *,
    run_info: Mapping[str, object] | None = None,
) -> dict[str, Path]:
    """Write the JSON results, the Markdown matrix and the HTML matrix; return their paths by kind.

    ``run_info`` may hold ``started`` and ``finished`` (datetime or ISO 8601 str), ``profile``,
    ``targets`` (mappings or ``Target`` objects: name, base_url and profile are shown, api_key and
    api_key_2 only masked) and ``secrets`` (``Secret`` or str values to keep out of every file;
    never written themselves). Raises ValueError for an unknown run_info key, a verdict outside
    VERDICTS or results the schema rejects, before anything is written.
    """
    info_in = run_info or {}
    parsed = parse_run_info(info_in, (r.target for r in results))
    redactor = Redactor(_known_secrets(info_in))
    info = _redact_info(parsed, redactor)
    clean = [_redact_result(result, redactor) for result in results]
    matrix = build_matrix(clean, (t.name for t in info.targets))
    pages = {
        "json": render_json(results_document([r.to_json() for r in clean], matrix, info)),
        "markdown": render_markdown(matrix, info),
        "html": render_html(matrix, info),
    }
    report_dir.mkdir(parents=True, exist_ok=True)
    return {
        kind: _write(report_dir / REPORT_FILES[kind], redactor.known(text)) for kind, text in pages.items()
    }


def _known_secrets(run_info: Mapping[str, object]) -> list[object]:
    """The declared ``secrets`` plus the keys of the targets (``Target.api_key``/``api_key_2``).

    Target keys are read only to be masked: a caller who forgets to list them is still covered.
    """
    declared = run_info.get("secrets", ())
    if isinstance(declared, str) or not isinstance(declared, Sequence | set | frozenset):
        raise TypeError("run_info['secrets'] must be a list of Secret or str")
    keys: list[object] = list(declared)
    targets = run_info.get("targets", ())
    for target in targets if isinstance(targets, Sequence) else ():
        keys += [key for field in _KEY_FIELDS if isinstance(key := target_field(target, field), Secret | str)]
    return keys


def _redact_result(result: CheckResult, redactor: Redactor) -> CheckResult:
    extra = redactor.data(result.extra)
    return replace(
        result,
        check_id=redactor.text(result.check_id),
        area=redactor.text(result.area),
        target=redactor.text(result.target),
        citation=redactor.text(result.citation),
        message=redactor.text(result.message),
        extra=extra if isinstance(extra, dict) else {"value": extra},
    )


def _redact_info(info: RunInfo, redactor: Redactor) -> RunInfo:
    def optional(value: str | None) -> str | None:
        return redactor.text(value) if value is not None else None

    targets = tuple(
        replace(t, name=redactor.text(t.name), base_url=optional(t.base_url), profile=optional(t.profile))
        for t in info.targets
    )
    return replace(info, profile=optional(info.profile), targets=targets)


def _write(path: Path, page: str) -> Path:
    """Write ``page`` as UTF-8; lone surrogates from undecodable wire bytes are kept as ``\\udcNN``."""
    path.write_text(page, encoding="utf-8", errors="backslashreplace")
    return path
