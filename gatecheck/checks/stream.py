"""Streaming chat completions (000, 003, 004; OpenAI; the WHATWG SSE format).

One streamed answer (with ``include_usage``) is decoded once with the project's SSE decoder and
assembled once with ``ChatStreamAssembler``; the checks below each judge one rule of it. Protocol
violations come from the assembler as data (``Violation.rule``); a check reports the ones it owns,
quoting the offending event's raw bytes.

One root cause, one finding: a shared stream that was answered non-200, carried no event, carried
an error event, or was cut off or stalled before ``data: [DONE]`` is reported by its owner
(``stream_completes`` for the basic stream, the only reader for the others). The other checks
judge their own rule on what arrived and, for a rule about the end of the stream, say "not
checked". The chunk schema is ``stream_chunks_valid``'s alone.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gatecheck.checks import requests as rq
from gatecheck.checks.base import (
    Cost,
    Failure,
    NotChecked,
    check,
    observation,
    owned_elsewhere,
    requires,
)
from gatecheck.checks.chat import FINISH_REASONS, check_usage, shared_message
from gatecheck.checks.context import CheckContext
from gatecheck.checks.wire import (
    Capture,
    as_dict,
    as_json,
    describe,
    excerpt,
    header,
    invalid_events,
    is_json_object_prefix,
    report_capture,
)

if TYPE_CHECKING:
    from gatecheck.assemble import AssembledChat
    from gatecheck.client import Exchange
    from gatecheck.sse import SSEEvent

FIELDS = "000 Field Reference"
SSE = "000 Streaming SSE Chunks; WHATWG SSE"

BURST_SPREAD_NS = 2_000_000
"""First and last content arriving closer than this (2 ms), in one read, is a burst, not a stream."""

MIN_CONTENT_EVENTS = 4
"""Fewer content events than this cannot show whether a stream streams."""

OWNER = "stream_completes"
"""The check that reports why the shared basic stream did not arrive whole."""

BREAKAGE_RULES = ("stream-status", "stream-no-events", "stream-error-event", "stream-incomplete")
"""What the owner of a stream reports when the stream did not arrive whole."""

_READER_RULES = (*BREAKAGE_RULES, "sse-unterminated")
"""What the only reader of a stream reports when it did not arrive whole (framing included)."""

_PAYLOAD_RULES = ("invalid-json", "not-an-object", "malformed")
_STALLED = frozenset({"read_timeout", "total_timeout", "stall"})


class StreamCapture(Capture["AssembledChat"]):
    """One streamed chat exchange: its events, the undelivered tail, and the assembled answer."""

    rule_prefix = "stream"

    @property
    def chat(self) -> AssembledChat:
        """The assembled answer."""
        return self.assembled

    @property
    def done_t_ns(self) -> int | None:
        """Arrival time of ``data: [DONE]``, None when it never came."""
        return next((e.t_ns for e in self.events if e.data.strip() == "[DONE]"), None)


def capture(ctx: CheckContext, body: dict[str, Any]) -> StreamCapture:
    """Send a stream request and decode and assemble whatever came back."""
    return decode_capture(ctx.chat(body), ctx.profile.reasoning_field)


def decode_capture(exchange: Exchange, reasoning_field: str) -> StreamCapture:
    """Decode and assemble a streamed exchange (never raises on bad bytes)."""
    from gatecheck.assemble import ChatStreamAssembler

    return StreamCapture.of(exchange, ChatStreamAssembler(reasoning_field=reasoning_field))


def breakage(capture_: StreamCapture) -> Failure | None:
    """Why the stream did not arrive whole (its one root cause), or None when it ran to its end."""
    exchange = capture_.exchange
    if exchange.status != 200:
        return Failure(
            title=f"the stream request was answered {exchange.status or 'with nothing'}",
            rule="stream-status",
            expected="HTTP 200 with an event stream",
            received=describe(exchange),
            exchange=exchange,
        )
    if capture_.chat.error is not None:
        raw = next((v.raw for v in capture_.violations("error-event")), b"")
        return Failure(
            title="the stream carried a mid-stream error event",
            rule="stream-error-event",
            expected="a complete stream (a mid-stream upstream error is reported as such)",
            received=f"error {as_json(capture_.chat.error)}; wire {excerpt(raw)}",
            exchange=exchange,
        )
    if exchange.error is not None and capture_.done_t_ns is None:
        how = "stalled" if exchange.error_kind in _STALLED else "was cut off"
        count = len(capture_.events)
        last = excerpt(capture_.events[-1].raw, 200) if capture_.events else "none"
        return Failure(
            title=f"the stream {how} after {count} events"
            if count
            else f"the stream {how} after its headers",
            rule="stream-incomplete",
            expected="the stream runs to data: [DONE] and the response ends",
            received=f"reading stopped: {exchange.error}; last event {last}",
            exchange=exchange,
        )
    if not capture_.events and any(line.startswith(b"data:") for line in capture_.tail.splitlines()):
        return Failure(
            title="the stream ends inside its first event: no event is ended by a blank line",
            rule="sse-unterminated",
            expected="every event ended by a blank line",
            received=f"unterminated tail {excerpt(capture_.tail)}",
            exchange=exchange,
        )
    if not capture_.events:
        return Failure(
            title="the 200 answer to a stream request carried no event",
            rule="stream-no-events",
            expected='an event stream ("data: {chunk}" events, then data: [DONE])',
            received=describe(exchange),
            exchange=exchange,
        )
    return None


def arrived(ctx: CheckContext, capture_: StreamCapture, owner: str = OWNER) -> StreamCapture:
    """The capture when some of the stream arrived to judge; else the owner's finding.

    In ``owner`` any breakage is the finding. Elsewhere a stream with nothing to judge (not 200, no
    event) is "not checked"; a partial one is returned, for rules about what arrived.
    """
    exchange = capture_.exchange
    if exchange.error_kind == "too_large":
        raise NotChecked(f"not checked: the stream exceeded the response size bound ({exchange.error})")
    problem = breakage(capture_)
    if problem is None:
        return capture_
    owner = _owner_of(problem, owner)
    if ctx.check.id == owner or exchange.status != 200 or not capture_.events:
        ctx.owned_by(owner, problem)
    return capture_


def ran_to_end(ctx: CheckContext, capture_: StreamCapture, owner: str = OWNER) -> bool:
    """True when the stream arrived whole, so rules about its end can be judged.

    Otherwise the owner reports why: a check that already found a fault in what arrived reports
    that (False); one that found none is "not checked" (NotChecked).
    """
    problem = breakage(capture_)
    if problem is None:
        return True
    if ctx.failures:
        return False
    ctx.owned_by(_owner_of(problem, owner), problem)


def _owner_of(problem: Failure, owner: str) -> str:
    """Who reports ``problem``: the framing check when no event of the basic stream ended, else ``owner``."""
    return "stream_sse_framing" if owner == OWNER and problem.rule == "sse-unterminated" else owner


@observation(cost=Cost(1, rq.SHORT_TOKENS))
def basic_stream(ctx: CheckContext) -> StreamCapture:
    """The plain question of ``basic_answer``, streamed with include_usage."""
    return capture(ctx, rq.streaming(rq.basic(ctx.target.models.chat)))


@observation(cost=Cost(1, 64))
def tool_stream(ctx: CheckContext) -> StreamCapture:
    """A forced call of get_weather, streamed."""
    named = {"type": "function", "function": {"name": "get_weather"}}
    return capture(ctx, rq.streaming(rq.with_tools(ctx.target.models.chat, named)))


@observation(cost=Cost(1, rq.SHORT_TOKENS))
def reasoning_stream(ctx: CheckContext) -> StreamCapture:
    """The plain question streamed from the reasoning model with reasoning_effort low."""
    body = rq.basic(ctx.target.models.reasoning, reasoning_effort="low")
    return capture(ctx, rq.streaming(body))


@check(
    "stream",
    "000 Streaming SSE Chunks (the stream ends with data: [DONE]); 004 Request Body (stream)",
    rules=BREAKAGE_RULES,
)
@requires("streaming")
def stream_completes(ctx: CheckContext, basic_stream: StreamCapture) -> None:
    """A stream request gets 200 and events running to data: [DONE]: no error event, never cut or stalled."""
    arrived(ctx, basic_stream)


@check(
    "stream", "004 Request Body (stream: the response is text/event-stream)", rules=("stream-content-type",)
)
@requires("streaming")
def stream_content_type(ctx: CheckContext, basic_stream: StreamCapture) -> None:
    """A stream is served with Content-Type text/event-stream."""
    exchange = arrived(ctx, basic_stream).exchange
    ctype = header(exchange, "content-type") or ""
    if ctype.split(";")[0].strip().lower() != "text/event-stream":
        raise Failure(
            title="the stream is not served as text/event-stream",
            rule="stream-content-type",
            expected="Content-Type: text/event-stream",
            received=f"Content-Type {ctype or '(none)'}",
            exchange=exchange,
        )


@check("stream", SSE, rules=("sse-undecodable", "sse-multiline-event", "sse-unterminated"))
@requires("streaming")
def stream_sse_framing(ctx: CheckContext, basic_stream: StreamCapture) -> None:
    """Each event is one ``data:`` line ended by a blank line, and the stream ends on an event boundary."""
    capture_ = arrived(ctx, basic_stream)
    if capture_.decode_error is not None:
        raise Failure(
            title="the event stream cannot be decoded",
            rule="sse-undecodable",
            expected="a WHATWG event stream",
            received=capture_.decode_error,
            exchange=capture_.exchange,
        )
    for event in capture_.events:
        if "\n" in event.data:
            ctx.record(
                Failure(
                    title="an event carries several data lines (events not separated by a blank line?)",
                    rule="sse-multiline-event",
                    expected='one "data: <json>" line per event, then a blank line',
                    received=f"wire {excerpt(event.raw)}",
                    exchange=capture_.exchange,
                )
            )
            break
    if ran_to_end(ctx, capture_) and capture_.tail.strip():
        ctx.record(
            Failure(
                title="the stream ends inside an event (no closing blank line)",
                rule="sse-unterminated",
                expected="every event ended by a blank line",
                received=f"unterminated tail {excerpt(capture_.tail)}",
                exchange=capture_.exchange,
            )
        )


@check(
    "stream",
    f"{SSE} (every data payload but [DONE] is one JSON chunk); {FIELDS}",
    rules=(
        "stream-invalid-json",
        "stream-not-an-object",
        "stream-malformed",
        "stream-chunk-schema",
        "stream-chunk-identity-missing",
        "stream-choice-no-index",
        "null-optional-field",
    ),
)
@requires("streaming")
def stream_chunks_valid(ctx: CheckContext, basic_stream: StreamCapture) -> None:
    """Every payload but [DONE] is a JSON object valid against openai.chat.chunk (judged on what arrived)."""
    capture_ = arrived(ctx, basic_stream)
    report_capture(
        ctx,
        capture_,
        _PAYLOAD_RULES,
        "a stream payload is not a well-formed chunk",
        "each data payload is one JSON chunk object",
    )
    # One finding per root cause: a payload already reported above, or an error event (the
    # owner's), is not validated again; a constraint another check of this stream owns is its.
    skipped = {v.index for v in capture_.violations(*_PAYLOAD_RULES, "error-event")}
    chunks = [e for position, e in enumerate(capture_.events) if position not in skipped]
    others = owned_elsewhere(ctx.check.id, "basic_stream")
    for failure in invalid_events(
        ctx.store,
        chunks,
        "openai.chat.chunk",
        rule="stream-chunk-schema",
        what="a chunk",
        exchange=capture_.exchange,
    ):
        if failure.rule not in others:
            ctx.record(failure)


@check("stream", f"{FIELDS} (object: always chat.completion.chunk)", rules=("stream-object-wrong",))
@requires("streaming")
def stream_chunk_object(ctx: CheckContext, basic_stream: StreamCapture) -> None:
    """object is chat.completion.chunk in every chunk."""
    report_capture(
        ctx,
        arrived(ctx, basic_stream),
        ("object-wrong",),
        "a chunk's object is not chat.completion.chunk",
        'object "chat.completion.chunk"',
    )


@check(
    "stream",
    f"{FIELDS} (id, created, model); OpenAI",
    rules=("stream-id-changed", "stream-created-changed", "stream-model-changed"),
)
@requires("streaming")
def stream_identity_constant(ctx: CheckContext, basic_stream: StreamCapture) -> None:
    """id, created and model are the same in every chunk."""
    report_capture(
        ctx,
        arrived(ctx, basic_stream),
        ("id-changed", "created-changed", "model-changed"),
        "id, created or model changed mid-stream",
        "the same id, created and model in every chunk",
    )


@check(
    "stream",
    f"{FIELDS} (choices[].delta.role: only in the first chunk)",
    rules=("stream-role-not-first", "stream-role-missing", "stream-role-wrong"),
)
@requires("streaming")
def stream_role_first(ctx: CheckContext, basic_stream: StreamCapture) -> None:
    """delta.role appears in a choice's first delta only (and says assistant)."""
    capture_ = arrived(ctx, basic_stream)
    report_capture(
        ctx,
        capture_,
        ("role-not-first",),
        "delta.role appears after the first chunk",
        "role in the first delta only",
    )
    report_capture(
        ctx, capture_, ("role-missing",), "the first delta has no role", 'role "assistant" in the first delta'
    )
    for index, choice in capture_.chat.choices.items():
        if choice.role not in (None, "assistant"):
            ctx.record(
                Failure(
                    title=f"choice {index} streams role {as_json(choice.role)}",
                    rule="stream-role-wrong",
                    expected='role "assistant"',
                    received=f"role {as_json(choice.role)}",
                    exchange=capture_.exchange,
                )
            )


