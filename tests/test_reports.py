"""The conformance report writers: files, schema, escaping, multi-target matrix, and no key anywhere."""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest

import gatecheck.report
from gatecheck.config import Target
from gatecheck.redaction import Secret
from gatecheck.report import MISSING, summary_table, write_reports
from gatecheck.report._run_info import safe_url
from gatecheck.results import CheckResult
from gatecheck.schemas import default_store

CANARY = "canary-" + secrets.token_hex(12)
# Values that merely look like credentials but are no key of the run: evidence, shown as received.
UNDECLARED_TOKEN = "tok" + secrets.token_hex(10)
UNDECLARED_SK = "sk-" + secrets.token_hex(12)

ESCAPED_CANARY = CANARY.replace("-", "\\u002d")
HOSTILE = "<script>alert(\"x\")</script> & &amp; 'quoted' ```not a fence``` `tick`"
CURL = 'curl -sS -N https://gw.example/v1/chat/completions -H "Authorization: Bearer $GATECHECK_API_KEY"'
FAIL_MESSAGE = (
    "rule: stream.done (000 §Streaming)\n"
    "expected: a final data: [DONE] event\n"
    f'received: data: {{"error": "{HOSTILE}"}}\r\n\x00\n'
    f"Reproduce with:\n  {CURL}"
)
LEAKY_MESSAGE = (
    f'rule: auth.invalid_key\nreceived: {{"error": {{"message": "bad key {CANARY}"}}}}\n'
    f"echoed header: Authorization: Bearer {UNDECLARED_TOKEN}\nlog: {UNDECLARED_SK}\n"
    f"escaped: {ESCAPED_CANARY} {CANARY.replace('-', '%2D')}\n"
    "title: /v1/messages with Authorization: Bearer answered 401\n"
    f"Reproduce with:\n  {CURL}"
)
WARN_MESSAGE = f"rule: stream.bursty\nfirst and last content bytes in one read\n{HOSTILE}"


def results() -> list[CheckResult]:
    """Two targets, every verdict on each, a check run on alpha only and one run on beta only."""
    return [
        CheckResult("chat.basic", "nonstream", "PASS", "alpha", citation="001 §Response", duration_s=0.01),
        CheckResult(
            "chat.basic", "nonstream", "PASS", "beta|prod", citation="001 §Response", duration_s=0.02
        ),
        CheckResult("stream.done", "stream", "FAIL", "alpha", "000 §Streaming <done>", FAIL_MESSAGE, 0.3),
        CheckResult("stream.done", "stream", "WARN", "beta|prod", "000 §Streaming", WARN_MESSAGE, 0.2),
        CheckResult(
            "auth.invalid_key",
            "errors",
            "FAIL",
            "beta|prod",
            "002 §Errors",
            LEAKY_MESSAGE,
            0.1,
            extra={"raw": f"Bearer {CANARY}".encode(), "key": Secret(CANARY), "n": [1, 2.5, None, True]},
        ),
        CheckResult("auth.invalid_key", "errors", "SKIP", "alpha", message="no second key configured"),
        CheckResult("stream.bursty", "stream", "WARN", "alpha", "000 §Streaming", WARN_MESSAGE, 0.4),
        CheckResult("balance.shape", "aux", "SKIP", "beta|prod", message="target lacks capability 'balance'"),
    ]


RUN_INFO: dict[str, object] = {
    "started": datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC),
    "finished": "2024-05-01T12:03:30+00:00",
    "profile": "gateway",
    "targets": [
        {
            "name": "alpha",
            "base_url": f"https://user:{CANARY}@alpha.example/v1?key={CANARY}",
            "api_key": CANARY,
        },
        {"name": "beta|prod", "base_url": "https://beta.example/v1"},
    ],
    "secrets": [Secret(CANARY)],
}


@dataclass(frozen=True)
class Written:
    paths: dict[str, Path]
    texts: dict[str, str]


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Written:
    paths = write_reports(results(), tmp_path_factory.mktemp("reports") / "nested", run_info=RUN_INFO)
    return Written(paths, {kind: path.read_text(encoding="utf-8") for kind, path in paths.items()})


class StrictHTML(HTMLParser):
    """Fails on any end tag that does not close the innermost open element; records tags and attributes."""

    VOID = frozenset({"meta", "br", "hr", "img", "link", "input"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.problems: list[str] = []
        self.text_parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += attrs
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> while open: {self.stack[-3:]}")
        else:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text_parts.append(data)


def parsed(html_text: str) -> StrictHTML:
    parser = StrictHTML()
    parser.feed(html_text)
    parser.close()
    return parser


def markdown_table(md: str, header_start: str) -> list[list[str]]:
    """The rows of the table whose header line starts with ``header_start``, split on unescaped pipes."""
    lines = md.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]])
    return [rows[0], *rows[2:]]


