"""Issue 9's "What went wrong", each reproduced on the double (a quirk) or by an option, with the verdicts
gatecheck must give now that the fixes are in.

A ``Reproduction`` names the behaviour, how the double is started, which checks run with which
options and, for every one of them, the verdict it must reach (``verdicts``), the rules its findings
must name (``rules``, for each FAIL and WARN: one root cause, one finding, in the check that owns
it) and what its "not checked" must say (``reasons``, for each SKIP). ``wrong`` lists every
difference, so a verdict that turns is seen.

Where the table the double was first written with (issue 9's wording) and the lead's verdict
framework differ, the framework wins and the entry says so: a finding is graded by its rule's
provenance (documented and sdk FAIL, protocol and judgement WARN under ``gateway``; ``openai`` fails
protocol too; ``lenient`` fails sdk only), a missing 429 is owned by ``ratelimit_rpm_enforced``, and
a 429 that says it is about requests is no TPM verdict.

The main key is practically unlimited (250 RPM, 1M TPM); the second key, the one the rate-limit
checks burst, has the reproduction's limits. ``python -m independent.repros`` (from tests/) prints
every reproduction's verdicts and what differs; the keys come from $GATECHECK_API_KEY and
$GATECHECK_API_KEY_2, set to test keys when unset.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .limits import KeyLimits
from .server import DoubleConfig, running_double

PASS, WARN, FAIL, SKIP = "PASS", "WARN", "FAIL", "SKIP"
GATECHECK = [sys.executable, "-c", "import sys; from gatecheck.cli import main; sys.exit(main(sys.argv[1:]))"]
"""``gatecheck`` in a process of its own (this interpreter, so this venv)."""
MAIN_LIMITS = KeyLimits(250, 1_000_000)
"""The main key's limits: the suite's own requests never wait for them."""

STREAM = (
    "stream_completes",
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
    "stream_parallel_tool_calls",
    "stream_reasoning_order",
    "stream_really_streams",
    "stream_matches_nonstream",
)
RATELIMIT = (
    "ratelimit_rpm_enforced",
    "ratelimit_rpm_not_exceeded",
    "ratelimit_rpm_admitted",
    "ratelimit_retry_after",
    "ratelimit_headers",
    "ratelimit_remaining_monotonic",
    "ratelimit_429_body",
    "ratelimit_retry_after_honoured",
    "ratelimit_tpm_enforced",
)
NEED_A_429 = tuple(c for c in RATELIMIT if c not in ("ratelimit_rpm_enforced", "ratelimit_tpm_enforced"))
"""The checks that judge the burst's 429s: "not checked" without one (issue 9, item 4)."""
RPM_AREA = RATELIMIT[:-1]
ANTHROPIC = (
    "anthropic_auth_x_api_key",
    "anthropic_auth_bearer",
    "anthropic_max_tokens_required",
    "anthropic_temperature_range",
    "anthropic_top_p_range",
    "anthropic_system_blocks",
    "anthropic_content_blocks",
    "anthropic_error_envelope",
    "anthropic_response_valid",
    "anthropic_stop_reason_max_tokens",
    "anthropic_stop_sequences",
    "anthropic_finish_reason_mapping",
    "anthropic_stream_events_valid",
    "anthropic_stream_order",
    "anthropic_stream_event_names",
    "anthropic_stream_blocks",
    "anthropic_stream_message_delta",
    "anthropic_stream_input_tokens",
    "anthropic_tool_use",
)
FUZZ = ("fuzz_valid_requests", "fuzz_invalid_requests")

ONE_CALL = "the model streamed 1 tool call(s) where two were asked for; two are needed"
"""The double never calls two tools at once: stream_parallel_tool_calls has nothing to judge."""
NO_429 = "no 429 was received"
STALLED = "the stream stalled after its headers (stream_completes reports it)"