@check(
    "stream",
    f"{FIELDS} (finish_reason); OpenAI",
    rules=(
        "stream-finish-reason-repeated",
        "stream-content-after-finish",
        "stream-finish-reason-enum",
        "stream-finish-reason-missing",
    ),
)
@requires("streaming")
def stream_finish_reason_once(ctx: CheckContext, basic_stream: StreamCapture) -> None:
    """Each choice has exactly one non-null finish_reason, a documented value, and nothing after it."""
    capture_ = arrived(ctx, basic_stream)
    report_capture(
        ctx,
        capture_,
        ("finish-reason-repeated", "content-after-finish"),
        "finish_reason is not given exactly once, last",
        "exactly one non-null finish_reason per choice, last",
    )
    for index, choice in capture_.chat.choices.items():
        if choice.finish_reason is not None and choice.finish_reason not in FINISH_REASONS:
            ctx.record(
                Failure(
                    title=f"choice {index} ends with an undocumented finish_reason",
                    rule="stream-finish-reason-enum",
                    expected=f"one of {', '.join(FINISH_REASONS)}",
                    received=f"finish_reason {as_json(choice.finish_reason)}",
                    exchange=capture_.exchange,
                )
            )
    if ran_to_end(ctx, capture_):
        report_capture(
            ctx,
            capture_,
            ("finish-reason-missing",),
            "a choice never got a finish_reason",
            "a non-null finish_reason for every choice by the end of the stream",
        )


