"""Which checks catch which reference-gateway fault: the proof that every check can fail.

Each fault of ``gatecheck.reference.faults.FAULTS`` breaks one documented rule; the checks listed
for it must reach the given verdict against a gateway with that fault (and PASS against the
faithful gateway). ``tests/test_conformance_faults.py`` asserts both, for every fault: a fault
missing here, or a mapped check that does not catch it, is a failing test.
"""

from __future__ import annotations

from collections.abc import Mapping

from gatecheck.results import Verdict


def _fail(*check_ids: str) -> dict[str, Verdict]:
    return dict.fromkeys(check_ids, "FAIL")


def _warn(*check_ids: str) -> dict[str, Verdict]:
    """Caught as a warning: the rule is OpenAI's (protocol) or ours (judgement), not the documents'."""
    return dict.fromkeys(check_ids, "WARN")


FAULT_CHECKS: Mapping[str, Mapping[str, Verdict]] = {
    # SSE framing
    "sse-no-blank-line": _fail("stream_sse_framing"),
    "sse-missing-done": _fail("stream_done_last"),
    "sse-data-after-done": _fail("stream_done_last"),
    "sse-wrong-content-type": _fail("stream_content_type"),
    "sse-keep-open": _fail("stream_closes_after_done"),
    "sse-invalid-json": _fail("stream_chunks_valid"),
    "stream-burst": _warn("stream_really_streams"),
    "stream-error-event": _fail("stream_completes"),
    "stream-cut": _fail("stream_completes"),
    "stream-stall": _fail("stream_completes"),
    # chunk contents and order
    "chunk-role-repeated": _fail("stream_role_first"),
    "chunk-id-changes": _fail("stream_identity_constant"),
    "chunk-wrong-object": _fail("stream_chunk_object"),
    "chunk-finish-reason-twice": _warn("stream_finish_reason_once"),
    "chunk-usage-missing": _fail("stream_usage_final"),
    "chunk-usage-every-chunk": _fail("stream_usage_final"),
    "tool-call-id-repeated": _fail("stream_tool_call_deltas"),
    "tool-call-bad-arguments": _warn("stream_tool_call_deltas"),
    "reasoning-after-content": _warn("stream_reasoning_order"),
    "tool-calls-same-index": _fail("stream_parallel_tool_calls"),
    "tool-calls-interleaved": _warn("stream_parallel_tool_calls"),
    "stream-nondeterministic": _warn("stream_matches_nonstream"),
    # non-streaming bodies
    "body-usage-total-wrong": _fail("nonstream_usage"),
    "body-wrong-object": _fail("nonstream_identity", "fuzz_valid_requests"),
    "body-role-not-assistant": _fail("nonstream_choices"),
    "body-bad-finish-reason": _fail("nonstream_finish_reason"),
    "usage-reasoning-excluded": _warn("nonstream_reasoning_cap"),
    "usage-cached-over-prompt": _warn("nonstream_usage_details"),
    "tool-calls-same-id": _warn("tools_parallel_calls", "stream_parallel_tool_calls"),
    "stream-by-default": _fail("nonstream_default"),
    # parameters accepted but ignored
    "ignore-n": _fail("nonstream_n"),
    "ignore-stop": _fail("nonstream_stop"),
    "ignore-max-tokens": _fail("nonstream_max_tokens"),
    "ignore-response-format": _fail("json_object_mode"),
    "ignore-json-schema": _fail("json_schema_output"),
    "ignore-tool-choice": _fail("tools_choice_required", "tools_choice_named"),
    "tool-args-invalid": _warn("tools_arguments_valid"),
    "reasoning-effort-rejected": _fail("nonstream_reasoning_effort"),
    "reasoning-outside-cap": _fail("nonstream_reasoning_cap"),
    "content-parts-rejected": _fail("nonstream_multimodal"),
    "media-parts-dropped": _warn("nonstream_multimodal"),
    "tool-results-parallel-refused": _fail("tools_result_turn"),
    # auth
    "auth-accept-any-key": _fail("errors_invalid_key"),
    "auth-key-optional": _fail("errors_missing_key"),
    "auth-reject-x-api-key": _fail("anthropic_auth_x_api_key", "errors_x_api_key_chat"),
    # status codes and error bodies (the bodies of every error probe, and of the 429s, judged once each)
    "error-unknown-model-400": _fail("errors_unknown_model"),
    "error-body-plain-text": _fail("errors_bodies", "ratelimit_429_body"),
    "error-no-request-id": _fail("errors_bodies", "ratelimit_429_body"),
    "error-5xx-on-invalid": _fail("errors_invalid_params", "errors_malformed_json", "fuzz_invalid_requests"),
    "validation-lax": _fail("errors_invalid_params"),
    "context-length-unchecked": _fail("errors_context_length"),
    # rate limits
    "ratelimit-never-429": _fail("ratelimit_rpm_enforced"),
    "ratelimit-over-admit": _fail("ratelimit_rpm_not_exceeded"),
    "ratelimit-under-admit": _fail("ratelimit_rpm_admitted"),
    "ratelimit-no-retry-after": _fail("ratelimit_retry_after"),
    "ratelimit-no-headers": _fail("ratelimit_headers"),
    "ratelimit-headers-relayed": _fail("ratelimit_headers"),
    "ratelimit-remaining-increases": _warn("ratelimit_remaining_monotonic"),
    "ratelimit-retry-after-short": _fail("ratelimit_retry_after_honoured"),
    "tpm-unenforced": _fail("ratelimit_tpm_enforced"),
    # Anthropic event grammar
    "anthropic-no-message-start": _fail("anthropic_stream_order"),
    "anthropic-event-name-mismatch": _fail("anthropic_stream_event_names"),
    "anthropic-delta-type-mismatch": _fail("anthropic_stream_blocks"),
    "anthropic-missing-block-stop": _fail("anthropic_stream_blocks"),
    "anthropic-max-tokens-optional": _fail("anthropic_max_tokens_required"),
    "anthropic-usage-decreases": _warn("anthropic_stream_message_delta"),
    "anthropic-stop-reason-wrong": _fail("anthropic_stop_reason_max_tokens"),
    "anthropic-end-turn-as-stop-sequence": _fail("anthropic_finish_reason_mapping"),
    "anthropic-input-tokens-zero": _warn("anthropic_stream_input_tokens"),
    "anthropic-error-openai-envelope": _fail("anthropic_error_envelope"),
    "anthropic-tool-stop-reason-wrong": _warn("anthropic_tool_use"),
    "anthropic-tool-input-invalid": _warn("anthropic_tool_use"),
    "anthropic-ignore-stop-sequences": _fail("anthropic_stop_sequences"),
    "anthropic-stop-sequence-unreported": _warn("anthropic_stop_sequences"),
    "anthropic-temperature-lax": _fail("anthropic_temperature_range"),
    "anthropic-top-p-lax": _fail("anthropic_top_p_range"),
    "anthropic-system-blocks-rejected": _fail("anthropic_system_blocks"),
    "anthropic-content-blocks-rejected": _fail("anthropic_content_blocks"),
    # auxiliary endpoints
    "models-missing-model": _fail("aux_models_list"),
    "balance-arithmetic": _fail("aux_balance"),
    "balance-currency-usd": _fail("aux_balance"),
    "balance-reset-past": _fail("aux_balance"),
    "images-bad-png": _fail("aux_images", "aux_images_url"),
    "images-ignore-response-format": _fail("aux_images"),
    "images-ignore-n": _fail("aux_images_n"),
    "images-ignore-size": _fail("aux_images_size"),
    "search-bad-shape": _fail("aux_search"),
    "search-no-citations": _fail("aux_search_citations"),
}
"""Fault name -> {check id: the verdict the check must reach with that fault}."""