@dataclass(frozen=True)
class Reproduction:
    """One behaviour of issue 9 on the double, and the verdicts gatecheck must give on it."""

    name: str
    behaviour: str
    checks: tuple[str, ...]
    verdicts: Mapping[str, str]
    """The verdict of every check run (those not named: PASS)."""
    rules: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """The rule ids of every FAIL and WARN: exactly these, one finding each, and no other check
    reports anything."""
    reasons: Mapping[str, str] = field(default_factory=dict)
    """For every SKIP, a phrase its "not checked" message contains."""
    dead_host: bool = False
    """Point gatecheck at a closed port instead of starting the double."""
    quirks: frozenset[str] = frozenset()
    options: tuple[str, ...] = ()
    rpm: int = 250
    tpm: int = 100_000
    """The second key's limits (the rate-limit checks' key)."""
    window_s: float = 1.0
    """The double's 'minute': the rate-limit checks wait for windows (and Retry-After, whole seconds),
    so keep it short."""
    fresh_process: bool = False
    """Run gatecheck in a process of its own: a fuzz seed draws these examples only in a fresh process
    (hypothesis' draws for a seed depend on its earlier use in the process)."""

    def config(self, main_key: str, rate_key: str) -> DoubleConfig:
        """The double this reproduction runs on: the main key unlimited, the second with its limits."""
        limits = {main_key: MAIN_LIMITS, rate_key: KeyLimits(self.rpm, self.tpm)}
        return DoubleConfig(limits, self.window_s, quirks=self.quirks)

    def wrong(self, results: list[dict[str, Any]]) -> list[str]:
        """How ``results`` (results.json's) differ from what this reproduction must get (empty: none)."""
        found = []
        by_id = {r["check_id"]: r for r in results}
        if set(by_id) != set(self.checks):
            found.append(f"checks run {sorted(by_id)}, expected {sorted(self.checks)}")
        for check_id, result in by_id.items():
            verdict, extra = result["verdict"], result.get("extra", {})
            wanted = self.verdicts.get(check_id, PASS)
            if verdict != wanted:
                found.append(f"{check_id}: {verdict}, must be {wanted}: {result['message'][:300]}")
            elif verdict in (FAIL, WARN) and set(extra.get("rules", ())) != self.rules.get(check_id, set()):
                found.append(
                    f"{check_id}: rules {extra.get('rules')}, must be {sorted(self.rules[check_id])}"
                )
            elif len(extra.get("findings", ())) != len(extra.get("rules", ())):
                found.append(
                    f"{check_id}: {len(extra['findings'])} findings of {extra['rules']}, one per rule"
                )
            elif verdict == SKIP and self.reasons.get(check_id, "not checked:") not in result["message"]:
                found.append(f"{check_id}: says {result['message']!r}, must say {self.reasons[check_id]!r}")
            if extra.get("undeclared_rules"):
                found.append(f"{check_id}: reports undeclared rules {extra['undeclared_rules']}")
        return found


def _all(checks: tuple[str, ...], value: str) -> dict[str, str]:
    return dict.fromkeys(checks, value)


def _rules(*ids: str) -> frozenset[str]:
    return frozenset(ids)