@check(
    "stream",
    "000 Streaming SSE Chunks (data: [DONE]); 004",
    rules=("stream-data-after-done", "stream-missing-done"),
)
@requires("streaming")
def stream_done_last(ctx: CheckContext, basic_stream: StreamCapture) -> None:
    """The stream ends with ``data: [DONE]`` and nothing follows it."""
    capture_ = arrived(ctx, basic_stream)
    report_capture(
        ctx,
        capture_,
        ("data-after-done",),
        "an event follows data: [DONE]",
        "data: [DONE] as the last event, nothing after it",
    )
    if ran_to_end(ctx, capture_):
        report_capture(
            ctx,
            capture_,
            ("missing-done",),
            "the stream does not end with data: [DONE]",
            "data: [DONE] as the last event",
        )


@check("stream", "000 Best Practices; WHATWG SSE (the server ends the response)", rules=("stream-left-open",))
@requires("streaming")
def stream_closes_after_done(ctx: CheckContext, basic_stream: StreamCapture) -> None:
    """The server closes the response soon after ``data: [DONE]`` (a stream left open is a failure)."""
    capture_ = arrived(ctx, basic_stream)
    exchange = capture_.exchange
    done = capture_.done_t_ns
    if done is None:
        ran_to_end(ctx, capture_)
        raise NotChecked("not checked: the stream sent no data: [DONE] (stream_done_last reports it)")
    lingered_s = (exchange.t_end_ns - done) / 1e9
    if not exchange.server_closed or lingered_s > ctx.settings.close_grace_s:
        raise Failure(
            title="the connection stayed open after data: [DONE]",
            rule="stream-left-open",
            expected=f"the response ends within {ctx.settings.close_grace_s:g} s of data: [DONE]",
            received=(
                f"still open {lingered_s:.1f} s after [DONE]"
                + (f"; reading stopped: {exchange.error}" if exchange.error else "")
            ),
            exchange=exchange,
        )


