"""Hand-made reproductions of issue 9's "What went wrong", each a switch of the double (a quirk) or an option.

Each ``Reproduction`` names the behaviour, how the double is started, which checks run with which
options, the verdicts today's suite gives (``today``, measured) and the verdicts issue 9 asks for
(``wanted``: the allowed verdicts per check; ``area_fails``: an area in which some check, maybe
one not written yet, must FAIL). ``python -m independent.repros`` (from tests/) prints the verdicts
of the current suite for every reproduction; the keys come from $GATECHECK_API_KEY and
$GATECHECK_API_KEY_2, which it sets to test keys when unset.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .limits import KeyLimits
from .server import DoubleConfig, running_double

OK = frozenset({"PASS"})
NOT_FAIL = frozenset({"PASS", "WARN", "SKIP"})
CHECKED_NOT_FAIL = frozenset({"PASS", "WARN"})
NOT_SEEN = frozenset({"SKIP"})
"""Nothing to judge: "not checked: <why>" (issue 9, item 4)."""
CAUGHT = frozenset({"FAIL"})

CHAT_STREAM = (
    "stream_content_type",
    "stream_sse_framing",
    "stream_chunks_valid",
    "stream_chunk_object",
    "stream_identity_constant",
    "stream_role_first",
    "stream_finish_reason_once",
    "stream_done_last",
    "stream_closes_after_done",
    "stream_usage_final",
    "stream_tool_call_deltas",
    "stream_reasoning_order",
    "stream_really_streams",
    "stream_matches_nonstream",
)
RATELIMIT = (
    "ratelimit_rpm_enforced",
    "ratelimit_rpm_not_exceeded",
    "ratelimit_retry_after",
    "ratelimit_headers",
    "ratelimit_remaining_monotonic",
    "ratelimit_retry_after_honoured",
    "ratelimit_tpm_enforced",
)
SEEN_ONLY_ON_429 = RATELIMIT[2:6]
"""The checks that judge the 429s of the burst (retry_after_honoured waits the last one's Retry-After)."""


@dataclass(frozen=True)
class Reproduction:
    """One behaviour of issue 9 on the double, with today's verdicts and the ones issue 9 asks for."""

    name: str
    behaviour: str
    checks: tuple[str, ...]
    """The check ids to run (empty: the area ``marker`` names)."""
    today: Mapping[str, str]
    wanted: Mapping[str, frozenset[str]] = field(default_factory=dict)
    area_fails: str | None = None
    marker: str | None = None
    dead_host: bool = False
    """Point gatecheck at a closed port instead of starting the double."""
    quirks: frozenset[str] = frozenset()
    options: tuple[str, ...] = ()
    rpm: int = 250
    tpm: int = 100_000
    window_s: float = 3.0

    def config(self, keys: tuple[str, ...]) -> DoubleConfig:
        """The double this reproduction runs on."""
        return DoubleConfig(
            {k: KeyLimits(self.rpm, self.tpm) for k in keys}, self.window_s, quirks=self.quirks
        )

    def wrong(self, verdicts: Mapping[str, str], areas: Mapping[str, str]) -> list[str]:
        """How ``verdicts`` differ from what issue 9 asks for (empty: as asked)."""
        found = [
            f"{check}: {verdicts.get(check, 'not run')}, wanted {'/'.join(sorted(allowed))}"
            for check, allowed in self.wanted.items()
            if verdicts.get(check) not in allowed
        ]
        if self.area_fails and not any(
            v == "FAIL" for c, v in verdicts.items() if areas[c] == self.area_fails
        ):
            found.append(f"no check of area {self.area_fails} FAILs")
        return found


def _all(checks: tuple[str, ...], verdict: str) -> dict[str, str]:
    return dict.fromkeys(checks, verdict)


def _each(checks: tuple[str, ...], allowed: frozenset[str]) -> dict[str, frozenset[str]]:
    return dict.fromkeys(checks, allowed)


FUZZ = ("fuzz_valid_requests", "fuzz_invalid_requests")
ANTHROPIC = (
    "anthropic_auth_x_api_key",
    "anthropic_auth_bearer",
    "anthropic_max_tokens_required",
    "anthropic_response_valid",
    "anthropic_stop_reason_max_tokens",
    "anthropic_stream_events_valid",
    "anthropic_stream_order",
    "anthropic_stream_event_names",
    "anthropic_stream_blocks",
    "anthropic_stream_message_delta",
)
OTHER_CHAT_STREAM = tuple(c for c in CHAT_STREAM if c != "stream_chunks_valid")

REPRODUCTIONS: tuple[Reproduction, ...] = (
    Reproduction(
        "openai-only-constraints",
        "errors_invalid_params demands 400 for OpenAI's constraints (stop with 0 or 5 items, n over 128, "
        "tool_choice without tools), which the documents do not state",
        ("errors_invalid_params",),
        today={"errors_invalid_params": "FAIL"},
        wanted={"errors_invalid_params": CHECKED_NOT_FAIL},
    ),
    Reproduction(
        "fuzz-empty-stop",
        'fuzz_invalid_requests demands a 4xx for "stop": [] (OpenAI\'s minItems), seed 7 (as drawn in a '
        "fresh process: the draws of a seed differ after an earlier fuzz run in the same process)",
        ("fuzz_invalid_requests",),
        options=("--fuzz-examples", "10", "--fuzz-seed", "7"),
        today={"fuzz_invalid_requests": "FAIL"},
        wanted={"fuzz_invalid_requests": CHECKED_NOT_FAIL},
    ),
    Reproduction(
        "context-in-words",
        "errors_context_length counts words as tokens: 1,250,001 words of 'x' are 625,007 of the "
        "double's tokens, within deepseek-v4-flash's documented 1M (also in /v1/models)",
        ("errors_context_length",),
        today={"errors_context_length": "FAIL"},
        wanted={"errors_context_length": NOT_FAIL},
    ),
    Reproduction(
        "context-of-unlisted-model",
        "errors_context_length assumes 1M for a model the documents do not list "
        "(double-2m: 2M in /v1/models)",
        ("errors_context_length",),
        options=("--model", "double-2m"),
        today={"errors_context_length": "FAIL"},
        wanted={"errors_context_length": NOT_FAIL},
    ),
    Reproduction(
        "context-code-literal",
        "errors_context_length demands the literal context_length_exceeded; 002's dialect answers "
        "400 INVALID_PARAMS with a message about the context length (double-8k: 8,192 tokens)",
        ("errors_context_length",),
        options=("--model", "double-8k"),
        today={"errors_context_length": "FAIL"},
        wanted={"errors_context_length": OK},
    ),
    Reproduction(
        "tpm-charged-after",
        "ratelimit_tpm_enforced sends 3 requests sized in words; the double counts ~4 characters per "
        "token and charges after the response (the crossing request is served, the next gets 429)",
        ("ratelimit_tpm_enforced",),
        today={"ratelimit_tpm_enforced": "FAIL"},
        wanted={"ratelimit_tpm_enforced": OK},
    ),
    Reproduction(
        "tpm-probe-over-context",
        "ratelimit_tpm_enforced reads three 400 context-length answers (its prompts are over "
        "double-8k's context) as TPM not enforced",
        ("ratelimit_tpm_enforced",),
        options=("--model", "double-8k"),
        today={"ratelimit_tpm_enforced": "FAIL"},
        wanted={"ratelimit_tpm_enforced": NOT_FAIL},
    ),
    Reproduction(
        "tool-calls-null",
        'one chunk schema finding ("tool_calls": null, valid for the SDK) copied into every stream check',
        CHAT_STREAM,
        quirks=frozenset({"tool-calls-null"}),
        today={
            **_all(CHAT_STREAM, "FAIL"),
            "stream_tool_call_deltas": "PASS",
        },
        wanted={**_each(OTHER_CHAT_STREAM, OK), "stream_chunks_valid": frozenset({"WARN", "FAIL"})},
    ),
    Reproduction(
        "tool-calls-null-lenient",
        "the same under --profile lenient, which cannot soften it today",
        CHAT_STREAM,
        quirks=frozenset({"tool-calls-null"}),
        options=("--profile", "lenient"),
        today={
            **_all(CHAT_STREAM, "FAIL"),
            "stream_tool_call_deltas": "PASS",
        },
        wanted={**_each(OTHER_CHAT_STREAM, OK), "stream_chunks_valid": frozenset({"WARN", "PASS"})},
    ),
    Reproduction(
        "never-writes-12",
        "nonstream_stop assumes the model writes 12; a verbose model never does and is cut at max_tokens",
        ("nonstream_stop",),
        quirks=frozenset({"verbose"}),
        today={"nonstream_stop": "FAIL"},
        wanted={"nonstream_stop": NOT_FAIL},
    ),
    Reproduction(
        "json-cut-at-cap",
        "json_object_mode FAILs JSON cut at max_tokens with finish_reason length (OpenAI documents it)",
        ("json_object_mode",),
        quirks=frozenset({"long-json"}),
        today={"json_object_mode": "FAIL"},
        wanted={"json_object_mode": NOT_FAIL},
    ),
    Reproduction(
        "no-429-ever",
        "no rate limiting at all: the checks that judge 429s PASS without having seen one",
        RATELIMIT,
        quirks=frozenset({"no-ratelimit"}),
        today={
            **_all(SEEN_ONLY_ON_429, "PASS"),
            "ratelimit_rpm_enforced": "FAIL",
            "ratelimit_rpm_not_exceeded": "FAIL",
            "ratelimit_tpm_enforced": "FAIL",
        },
        wanted={
            **_each(SEEN_ONLY_ON_429, NOT_SEEN),
            "ratelimit_rpm_enforced": CAUGHT,
            "ratelimit_rpm_not_exceeded": CAUGHT,
            "ratelimit_tpm_enforced": CAUGHT,
        },
    ),
    Reproduction(
        "redirect-loop",
        "every request answered 307 to itself: no 429 ever, and the 429 checks PASS",
        RATELIMIT,
        quirks=frozenset({"redirect-loop"}),
        today={
            **_all(RATELIMIT, "PASS"),
            "ratelimit_rpm_enforced": "FAIL",
            "ratelimit_tpm_enforced": "FAIL",
        },
        wanted=_each(SEEN_ONLY_ON_429, NOT_SEEN),
    ),
    Reproduction(
        "dead-host",
        "nothing listens on the port: no response at all, and the 429 checks PASS",
        RATELIMIT,
        dead_host=True,
        today={
            **_all(RATELIMIT, "PASS"),
            "ratelimit_rpm_enforced": "FAIL",
            "ratelimit_tpm_enforced": "FAIL",
        },
        wanted={**_each(SEEN_ONLY_ON_429, NOT_SEEN), "ratelimit_rpm_not_exceeded": NOT_SEEN},
    ),
    Reproduction(
        "relayed-upstream-headers",
        "2xx responses relay an upstream's X-RateLimit-Limit 10000 / Remaining 9999 on a 3-RPM key",
        ("ratelimit_headers", "ratelimit_remaining_monotonic"),
        quirks=frozenset({"relayed-headers"}),
        rpm=3,
        tpm=2000,
        today={"ratelimit_headers": "PASS", "ratelimit_remaining_monotonic": "PASS"},
        wanted={"ratelimit_headers": CAUGHT},
    ),
    Reproduction(
        "relayed-upstream-headers-lenient",
        "the same under --profile lenient (any dialect: the relayed x-ratelimit-*-requests count too)",
        ("ratelimit_headers", "ratelimit_remaining_monotonic"),
        quirks=frozenset({"relayed-headers"}),
        options=("--profile", "lenient"),
        rpm=3,
        tpm=2000,
        today={"ratelimit_headers": "PASS", "ratelimit_remaining_monotonic": "PASS"},
        wanted={"ratelimit_headers": CAUGHT},
    ),
    Reproduction(
        "tpm-429-for-requests",
        "TPM switched off, RPM by a token bucket: ratelimit_tpm_enforced PASSes on a 429 that says "
        "it is for requests (3-RPM / 2,000-TPM key)",
        ("ratelimit_tpm_enforced",),
        quirks=frozenset({"tpm-off-bucket"}),
        rpm=3,
        tpm=2000,
        today={"ratelimit_tpm_enforced": "PASS"},
        wanted={"ratelimit_tpm_enforced": CAUGHT},
    ),
    Reproduction(
        "stream-stalls-after-headers",
        "streams send 200 and headers, then nothing: the read timeout after the 200 is ignored",
        CHAT_STREAM,
        quirks=frozenset({"stall-after-headers"}),
        options=("--read-timeout", "1"),
        today={
            **_all(CHAT_STREAM, "PASS"),
            "stream_done_last": "FAIL",
            "stream_usage_final": "FAIL",
            "stream_tool_call_deltas": "FAIL",
            "stream_reasoning_order": "WARN",
            "stream_matches_nonstream": "FAIL",
        },
        wanted=_each(CHAT_STREAM, frozenset({"FAIL", "SKIP"})),
    ),
    Reproduction(
        "fuzz-zero-examples",
        "--fuzz-examples 0: the fuzz checks PASS having sent nothing",
        FUZZ,
        options=("--fuzz-examples", "0"),
        today=_all(FUZZ, "PASS"),
        wanted=_each(FUZZ, NOT_SEEN),
    ),
    Reproduction(
        "chunk-model-name",
        'stream chunks carry "model_name" instead of "model" (missed: model optional in the chunk schema)',
        CHAT_STREAM,
        quirks=frozenset({"model-name-field"}),
        today=_all(CHAT_STREAM, "PASS"),
        wanted={"stream_chunks_valid": CAUGHT},
    ),
    Reproduction(
        "chunk-index-in-delta",
        "stream chunks put the choice index inside delta (missed)",
        CHAT_STREAM,
        quirks=frozenset({"index-in-delta"}),
        today=_all(CHAT_STREAM, "PASS"),
        wanted={"stream_chunks_valid": CAUGHT},
    ),
    Reproduction(
        "messages-openai-envelope",
        "/v1/messages errors in the OpenAI envelope (missed: Messages error bodies are never checked)",
        ("anthropic_max_tokens_required",),
        quirks=frozenset({"openai-envelope-on-messages"}),
        today={"anthropic_max_tokens_required": "PASS"},
        area_fails="anthropic",
    ),
    Reproduction(
        "message-start-zero-input",
        "message_start says input_tokens 0 while the response says more (missed)",
        (),
        marker="anthropic",
        quirks=frozenset({"zero-input-tokens-start"}),
        today=_all(ANTHROPIC, "PASS"),
        area_fails="anthropic",
    ),
    Reproduction(
        "anthropic-tool-use-broken",
        "tool use on /v1/messages ends end_turn with partial_json that is not JSON (missed: no check)",
        (),
        marker="anthropic",
        quirks=frozenset({"anthropic-tool-use-broken"}),
        today=_all(ANTHROPIC, "PASS"),
        area_fails="anthropic",
    ),
    Reproduction(
        "under-admission",
        "admits 2 requests per window on a key declared at 3 RPM (missed: under-admission never checked)",
        RATELIMIT[:6],
        quirks=frozenset({"under-admission"}),
        rpm=3,
        tpm=2000,
        today=_all(RATELIMIT[:6], "PASS"),
        area_fails="ratelimit",
    ),
    Reproduction(
        "plain-text-429",
        "429 bodies in plain text: one error-body finding, owned by one check (issue 9, item 1)",
        RATELIMIT[:6],
        quirks=frozenset({"plain-text-429"}),
        rpm=3,
        tpm=2000,
        today={**_all(RATELIMIT[:6], "PASS"), "ratelimit_rpm_enforced": "FAIL"},
        wanted=_each(RATELIMIT[1:6], OK),
    ),
)


def conform_args(repro: Reproduction, url: str, report_dir: Path) -> list[str]:
    """The ``gatecheck conform`` arguments of one reproduction (keys from the environment)."""
    selection = ["-m", repro.marker] if repro.marker else ["--checks", ",".join(repro.checks)]
    return [
        "conform",
        "--base-url",
        url,
        "--rpm",
        str(repro.rpm),
        "--tpm",
        str(repro.tpm),
        "--report-dir",
        str(report_dir),
        "-q",
        *selection,
        *repro.options,
    ]


def closed_port_url() -> str:
    """A loopback URL on which nothing listens (a port just released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def run(repro: Reproduction, keys: tuple[str, ...], report_dir: Path) -> list[dict[str, Any]]:
    """Start the double as the reproduction says, run its checks, return results.json's results."""
    from gatecheck.cli import main

    if repro.dead_host:
        code = main(conform_args(repro, closed_port_url(), report_dir))
    else:
        with running_double(repro.config(keys)) as double:
            code = main(conform_args(repro, double.url, report_dir))
    if code not in (0, 1):
        raise RuntimeError(f"gatecheck conform exited {code} for {repro.name}")
    results: list[dict[str, Any]] = json.loads((report_dir / "results.json").read_text())["results"]
    return results


def _print_all() -> None:
    """Today's verdicts of every reproduction, for the report."""
    keys = (
        os.environ.setdefault("GATECHECK_API_KEY", "double-repro-key-0001"),
        os.environ.setdefault("GATECHECK_API_KEY_2", "double-repro-key-0002"),
    )
    rows = []
    for repro in REPRODUCTIONS:
        with tempfile.TemporaryDirectory() as tmp:
            results = run(repro, keys, Path(tmp))
        verdicts = {r["check_id"]: r["verdict"] for r in results}
        areas = {r["check_id"]: r["area"] for r in results}
        rows.append((repro.name, verdicts, repro.wrong(verdicts, areas), results))
    for name, verdicts, wrong, results in rows:
        print(f"## {name}\n  verdicts: {verdicts}\n  against issue 9: {wrong or 'as asked'}")
        for r in results:
            if r["verdict"] in ("FAIL", "WARN", "SKIP"):
                print(f"  --- {r['check_id']} {r['verdict']}: {r['message'][:700]}")


if __name__ == "__main__":
    _print_all()