REPRODUCTIONS: tuple[Reproduction, ...] = (
    Reproduction(
        "openai-only-constraints",
        "errors_invalid_params demanded 400 for OpenAI's constraints (stop with 0 or 5 items, n over 128, "
        "tool_choice without tools), which the documents do not state (was FAIL)",
        ("errors_invalid_params",),
        # Issue 9 graded these protocol: a WARN under gateway (a FAIL under openai: the whole-suite test).
        verdicts={"errors_invalid_params": WARN},
        rules={"errors_invalid_params": _rules("request-protocol-constraint")},
    ),
    Reproduction(
        "fuzz-empty-stop",
        'fuzz_invalid_requests demanded a 4xx for "stop": [] (OpenAI\'s minItems), the mutation seed 7 '
        "draws first (was FAIL)",
        ("fuzz_invalid_requests",),
        options=("--fuzz-examples", "1", "--fuzz-seed", "7"),
        fresh_process=True,
        # The same constraint accepted by errors_invalid_params is its finding (a WARN), not this one's.
        verdicts={"fuzz_invalid_requests": SKIP},
        reasons={
            "fuzz_invalid_requests": "every broken constraint was accepted, as errors_invalid_params reports"
        },
    ),
    Reproduction(
        "context-in-words",
        "errors_context_length counted words as tokens: 1,250,001 words of 'x' are 625,007 of the double's "
        "tokens, within deepseek-v4-flash's documented 1M (was FAIL)",
        ("errors_context_length",),
        verdicts={},
    ),
    Reproduction(
        "context-of-unlisted-model",
        "errors_context_length assumed 1M for a model the documents do not list (double-2m: 2M in "
        "/v1/models; was FAIL)",
        ("errors_context_length",),
        options=("--model", "double-2m"),
        verdicts={},
    ),
    Reproduction(
        "context-code-literal",
        "errors_context_length demanded the literal context_length_exceeded; 002's dialect answers 400 "
        "INVALID_PARAMS with a message about the context length (double-8k; was FAIL)",
        ("errors_context_length",),
        options=("--model", "double-8k"),
        verdicts={},
    ),
    Reproduction(
        "tpm-charged-after",
        "ratelimit_tpm_enforced sent 3 requests sized in words; the double counts ~4 characters per token "
        "and charges after the response: the crossing request is served, the next gets 429 (was FAIL)",
        ("ratelimit_tpm_enforced",),
        window_s=2.0,  # eight requests of 13,750 tokens: the burst must fit in the window
        verdicts={},
    ),
    Reproduction(
        "tpm-probe-over-context",
        "ratelimit_tpm_enforced read three 400 context-length answers (its prompts were over double-8k's "
        "context) as TPM not enforced (was FAIL)",
        ("ratelimit_tpm_enforced",),
        options=("--model", "double-8k"),
        verdicts={"ratelimit_tpm_enforced": SKIP},
        reasons={
            "ratelimit_tpm_enforced": "under half the model's context of 8192 tokens fill the TPM of 100000"
        },
    ),
    Reproduction(
        "tool-calls-null",
        'one chunk schema finding ("tool_calls": null, which the OpenAI SDK reads as absent) was copied '
        "into 12 stream checks (was 12 FAIL)",
        STREAM,
        quirks=frozenset({"tool-calls-null"}),
        verdicts={"stream_chunks_valid": WARN, "stream_parallel_tool_calls": SKIP},
        rules={"stream_chunks_valid": _rules("null-optional-field")},
        reasons={"stream_parallel_tool_calls": ONE_CALL},
    ),
    Reproduction(
        "tool-calls-null-lenient",
        "the same under --profile lenient, which could not soften it (was 12 FAIL)",
        STREAM,
        quirks=frozenset({"tool-calls-null"}),
        options=("--profile", "lenient"),
        verdicts={"stream_chunks_valid": WARN, "stream_parallel_tool_calls": SKIP},
        rules={"stream_chunks_valid": _rules("null-optional-field")},
        reasons={"stream_parallel_tool_calls": ONE_CALL},
    ),
    Reproduction(
        "never-writes-12",
        'nonstream_stop assumed the model writes "12"; a verbose model never does and is cut at max_tokens '
        "(was FAIL); the stop string now comes from the model's own answer",
        ("nonstream_stop", "nonstream_max_tokens"),
        quirks=frozenset({"verbose"}),
        verdicts={},
    ),
    Reproduction(
        "json-cut-at-cap",
        "json_object_mode failed JSON cut at max_tokens with finish_reason length, which OpenAI documents "
        "(was FAIL); its JSON prefix is valid, but 64 tokens cannot hold the whole object",
        ("json_object_mode", "json_schema_output"),
        quirks=frozenset({"long-json"}),
        verdicts={"json_object_mode": SKIP},
        reasons={
            "json_object_mode": "cut at max_tokens=64 (finish_reason length) inside a valid JSON object"
        },
    ),
    Reproduction(
        "json-cut-at-cap-judged-with-room",
        "the same with --max-output-tokens 256: the object fits and is judged",
        ("json_object_mode", "json_schema_output"),
        quirks=frozenset({"long-json"}),
        options=("--max-output-tokens", "256"),
        verdicts={},
    ),
    Reproduction(
        "no-429-ever",
        "no rate limiting at all: the checks that judge 429s passed without having seen one",
        RATELIMIT,
        quirks=frozenset({"no-ratelimit"}),
        rpm=5,
        tpm=2000,
        # The double's table wanted ratelimit_rpm_not_exceeded to FAIL too: the framework gives the
        # missing 429 to ratelimit_rpm_enforced alone (one root cause, one finding).
        verdicts={
            **_all(NEED_A_429, SKIP),
            "ratelimit_rpm_enforced": FAIL,
            "ratelimit_tpm_enforced": FAIL,
        },
        rules={
            "ratelimit_rpm_enforced": _rules("ratelimit-never-429"),
            "ratelimit_tpm_enforced": _rules("tpm-unenforced"),
        },
        reasons=dict.fromkeys(NEED_A_429, NO_429),
    ),
    Reproduction(
        "no-ratelimit-declared",
        "a target that declares no rate limiting (capability ratelimit off) gets the area skipped",
        RATELIMIT,
        quirks=frozenset({"no-ratelimit"}),
        options=("--capabilities=-ratelimit",),
        rpm=5,
        tpm=2000,
        verdicts=_all(RATELIMIT, SKIP),
        # The runner's capability skips do not start with "not checked:" (reported to the lead).
        reasons=dict.fromkeys(RATELIMIT, "the target declares it does not offer: ratelimit"),
    ),
    Reproduction(
        "redirect-loop",
        "every request answered 307 to itself: the 429 checks passed (the preflight now refuses such a "
        "target; --no-preflight shows the checks themselves)",
        RATELIMIT,
        quirks=frozenset({"redirect-loop"}),
        options=("--no-preflight",),
        rpm=5,
        tpm=2000,
        verdicts=_all(RATELIMIT, SKIP),
        reasons={
            **dict.fromkeys(NEED_A_429, NO_429),
            "ratelimit_rpm_enforced": "only 0 of 8 requests were admitted (statuses 307 x8)",
            "ratelimit_tpm_enforced": "the calibration request (256 words to deepseek-v4-flash) reported no "
            "usage.prompt_tokens",
        },
    ),
    Reproduction(
        "dead-host",
        "nothing listens on the port: the 429 checks passed, the two 'enforced' checks blamed the limits "
        "(the preflight now refuses such a target; --no-preflight shows the checks themselves)",
        RATELIMIT,
        dead_host=True,
        options=("--no-preflight",),
        rpm=5,
        tpm=2000,
        verdicts=_all(RATELIMIT, SKIP),
        reasons=dict.fromkeys(RATELIMIT, "the target stopped answering"),
    ),
    Reproduction(
        "relayed-upstream-headers",
        "2xx responses relay an upstream's X-RateLimit-Limit 10000 / Remaining 9999 on a 3-RPM key "
        "(was PASS)",
        RPM_AREA,
        quirks=frozenset({"relayed-headers"}),
        rpm=3,
        tpm=2000,
        verdicts={"ratelimit_headers": FAIL, "ratelimit_remaining_monotonic": SKIP},
        rules={"ratelimit_headers": _rules("ratelimit-headers-disagree")},
        reasons={"ratelimit_remaining_monotonic": "(ratelimit_headers reports it)"},
    ),
    Reproduction(
        "relayed-upstream-headers-lenient",
        "the same under --profile lenient (was PASS)",
        ("ratelimit_headers", "ratelimit_remaining_monotonic"),
        quirks=frozenset({"relayed-headers"}),
        options=("--profile", "lenient"),
        rpm=3,
        tpm=2000,
        # The double's table wanted FAIL: lenient fails only sdk rules, and ratelimit-headers-disagree
        # is documented (002 Rate Limits), so it is a WARN there.
        verdicts={"ratelimit_headers": WARN, "ratelimit_remaining_monotonic": SKIP},
        rules={"ratelimit_headers": _rules("ratelimit-headers-disagree")},
        reasons={"ratelimit_remaining_monotonic": "(ratelimit_headers reports it)"},
    ),
    Reproduction(
        "tpm-off",
        "TPM switched off, RPM by a token bucket, 3 RPM / 2,000 TPM: ratelimit_tpm_enforced passed on a 429 "
        "that said it was for requests",
        ("ratelimit_tpm_enforced",),
        quirks=frozenset({"tpm-off-bucket"}),
        rpm=3,
        tpm=2000,
        verdicts={"ratelimit_tpm_enforced": FAIL},
        rules={"ratelimit_tpm_enforced": _rules("tpm-unenforced")},
    ),
    Reproduction(
        "tpm-429-for-requests",
        "the same at 2 RPM: the request after the TPM is filled meets the RPM first, a 429 about requests",
        ("ratelimit_tpm_enforced",),
        quirks=frozenset({"tpm-off-bucket"}),
        rpm=2,
        tpm=2000,
        # The double's table wanted FAIL: a 429 that says it is about requests is no TPM verdict
        # (issue 9, item 3), and 2 requests cannot pass the TPM by a request. tpm-off is the FAIL.
        verdicts={"ratelimit_tpm_enforced": SKIP},
        reasons={"ratelimit_tpm_enforced": "the 429 after 2 requests says it is about requests"},
    ),
    Reproduction(
        "stream-stalls-after-headers",
        "chat streams send 200 and headers, then nothing: the read timeout after the 200 was ignored "
        "(was 9 PASS)",
        STREAM,
        quirks=frozenset({"stall-after-headers"}),
        options=("--read-timeout", "1"),
        # The stream every stream check shares stalls once, reported by stream_completes; the tool-call,
        # parallel-call and reasoning checks send streams of their own, each of which stalls too, and
        # each reports its own (the same rule on three more requests).
        verdicts={
            **_all(STREAM, SKIP),
            "stream_completes": FAIL,
            "stream_tool_call_deltas": FAIL,
            "stream_parallel_tool_calls": FAIL,
            "stream_reasoning_order": FAIL,
        },
        rules=dict.fromkeys(
            (
                "stream_completes",
                "stream_tool_call_deltas",
                "stream_parallel_tool_calls",
                "stream_reasoning_order",
            ),
            _rules("stream-incomplete"),
        ),
        reasons=dict.fromkeys(STREAM, STALLED),
    ),
    Reproduction(
        "fuzz-zero-examples",
        "--fuzz-examples 0: the fuzz checks passed having sent nothing",
        FUZZ,
        options=("--fuzz-examples", "0"),
        verdicts=_all(FUZZ, SKIP),
        reasons=dict.fromkeys(FUZZ, "--fuzz-examples 0 draws no request"),
    ),
    Reproduction(
        "chunk-model-name",
        'stream chunks carry "model_name" instead of "model" (missed: model was optional in chunks)',
        STREAM,
        quirks=frozenset({"model-name-field"}),
        verdicts={"stream_chunks_valid": FAIL, "stream_parallel_tool_calls": SKIP},
        rules={"stream_chunks_valid": _rules("stream-chunk-identity-missing")},
        reasons={"stream_parallel_tool_calls": ONE_CALL},
    ),
    Reproduction(
        "chunk-index-in-delta",
        "stream chunks put the choice index inside delta (missed)",
        STREAM,
        quirks=frozenset({"index-in-delta"}),
        verdicts={"stream_chunks_valid": FAIL, "stream_parallel_tool_calls": SKIP},
        rules={"stream_chunks_valid": _rules("stream-choice-no-index")},
        reasons={"stream_parallel_tool_calls": ONE_CALL},
    ),
    Reproduction(
        "messages-openai-envelope",
        "/v1/messages errors in the OpenAI envelope (missed: Messages error bodies were never checked)",
        ANTHROPIC,
        quirks=frozenset({"openai-envelope-on-messages"}),
        verdicts={"anthropic_error_envelope": FAIL},
        rules={"anthropic_error_envelope": _rules("anthropic-error-envelope")},
    ),
    Reproduction(
        "message-start-zero-input",
        "message_start says input_tokens 0 while the same request not streamed counts more (missed)",
        ANTHROPIC,
        quirks=frozenset({"zero-input-tokens-start"}),
        # The double's table wanted a FAIL: the rule is Anthropic's reference (protocol), a WARN under
        # gateway; the Anthropic SDK takes input_tokens from message_delta's usage too.
        verdicts={"anthropic_stream_input_tokens": WARN},
        rules={"anthropic_stream_input_tokens": _rules("anthropic-stream-input-tokens")},
    ),
    Reproduction(
        "message-start-zero-input-openai",
        "the same under --profile openai, which fails protocol rules",
        ("anthropic_stream_input_tokens",),
        quirks=frozenset({"zero-input-tokens-start"}),
        options=("--profile", "openai"),
        verdicts={"anthropic_stream_input_tokens": FAIL},
        rules={"anthropic_stream_input_tokens": _rules("anthropic-stream-input-tokens")},
    ),
    Reproduction(
        "anthropic-tool-use-broken",
        "tool use on /v1/messages ends end_turn with partial_json that is not JSON (missed: no check)",
        ANTHROPIC,
        quirks=frozenset({"anthropic-tool-use-broken"}),
        # The double's table wanted a FAIL: both rules are Anthropic's reference (protocol), a WARN under
        # gateway. The Anthropic SDK 2.17 does not break on it: its stream accumulator parses the cut
        # JSON in partial mode ({"city": "Quito"}) and raises nothing.
        verdicts={"anthropic_tool_use": WARN},
        rules={
            "anthropic_tool_use": _rules("anthropic-tool-input-invalid", "anthropic-tool-use-stop-reason")
        },
    ),
    Reproduction(
        "under-admission",
        "admits 2 requests per window on a key declared at 3 RPM (missed: under-admission was never checked)",
        RATELIMIT,
        quirks=frozenset({"under-admission"}),
        rpm=3,
        tpm=2000,
        # TPM: the third request meets the RPM the double really enforces (2), a 429 about requests.
        verdicts={"ratelimit_rpm_admitted": FAIL, "ratelimit_tpm_enforced": SKIP},
        rules={"ratelimit_rpm_admitted": _rules("ratelimit-under-admit")},
        reasons={"ratelimit_tpm_enforced": "the 429 after 2 requests says it is about requests"},
    ),
    Reproduction(
        "plain-text-429",
        "429 bodies in plain text: body findings of ratelimit_429_body only, not also 'RPM not enforced'",
        RPM_AREA,
        quirks=frozenset({"plain-text-429"}),
        rpm=3,
        tpm=2000,
        verdicts={"ratelimit_429_body": FAIL},
        rules={"ratelimit_429_body": _rules("error-content-type", "error-body")},
    ),
    Reproduction(
        "plain-text-429-tpm",
        'the TPM 429 in plain text ("Too Many Requests", HTTP\'s reason phrase) with '
        "X-RateLimit-Remaining-Tokens 0 and X-RateLimit-Remaining 1: a 429 about tokens",
        ("ratelimit_tpm_enforced",),
        quirks=frozenset({"plain-text-429"}),
        rpm=3,
        tpm=2000,
        verdicts={},
    ),
    Reproduction(
        "preflight-then-burst",
        "the faithful double, the rate-limit area alone: the preflight's request on the second key must not "
        "be taken for a burst's admission (ratelimit_rpm_admitted said 4 of 5 admitted)",
        RPM_AREA,
        rpm=5,
        tpm=20_000,
        verdicts={},
    ),
)