@check(
    "stream",
    "000 Field Reference (usage: only in the last chunk); 003 Include Usage; OpenAI",
    rules=(
        "stream-usage-repeated",
        "stream-usage-with-choices",
        "stream-usage-missing",
        "stream-usage-total",
        "stream-usage-not-last",
    ),
)
@requires("streaming")
def stream_usage_final(ctx: CheckContext, basic_stream: StreamCapture) -> None:
    """With include_usage, usage comes once, on the last chunk, with total = prompt + completion."""
    capture_ = arrived(ctx, basic_stream)
    report_capture(
        ctx,
        capture_,
        ("usage-repeated",),
        "usage is on more than one chunk",
        "usage on exactly one chunk: the last before [DONE]",
    )
    if ctx.profile.stream_usage == "separate-chunk":
        report_capture(
            ctx,
            capture_,
            ("usage-with-choices",),
            "the usage chunk also carries choices",
            "usage on an extra final chunk whose choices is empty (OpenAI)",
        )
    usage = capture_.chat.usage
    if usage is not None:
        check_usage(ctx, usage, capture_.exchange, "stream-usage")
    if not ran_to_end(ctx, capture_):
        return
    report_capture(
        ctx,
        capture_,
        ("usage-not-last",),
        "usage is not on the last chunk",
        "usage on exactly one chunk: the last before [DONE]",
    )
    if usage is None:
        last = excerpt(capture_.events[-1].raw) if capture_.events else "none"
        ctx.record(
            Failure(
                title="include_usage did not give a usage chunk",
                rule="stream-usage-missing",
                expected="a final chunk with usage (stream_options.include_usage is true)",
                received=f"no usage in {len(capture_.events)} events; last {last}",
                exchange=capture_.exchange,
            )
        )


