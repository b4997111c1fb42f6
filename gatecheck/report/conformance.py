"""Writing a conformance run's reports: ``results.json``, ``matrix.md`` and ``matrix.html``.

One call writes all three from the same results, for one target or several side by side, plus
the request bodies the failure messages' curl commands read from a file (``CheckResult.files``).
Keys are kept out twice over: every string from the results and the run info is redacted before
rendering (before escaping, which could hide a key from a plain search), and every rendered page
and saved body is scrubbed again before it is written. ``check_writable`` is the early test that
turns an unusable report directory into a configuration error before a run starts.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from gatecheck.errors import ConfigError
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
    VERDICTS, results the schema rejects or a file name that is not plain, before anything is
    written. Every result's ``files`` are saved there too (``write_files``).
    """
    info_in = run_info or {}
    parsed = parse_run_info(info_in, (r.target for r in results))
    known = _known_secrets(info_in)
    redactor = Redactor(known)
    _files(results)
    info = _redact_info(parsed, redactor)
    clean = [_redact_result(result, redactor) for result in results]
    matrix = build_matrix(clean, (t.name for t in info.targets))
    pages = {
        "json": render_json(results_document([r.to_json() for r in clean], matrix, info)),
        "markdown": render_markdown(matrix, info),
        "html": render_html(matrix, info),
    }
    write_files(results, report_dir, known)
    return {
        kind: _write(report_dir / REPORT_FILES[kind], redactor.text(text)) for kind, text in pages.items()
    }


def write_files(
    results: Iterable[CheckResult], directory: Path, secrets: Iterable[object] = ()
) -> list[Path]:
    """Save every result's ``files`` (request bodies the curl commands read) in ``directory``.

    Each is scrubbed of ``secrets`` again first. Raises ValueError, before writing anything, for
    a name that is not a plain file name.
    """
    files = _files(results)
    redactor = Redactor(secrets)
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / name for name in files]
    for path, content in zip(paths, files.values(), strict=True):
        path.write_bytes(redactor.content(content))
    return paths


def _files(results: Iterable[CheckResult]) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for result in results:
        for name, content in result.files.items():
            if not name or Path(name).name != name or name.startswith("."):
                raise ValueError(f"CheckResult.files: {name!r} is not a plain file name")
            files.setdefault(name, content)
    return files


def check_writable(report_dir: Path, flag: str = "--report-dir") -> None:
    """Create ``report_dir`` if needed and prove a file can be written there, else ``ConfigError``.

    Called before a run, so an unusable directory costs one line and exit 2, not a traceback
    after every request was sent.
    """
    try:
        report_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=report_dir):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(flag, str(report_dir), f"a directory gatecheck can write to ({reason})") from None


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