PROXY_FAULT_CHECKS: Mapping[str, Mapping[str, Verdict]] = {
    "proxy-500-not-502": _fail("upstream_error_is_502"),
    "proxy-hang-on-silent": _fail("upstream_timeout_is_504", "upstream_stream_stall"),
    "proxy-retry-after-dropped": _fail("upstream_rate_limited"),
    "proxy-retry-storm": _warn("upstream_rate_limited"),
    "proxy-truncated-success": _fail("upstream_stream_cut"),
    "proxy-error-event-dropped": _fail("upstream_stream_error_forwarded"),
    "proxy-malformed-passthrough": _fail("upstream_malformed_chunk"),
    "proxy-usage-dropped": _fail("upstream_usage_relayed"),
    "proxy-param-dropped": _fail("upstream_params_forwarded"),
    "proxy-stream-buffered": _warn("upstream_stream_not_buffered"),
    "proxy-key-leaked": _warn("upstream_key_not_leaked"),
    "proxy-address-header": _warn("upstream_address_hidden"),
    "proxy-double-charge": _warn("upstream_retry_charged_once"),
    # the fake model's fault, met again in the proxy's translation of the upstream's finish_reason
    "anthropic-stop-reason-wrong": _fail("upstream_anthropic_mapping"),
}
"""The reference gateway in proxy mode in front of the harness (the ``upstream`` area): fault ->
{check id: verdict}; ``tests/test_upstream_faults.py`` runs each on the embedded pair."""

FAULT_CHECKS = {**FAULT_CHECKS, **{f: c for f, c in PROXY_FAULT_CHECKS.items() if f.startswith("proxy-")}}