_TOOL_DELTA_RULES = (
    "tool-call-no-index",
    "tool-call-index-gap",
    "tool-call-header-repeated",
    "tool-call-header-missing",
)


@check(
    "stream",
    "000 Streaming with Tool Calls; OpenAI streaming tool calls",
    markers=("tools",),
    rules=(
        *_READER_RULES,
        *(f"stream-{r}" for r in _TOOL_DELTA_RULES),
        "stream-tool-call-arguments-invalid",
        "stream-tool-call-missing",
    ),
)
@requires("streaming", "tools")
def stream_tool_call_deltas(ctx: CheckContext, tool_stream: StreamCapture) -> None:
    """Tool-call deltas have contiguous indices, id/type/name on the first fragment only, JSON arguments."""
    capture_ = arrived(ctx, tool_stream, owner=ctx.check.id)
    rules = (
        *_TOOL_DELTA_RULES,
        *(() if cut_mid_arguments(capture_.chat) else ("tool-call-arguments-invalid",)),
    )
    report_capture(
        ctx,
        capture_,
        rules,
        "the streamed tool call is malformed",
        "indexed fragments 0.., id/type/name on the first only, arguments concatenating to JSON",
    )
    calls = [c for choice in capture_.chat.choices.values() for c in choice.tool_calls.values()]
    if not calls:
        raise Failure(
            title="a forced tool call was not streamed",
            rule="stream-tool-call-missing",
            expected="tool_calls deltas for get_weather (tool_choice names it)",
            received=f"content {excerpt(capture_.chat.choices[0].content if capture_.chat.choices else '')}",
            exchange=capture_.exchange,
        )