def test_writes_the_three_reports_and_returns_their_paths(written: Written) -> None:
    assert set(written.paths) == {"json", "markdown", "html"}
    assert {p.name for p in written.paths.values()} == {"results.json", "matrix.md", "matrix.html"}
    assert all(p.is_file() and p.stat().st_size > 0 for p in written.paths.values())


def test_no_output_contains_a_known_key_in_any_form(written: Written) -> None:
    # Only names in the failure output: pytest would otherwise print the page, canaries and all.
    forms = (CANARY, ESCAPED_CANARY, CANARY.replace("-", "%2D"), CANARY[:-1])
    leaks = [
        (kind, i) for kind, text in written.texts.items() for i, form in enumerate(forms) if form in text
    ]
    assert leaks == []
    for kind, text in written.texts.items():
        assert "$GATECHECK_API_KEY" in text, f"the curl command's env reference must survive in {kind}"
        assert "***" in text
    assert sorted(p.name for p in written.paths["json"].parent.iterdir()) == [
        "matrix.html",
        "matrix.md",
        "results.json",
    ]


def test_only_keys_are_masked_the_rest_is_the_wire(written: Written) -> None:
    text = written.texts["markdown"]
    assert f"Authorization: Bearer {UNDECLARED_TOKEN}" in text  # not a key of this run
    assert UNDECLARED_SK in text
    assert "Authorization: Bearer answered 401" in text


def test_json_validates_against_the_schema(written: Written) -> None:
    document = json.loads(written.texts["json"])
    assert default_store().issues("gatecheck.conformance-results", document) == []
    schema = default_store().get("gatecheck.conformance-results")
    assert schema["$id"] == "https://gatecheck.invalid/schemas/gatecheck.conformance-results.json"
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert schema["title"] and schema["description"]


def test_json_round_trips_the_records_and_describes_the_run(written: Written) -> None:
    document = json.loads(written.texts["json"])
    originals = results()
    assert len(document["results"]) == len(originals)
    for original, record in zip(originals, document["results"], strict=True):
        if original.message == LEAKY_MESSAGE:
            assert record["extra"] == {"raw": "Bearer ***", "key": "***", "n": [1, 2.5, None, True]}
        else:
            assert CheckResult(**record) == original
    assert document["tool"] == {"name": "gatecheck", "version": gatecheck.__version__}
    assert document["started"] == "2024-05-01T12:00:00.000Z"
    assert document["finished"] == "2024-05-01T12:03:30.000Z"
    assert document["profile"] == "gateway"
    assert document["targets"] == [
        {
            "name": "alpha",
            "base_url": "https://alpha.example/v1",
            "profile": "gateway",
            "expected_failures": None,
            "counts": {"PASS": 1, "WARN": 1, "FAIL": 1, "XFAIL": 0, "SKIP": 1},
        },
        {
            "name": "beta|prod",
            "base_url": "https://beta.example/v1",
            "profile": "gateway",
            "expected_failures": None,
            "counts": {"PASS": 1, "WARN": 1, "FAIL": 1, "XFAIL": 0, "SKIP": 1},
        },
    ]
    assert document["counts"] == {"PASS": 2, "WARN": 2, "FAIL": 2, "XFAIL": 0, "SKIP": 2}


def test_json_keeps_raw_wire_text(written: Written) -> None:
    document = json.loads(written.texts["json"])
    assert document["results"][2]["message"] == FAIL_MESSAGE


def test_html_is_well_formed_with_every_details_closed(written: Written) -> None:
    page = parsed(written.texts["html"])
    assert page.problems == []
    assert page.stack == []
    assert page.tags.count("details") == written.texts["html"].count("</details>") == 6


def test_html_escapes_everything_and_loads_nothing(written: Written) -> None:
    html_text = written.texts["html"]
    page = parsed(html_text)
    assert set(page.tags) <= {
        "html", "head", "meta", "title", "style", "body", "h1", "h2", "p", "table", "tr", "th", "td",
        "code", "details", "summary", "pre", "div", "span",
    }  # fmt: skip
    assert not [name for name, _ in page.attrs if name in {"src", "href", "srcset", "action", "data"}]
    assert "default-src 'none'" in html_text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &amp;amp; &#x27;quoted&#x27;" in html_text
    assert "000 §Streaming &lt;done&gt;" in html_text
    text = "".join(page.text_parts)
    assert HOSTILE in text
    assert "\\r\n\\x00" in text, "control characters from the wire are shown, not swallowed"


