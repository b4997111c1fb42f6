"""``results.json``: every record plus a header, checked against ``gatecheck.conformance-results``.

The document is validated before it is written, so a file on disk always matches the published
schema and a reader never has to guess.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from gatecheck.report._matrix import Matrix
from gatecheck.report._run_info import RunInfo
from gatecheck.results import VERDICTS
from gatecheck.schemas import default_store

SCHEMA_NAME = "gatecheck.conformance-results"
FORMAT_VERSION = 2
"""2: the XFAIL verdict (a known deviation) and its counts; targets[].expected_failures."""


def results_document(records: Sequence[dict[str, Any]], matrix: Matrix, info: RunInfo) -> dict[str, Any]:
    """The results file's content for JSON-ready ``records`` (``CheckResult.to_json()``)."""
    return {
        "format_version": FORMAT_VERSION,
        "tool": {"name": "gatecheck", "version": info.tool_version},
        "started": info.started,
        "finished": info.finished,
        "profile": info.profile,
        "interrupted": info.interrupted,
        "targets": [
            {
                "name": t.name,
                "base_url": t.base_url,
                "profile": t.profile,
                "expected_failures": t.expected_failures,
                "counts": matrix.counts(t.name),
            }
            for t in info.targets
        ],
        "counts": {v: sum(matrix.counts(t)[v] for t in matrix.targets) for v in VERDICTS},
        "results": list(records),
    }


def render_json(document: dict[str, Any]) -> str:
    """``document`` as indented JSON, after checking it against the schema.

    Raises ValueError naming the first schema issue (a bad verdict, a negative duration...).
    """
    issues = default_store().issues(SCHEMA_NAME, document)
    if issues:
        raise ValueError(f"conformance results do not match schema {SCHEMA_NAME}: {issues[0]}")
    return json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