def cut_mid_arguments(chat: AssembledChat) -> bool:
    """True when every tool call whose arguments are not JSON was cut by max_tokens inside them.

    ``finish_reason: "length"`` with a valid prefix of a JSON object is the token limit at work,
    not a malformed call.
    """
    for choice in chat.choices.values():
        for call in choice.tool_calls.values():
            try:
                json.loads(call.arguments)
            except ValueError:
                if choice.finish_reason != "length" or not is_json_object_prefix(call.arguments):
                    return False
    return True


@dataclass(frozen=True)
class ToolFragment:
    """One tool-call fragment of choice 0 as it arrived: its event, index, header and argument text."""

    event: int
    index: int
    id: str | None
    arguments: str


def tool_fragments(chat: AssembledChat) -> list[ToolFragment]:
    """Choice 0's indexed tool-call fragments in stream order (unindexed ones are another check's finding)."""
    found = []
    for parsed in chat.chunks:
        choices = parsed.data.get("choices")
        for choice in choices if isinstance(choices, list) else []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            calls = as_dict(choice.get("delta")).get("tool_calls")
            for call in calls if isinstance(calls, list) else []:
                call = as_dict(call)
                index, call_id = call.get("index"), call.get("id")
                arguments = as_dict(call.get("function")).get("arguments")
                if isinstance(index, int) and not isinstance(index, bool):
                    found.append(
                        ToolFragment(
                            parsed.event_index,
                            index,
                            call_id if isinstance(call_id, str) and call_id else None,
                            arguments if isinstance(arguments, str) else "",
                        )
                    )
    return found


@check(
    "stream",
    "000 Streaming with Tool Calls; OpenAI streaming tool calls (one index and one id per call)",
    markers=("tools",),
    cost=Cost(1, 64),
    rules=(
        *_READER_RULES,
        "stream-tool-calls-same-index",
        "tool-call-ids-distinct",
        "stream-tool-calls-interleaved",
    ),
)
@requires("streaming", "tools")
def stream_parallel_tool_calls(ctx: CheckContext) -> None:
    """Two streamed tool calls have distinct indices and ids, each call's fragments in one run.

    Calibrated: a model that makes one call gives nothing to judge ("not checked").
    """
    capture_ = arrived(
        ctx, capture(ctx, rq.streaming(rq.parallel_tools(ctx.target.models.chat))), ctx.check.id
    )
    fragments = tool_fragments(capture_.chat)
    ids_at: dict[int, list[str]] = {}
    for fragment in fragments:
        if fragment.id is not None and fragment.id not in ids_at.setdefault(fragment.index, []):
            ids_at[fragment.index].append(fragment.id)
    calls = sum(max(len(ids), 1) for ids in ids_at.values())
    if calls < 2:
        raise NotChecked(
            f"not checked: the model streamed {calls} tool call(s) where two were asked for; two are needed"
        )
    exchange = capture_.exchange
    for index, ids in ids_at.items():
        if len(ids) > 1:
            ctx.record(
                Failure(
                    title=f"{len(ids)} tool calls stream under the same index {index}",
                    rule="stream-tool-calls-same-index",
                    expected="one index per tool call (the OpenAI SDK merges the fragments of an index "
                    "into one call, concatenating ids and arguments)",
                    received=f"index {index} carries ids {as_json(ids)}",
                    exchange=exchange,
                )
            )
    firsts = [ids[0] for ids in ids_at.values() if ids]
    if len(set(firsts)) < len(firsts):
        ctx.record(
            Failure(
                title="streamed tool calls at different indices share an id",
                rule="tool-call-ids-distinct",
                expected="a distinct id per tool call (each tool message answers one call by tool_call_id)",
                received=f"ids by index {as_json({str(i): ids for i, ids in ids_at.items()})}",
                exchange=exchange,
            )
        )
    _check_interleaving(ctx, fragments, capture_)


def _check_interleaving(ctx: CheckContext, fragments: list[ToolFragment], capture_: StreamCapture) -> None:
    """Record a finding when argument fragments of a call resume after another call's began."""
    finished: set[int] = set()
    current: int | None = None
    for fragment in fragments:
        if not fragment.arguments or fragment.index == current:
            continue
        if fragment.index in finished:
            ctx.record(
                Failure(
                    title=f"the arguments of tool call {fragment.index} resume after another call's began",
                    rule="stream-tool-calls-interleaved",
                    expected="each call's argument fragments in one run, the next call after it (as OpenAI "
                    "streams them; clients that append to the latest call mix them otherwise)",
                    received=f"event {fragment.event}: {excerpt(capture_.events[fragment.event].raw)}; "
                    f"argument fragments by index {as_json([f.index for f in fragments if f.arguments])}",
                    exchange=capture_.exchange,
                )
            )
            return
        if current is not None:
            finished.add(current)
        current = fragment.index