def test_html_matrix_has_target_columns_and_missing_cells(written: Written) -> None:
    html_text = written.texts["html"]
    assert "<tr><th>check</th><th>alpha</th><th>beta|prod</th></tr>" in html_text
    row = re.search(r"<tr><td><code>stream\.bursty</code></td>(.*?)</tr>", html_text, re.DOTALL)
    assert row is not None
    assert row.group(1).endswith(f'<td class="v MISSING">{MISSING}</td>')
    assert '<td class="v WARN"><details><summary>WARN</summary>' in row.group(1)
    assert 'class="bar"' in html_text and 'title="FAIL: 1"' in html_text


def test_markdown_matrix_columns_and_missing_checks(written: Written) -> None:
    header, *rows = markdown_table(written.texts["markdown"], "| area | check |")
    assert header == ["area", "check", "alpha", r"beta\|prod"]
    assert rows == [
        ["nonstream", "`chat.basic`", "PASS", "PASS"],
        ["stream", "`stream.done`", "FAIL", "WARN"],
        ["stream", "`stream.bursty`", "WARN", MISSING],
        ["errors", "`auth.invalid_key`", "SKIP", "FAIL"],
        ["aux", "`balance.shape`", MISSING, "SKIP"],
    ]


def test_markdown_totals_per_target(written: Written) -> None:
    header, *rows = markdown_table(written.texts["markdown"], "| target |")
    assert header == ["target", "base URL", "profile", "PASS", "WARN", "FAIL", "XFAIL", "SKIP"]
    assert rows == [
        ["alpha", "`https://alpha.example/v1`", "gateway", "1", "1", "1", "0", "1"],
        [r"beta\|prod", "`https://beta.example/v1`", "gateway", "1", "1", "1", "0", "1"],
    ]


def test_markdown_details_fence_every_non_pass_message(written: Written) -> None:
    md = written.texts["markdown"]
    details = md.split("## Details", 1)[1]
    assert details.count("\n### ") == 6
    assert "### FAIL: `stream.done` on alpha" in details
    assert "- documented in: 000 §Streaming \\<done\\>" in details
    assert f"````text\n{WARN_MESSAGE}\n````" in details, "the fence must outrun the message's own backticks"
    assert "received: data: {" in details and "\\r\n\\x00\n" in details


def test_summary_table_counts_and_lists_failures() -> None:
    assert summary_table(results()).splitlines() == [
        "target      PASS   WARN   FAIL  XFAIL   SKIP",
        "alpha          1      1      1      0      1",
        "  FAIL: stream.done",
        "  WARN: stream.bursty",
        "beta|prod      1      1      1      0      1",
        "  FAIL: auth.invalid_key",
        "  WARN: stream.done",
    ]
    assert summary_table([]) == "no results"


def test_a_check_reported_twice_shows_its_worst_verdict(tmp_path: Path) -> None:
    twice = [
        CheckResult("fuzz.request", "fuzz", "PASS", "alpha"),
        CheckResult("fuzz.request", "fuzz", "FAIL", "alpha", message="500 on a valid request"),
    ]
    paths = write_reports(twice, tmp_path)
    _, row = markdown_table(paths["markdown"].read_text(encoding="utf-8"), "| area | check |")
    assert row == ["fuzz", "`fuzz.request`", "FAIL ×2"]
    document = json.loads(paths["json"].read_text(encoding="utf-8"))
    assert document["counts"] == {"PASS": 1, "WARN": 0, "FAIL": 1, "XFAIL": 0, "SKIP": 0}
    assert document["started"] is None and document["targets"][0]["base_url"] is None
    assert "not given" in paths["markdown"].read_text(encoding="utf-8")


def test_keys_of_target_objects_are_masked_even_when_not_declared(tmp_path: Path) -> None:
    key, key_2 = "canary-" + secrets.token_hex(8), "canary-" + secrets.token_hex(8)
    target = Target(name="reference", api_key=Secret(key), api_key_2=Secret(key_2), profile="lenient")
    leaky = CheckResult("auth.second_key", "errors", "FAIL", "reference", message=f"echoed {key} and {key_2}")
    paths = write_reports([leaky], tmp_path, run_info={"targets": [target]})
    texts = [path.read_text(encoding="utf-8") for path in paths.values()]
    assert [kind for kind, t in zip(paths, texts, strict=True) if key in t or key_2 in t] == []
    document = json.loads(texts[0])
    assert document["targets"] == [
        {
            "name": "reference",
            "base_url": None,
            "profile": "lenient",
            "expected_failures": None,
            "counts": {"PASS": 0, "WARN": 0, "FAIL": 1, "XFAIL": 0, "SKIP": 0},
        }
    ]
    assert document["profile"] == "lenient"
    assert "embedded reference gateway" in texts[1]