def conform_args(repro: Reproduction, url: str, report_dir: Path) -> list[str]:
    """The ``gatecheck conform`` arguments of one reproduction (keys from the environment)."""
    return [
        "conform",
        "--base-url",
        url,
        "--rpm",
        str(MAIN_LIMITS.rpm),
        "--tpm",
        str(MAIN_LIMITS.tpm),
        "--rpm-2",
        str(repro.rpm),
        "--tpm-2",
        str(repro.tpm),
        "--ratelimit-window",
        f"{repro.window_s:g}",
        "--report-dir",
        str(report_dir),
        "-q",
        "--checks",
        ",".join(repro.checks),
        *repro.options,
    ]


def closed_port_url() -> str:
    """A loopback URL on which nothing listens (a port just released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _conform(repro: Reproduction, args: list[str]) -> int:
    """``gatecheck conform`` in this process, or in a fresh one (bounded) when the reproduction needs it."""
    if not repro.fresh_process:
        from gatecheck.cli import main

        return main(args)
    return subprocess.run([*GATECHECK, *args], timeout=120, check=False).returncode


def run(repro: Reproduction, keys: tuple[str, str], report_dir: Path) -> list[dict[str, Any]]:
    """Start the double as the reproduction says, run its checks, return results.json's results."""
    if repro.dead_host:
        code = _conform(repro, conform_args(repro, closed_port_url(), report_dir))
    else:
        with running_double(repro.config(*keys)) as double:
            code = _conform(repro, conform_args(repro, double.url, report_dir))
    report = report_dir / "results.json"
    results: list[dict[str, Any]] = json.loads(report.read_text())["results"] if report.exists() else []
    nothing_checked = bool(results) and all(r["verdict"] == SKIP for r in results)
    if code not in (0, 1) and not (code == 2 and nothing_checked):  # 2: "nothing was checked"
        raise RuntimeError(f"gatecheck conform exited {code} for {repro.name}")
    return results


def _print_all() -> None:
    """Every reproduction's verdicts and what differs from what it must get, for a report."""
    keys = (
        os.environ.setdefault("GATECHECK_API_KEY", "double-repro-key-0001"),
        os.environ.setdefault("GATECHECK_API_KEY_2", "double-repro-key-0002"),
    )
    rows = []
    for repro in REPRODUCTIONS:
        with tempfile.TemporaryDirectory() as tmp:
            results = run(repro, keys, Path(tmp))
        rows.append((repro, results))
    for repro, results in rows:
        verdicts = {r["check_id"]: r["verdict"] for r in results if r["verdict"] != PASS}
        print(f"## {repro.name}: {verdicts or 'all PASS'}")
        for line in repro.wrong(results) or ["as it must"]:
            print(f"  {line}")


if __name__ == "__main__":
    _print_all()
