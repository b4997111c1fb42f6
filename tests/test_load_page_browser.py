"""The load report page as a browser renders it (headless Chromium): banner and plots.

Skipped, with the reason printed, when no Chromium is installed (``.ci/run`` installs Debian's
``chromium``). The page's own script records what the browser made of it on ``<body>``: how many
plots there are and how many decoded into real images, the banner's rendered colour and position.
"""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from test_load_report import _summary

from gatecheck.load.html import plots, write_load_html
from gatecheck.load.stats import LoadStats
from gatecheck.load.summary import build_summary
from gatecheck.load.timing import StreamTiming, derive

BROWSER = next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
pytestmark = pytest.mark.skipif(
    BROWSER is None, reason="no headless Chromium on this machine (apt-get install -y chromium)"
)
RED = "rgb(176, 0, 32)"


class _Dom(HTMLParser):
    """The rendered DOM's <body> attributes, the banner's class and text."""

    def __init__(self) -> None:
        super().__init__()
        self.body: dict[str, str | None] = {}
        self.banner_class = ""
        self.in_banner = 0
        self.banner_text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "body":
            self.body = values
        if values.get("id") == "banner":
            self.banner_class = values.get("class") or ""
            self.in_banner = 1
        elif self.in_banner:
            self.in_banner += 1

    def handle_endtag(self, tag: str) -> None:
        if self.in_banner:
            self.in_banner -= 1

    def handle_data(self, data: str) -> None:
        if self.in_banner:
            self.banner_text.append(data)


def _render(page: Path) -> _Dom:
    assert BROWSER is not None
    command = [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page.as_uri()]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = _Dom()
    dom.feed(proc.stdout)
    return dom


def test_the_browser_shows_the_banner_first_and_decodes_every_plot(tmp_path: Path) -> None:
    summary = _summary()
    dom = _render(write_load_html(summary, tmp_path / "run.html"))
    expected = len(plots(summary))
    assert expected == 8
    assert dom.body.get("data-plots") == str(expected)
    assert dom.body.get("data-plots-decoded") == str(expected), "every plot is a real image"
    text = " ".join(" ".join(dom.banner_text).split())
    assert text.startswith("FAIL 40 of 41 requests succeeded (97.6%)")
    assert "SLO: FAILED (1 of 2 objectives missed)" in text
    assert int(dom.body.get("data-banner-top") or 9999) < 200, "the banner is at the top of the page"


def test_nothing_succeeded_is_a_red_banner_in_the_browser(tmp_path: Path) -> None:
    stats = LoadStats()
    for i in range(3):
        refused = StreamTiming(t_start_ns=0, wall_start_s=10.0 + i, t_end_ns=1, status=401, error_code="x")
        stats.add("steady", derive(refused))
    run: dict[str, Any] = {
        "name": "r",
        "scenario": "steady",
        "host": "h",
        "model": "m",
        "dialect": "openai",
        "stream": True,
    }
    dom = _render(write_load_html(build_summary(stats, run, start_s=10.0, end_s=13.0), tmp_path / "r.html"))
    assert "nothing" in dom.banner_class.split()
    assert dom.body.get("data-banner-color") == RED
    assert "Warning: no request succeeded." in " ".join(dom.banner_text)