def test_no_results_still_gives_valid_honest_reports(tmp_path: Path) -> None:
    paths = write_reports([], tmp_path)
    document = json.loads(paths["json"].read_text(encoding="utf-8"))
    assert default_store().issues("gatecheck.conformance-results", document) == []
    assert document["results"] == [] and document["targets"] == []
    for kind in ("markdown", "html"):
        assert "No checks ran." in paths[kind].read_text(encoding="utf-8")
    page = parsed(paths["html"].read_text(encoding="utf-8"))
    assert page.problems == [] and page.stack == []


def test_undecodable_wire_bytes_survive_the_round_trip(tmp_path: Path) -> None:
    message = "received: " + b"data: \xff\xfe\n".decode("utf-8", "surrogateescape")
    paths = write_reports([CheckResult("sse.utf8", "stream", "FAIL", "alpha", message=message)], tmp_path)
    document = json.loads(paths["json"].read_text(encoding="utf-8"))
    assert document["results"][0]["message"] == message
    assert "\\udcff\\udcfe" in paths["html"].read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("bad_results", "run_info", "error", "match"),
    [
        ([CheckResult("c", "a", "MAYBE", "t")], {}, ValueError, "'MAYBE'.*not one of"),  # type: ignore[arg-type]
        ([CheckResult("c", "a", "PASS", "t", duration_s=-1.0)], {}, ValueError, "duration_s"),
        ([], {"argv": ["--api-key", "x"]}, ValueError, "unknown run_info keys"),
        ([], {"secrets": [b"bytes"]}, TypeError, "Secret or str"),
        ([], {"secrets": "one-string"}, TypeError, "list of Secret or str"),
        ([], {"targets": [{"base_url": "https://x"}]}, ValueError, "name"),
    ],
)
def test_rejects_what_it_cannot_report_honestly(
    tmp_path: Path,
    bad_results: list[CheckResult],
    run_info: dict[str, object],
    error: type[Exception],
    match: str,
) -> None:
    with pytest.raises(error, match=match):
        write_reports(bad_results, tmp_path, run_info=run_info)
    assert not list(tmp_path.iterdir()), "nothing is written when the input is rejected"


def test_safe_url_drops_credentials() -> None:
    assert safe_url("https://u:p@gw.example:8443/v1?api-key=k#frag") == "https://gw.example:8443/v1"
    assert safe_url("http://127.0.0.1:8000") == "http://127.0.0.1:8000"


def test_public_surface() -> None:
    assert sorted(gatecheck.report.__all__) == [
        "JUNIT_FILE",
        "MISSING",
        "REPORT_FILES",
        "summary_table",
        "write_reports",
    ]


def test_request_bodies_are_written_next_to_the_reports_keys_masked(tmp_path: Path) -> None:
    body = b'{"messages": "' + b"x" * 20_000 + f'", "echo": "{CANARY}"}}'.encode()
    record = CheckResult(
        "errors.big", "errors", "FAIL", "alpha", message="FAIL", files={"request-body-0.json": body}
    )
    twice = CheckResult(
        "errors.big2", "errors", "FAIL", "alpha", message="FAIL", files={"request-body-0.json": body}
    )
    write_reports([record, twice], tmp_path, run_info={"secrets": [Secret(CANARY)]})
    saved = (tmp_path / "request-body-0.json").read_bytes()
    assert saved == body.replace(CANARY.encode(), b"***")
    assert "files" not in json.loads((tmp_path / "results.json").read_text())["results"][0]


@pytest.mark.parametrize("name", ["../escape.json", "sub/dir.json", ".hidden", ""])
def test_a_file_name_that_is_not_plain_is_refused_before_anything_is_written(
    tmp_path: Path, name: str
) -> None:
    record = CheckResult("errors.big", "errors", "FAIL", "alpha", message="FAIL", files={name: b"{}"})
    with pytest.raises(ValueError, match="not a plain file name"):
        write_reports([record], tmp_path / "reports")
    assert not (tmp_path / "reports").exists()