@check(
    "stream",
    "003 Streaming with Reasoning Models",
    rules=(*_READER_RULES, "stream-reasoning-after-content", "stream-reasoning-absent"),
)
@requires("streaming", "reasoning")
def stream_reasoning_order(ctx: CheckContext, reasoning_stream: StreamCapture) -> None:
    """A reasoning model streams its reasoning deltas before any content."""
    capture_ = arrived(ctx, reasoning_stream, owner=ctx.check.id)
    report_capture(
        ctx,
        capture_,
        ("reasoning-after-content",),
        "reasoning arrives after content",
        f"every {ctx.profile.reasoning_field} delta before the first content delta",
    )
    if not any(choice.reasoning for choice in capture_.chat.choices.values()):
        ctx.record(
            Failure(
                title=f"the reasoning model streamed no {ctx.profile.reasoning_field}",
                rule="stream-reasoning-absent",
                expected=f"{ctx.profile.reasoning_field} deltas (the target claims the reasoning capability)",
                received="none",
                exchange=capture_.exchange,
            )
        )


@check(
    "stream",
    "000 overview (real-time responses); 000 Best Practices (consume the stream promptly)",
    rules=("stream-burst",),
)
@requires("streaming")
def stream_really_streams(ctx: CheckContext, basic_stream: StreamCapture) -> None:
    """Content arrives spread over time, not in one burst at the end (WARN)."""
    capture_ = arrived(ctx, basic_stream)
    times = content_times(capture_.events)
    if len(times) < MIN_CONTENT_EVENTS:
        ran_to_end(ctx, capture_)
        raise NotChecked(
            f"not checked: {len(times)} content events arrived; at least {MIN_CONTENT_EVENTS} are needed "
            "to tell a stream from one burst (ask for a longer answer)"
        )
    spread = times[-1] - times[0]
    if spread < BURST_SPREAD_NS:
        ctx.record(
            Failure(
                title="the whole answer arrived in one burst",
                rule="stream-burst",
                expected=f"content events arriving over time (first to last >= {BURST_SPREAD_NS / 1e6:g} ms)",
                received=f"{len(times)} content events within {spread / 1e6:.3f} ms",
                exchange=capture_.exchange,
            )
        )


@check(
    "stream",
    "001 Best Practices (temperature=0 for deterministic tasks); 000/001 shared endpoint",
    rules=("stream-nonstream-differ",),
)
@requires("streaming")
def stream_matches_nonstream(ctx: CheckContext, basic_stream: StreamCapture, basic_answer: Exchange) -> None:
    """The same temperature-0 request answers the same streamed and not streamed."""
    capture_ = arrived(ctx, basic_stream)
    ran_to_end(ctx, capture_)
    _, message = shared_message(ctx, basic_answer, "the non-streamed twin")
    plain = message.get("content") or ""
    streamed = capture_.chat.choices[0].content if 0 in capture_.chat.choices else ""
    if plain != streamed:
        ctx.record(
            Failure(
                title="the streamed answer differs from the non-streamed one at temperature 0",
                rule="stream-nonstream-differ",
                expected=f"the same content (non-streamed: {excerpt(plain, 200)})",
                received=f"streamed: {excerpt(streamed, 200)}",
                exchange=capture_.exchange,
            )
        )


def content_times(events: Iterable[SSEEvent]) -> list[int]:
    """Arrival times of the events whose chunks carry content text."""
    times = []
    for event in events:
        try:
            chunk = json.loads(event.data)
        except ValueError:
            continue
        choices = chunk.get("choices") if isinstance(chunk, dict) else None
        for choice in choices if isinstance(choices, list) else []:
            delta = choice.get("delta") if isinstance(choice, dict) else None
            if isinstance(delta, dict) and delta.get("content"):
                times.append(event.t_ns)
                break
    return times
