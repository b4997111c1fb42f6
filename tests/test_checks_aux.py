"""Auxiliary checks on hand-made servers: balance, images and search, each judging only what it saw.

The servers here are correct targets that differ from the reference gateway where real ones do: a
balance with no budget, a JPEG from a CDN, a model offering one image size, a search answer that
cites its sources in its own way. Each must PASS or say "not checked"; the faults that break the
rules are shown in tests/test_conformance_faults.py.
"""

from __future__ import annotations

import base64
import datetime
import json
from typing import Any

import httpx
import pytest
from _checks_helpers import BASE_URL, make_session
from test_checks_images import JPEG_5X3, png

from gatecheck.checks import CHECKS, load_all, run_check
from gatecheck.results import CheckResult

load_all()


def judge(check_id: str, handler: Any) -> CheckResult:
    result = run_check(make_session(handler), CHECKS[check_id])
    assert "undeclared_rules" not in result.extra, result.extra
    return result


def answering(body: Any, status: int = 200) -> Any:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=body)

    return handler


# --- balance ---------------------------------------------------------------------------------


def balance(**key: Any) -> dict[str, Any]:
    """002's example balance, with ``key`` fields replaced; the daily reset is tomorrow."""
    tomorrow = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=10)
    api_key = {
        "id": "1923456789012345678",
        "name": "claude-code",
        "daily_budget": 20.0,
        "daily_used": 3.25,
        "daily_remaining": 16.75,
        "daily_reset_at": tomorrow.isoformat(timespec="seconds"),
        "monthly_budget": None,
        "monthly_used": None,
        "monthly_remaining": None,
        "monthly_reset_at": None,
        **key,
    }
    return {"object": "balance", "currency": "CNY", "balance": 138.5, "api_key": api_key}


def test_the_documented_balance_passes_and_so_does_one_without_budgets() -> None:
    assert judge("aux_balance", answering(balance())).verdict == "PASS"
    unset = {f"daily_{f}": None for f in ("budget", "remaining", "reset_at")}
    assert judge("aux_balance", answering(balance(**unset, daily_used=1.5))).verdict == "PASS"


@pytest.mark.parametrize(
    ("body", "rule", "says"),
    [
        ({**balance(), "currency": "USD"}, "balance-currency", 'the balance is in "USD", not CNY'),
        (balance(daily_remaining=None), "balance-arithmetic", "daily_remaining null"),
        (balance(daily_remaining=18.0), "balance-arithmetic", "daily_remaining = 20.0 - 3.25 = 16.75"),
        (
            balance(daily_reset_at="2020-01-01T00:00:00+08:00"),
            "balance-reset-time",
            "daily_reset_at is not a future",
        ),
        (balance(daily_reset_at=None), "balance-reset-time", "daily_reset_at null"),
    ],
)
def test_each_documented_balance_rule_fails_alone(body: dict[str, Any], rule: str, says: str) -> None:
    result = judge("aux_balance", answering(body))
    assert result.verdict == "FAIL" and result.extra["rules"] == [rule], result.message
    assert says in result.message


# --- images ----------------------------------------------------------------------------------


def image_server(
    *, host: str = BASE_URL, image: bytes = JPEG_5X3, sizes: tuple[str, ...] = ("1024x1024", "1536x1024")
) -> Any:
    """A target answering image requests as asked, its images at ``host``; other sizes get 400."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, content=image, headers={"content-type": "image/jpeg"})
        body = json.loads(request.content)
        if body.get("size") not in sizes:
            return httpx.Response(400, json={"error": {"code": "INVALID_PARAMS", "message": "size"}})
        data = image if body.get("size") == "1024x1024" else png(1536, 1024)
        item = (
            {"b64_json": base64.b64encode(data).decode()}
            if body.get("response_format") == "b64_json"
            else {"url": f"{host}/files/cat.jpg"}
        )
        return httpx.Response(200, json={"created": 1_700_000_000, "data": [item] * body.get("n", 1)})

    return handler


@pytest.mark.parametrize("check_id", ["aux_images", "aux_images_url", "aux_images_n", "aux_images_size"])
def test_a_correct_image_target_passes(check_id: str) -> None:
    assert judge(check_id, image_server()).verdict == "PASS"


def test_images_on_another_host_are_not_fetched_and_not_passed() -> None:
    result = judge("aux_images_url", image_server(host="https://cdn.example.invalid"))
    assert result.verdict == "SKIP" and "gatecheck fetches nothing elsewhere" in result.message
    assert judge("aux_images_n", image_server(host="https://cdn.example.invalid")).verdict == "PASS"


def test_a_model_without_the_other_size_is_not_checked() -> None:
    result = judge("aux_images_size", image_server(sizes=("1024x1024",)))
    assert result.verdict == "SKIP" and "refused a 1536x1024 b64_json image with 400" in result.message


def test_a_refused_url_answer_is_reported_once() -> None:
    refused = answering({"error": {"code": "INVALID_PARAMS", "message": "response_format"}}, 400)
    owner = judge("aux_images_url", refused)
    assert owner.verdict == "FAIL" and owner.extra["rules"] == ["gateway.images.response-status"]
    other = judge("aux_images_n", refused)
    assert other.verdict == "SKIP" and "(aux_images_url reports it)" in other.message


def test_b64_json_answered_with_a_url_fails_its_format_rule() -> None:
    url_only = answering({"created": 1, "data": [{"url": f"{BASE_URL}/x.png"}]})
    result = judge("aux_images", url_only)
    assert result.verdict == "FAIL" and result.extra["rules"] == ["images-response-format"], result.message
    size = judge("aux_images_size", url_only)
    assert size.verdict == "SKIP" and "no base64 image whose size can be read" in size.message


# --- search ----------------------------------------------------------------------------------


def search_answer(content: str, finish: str = "stop", **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-s",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", **extra, "content": content},
                "finish_reason": finish,
            }
        ],
        "usage": {"prompt_tokens": 6, "completion_tokens": 30, "total_tokens": 36},
    }


CITED = {
    "a source URL in the text": search_answer("Chips got faster [1].\n\n[1] https://news.example/chips"),
    "OpenAI's url_citation annotations": search_answer(
        "Chips got faster.",
        annotations=[{"type": "url_citation", "url_citation": {"url": "https://news.example/chips"}}],
    ),
    "Perplexity's citations": {
        **search_answer("Chips got faster [1]."),
        "citations": ["https://news.example/a"],
    },
    "Perplexity's search_results": {
        **search_answer("Chips got faster [1]."),
        "search_results": [{"title": "Chips", "url": "https://news.example/a"}],
    },
}


@pytest.mark.parametrize("form", sorted(CITED))
def test_search_citations_are_recognised_in_every_known_form(form: str) -> None:
    assert judge("aux_search_citations", answering(CITED[form])).verdict == "PASS"


def test_a_search_answer_without_sources_fails_unless_it_was_cut() -> None:
    bare = judge("aux_search_citations", answering(search_answer("Chips got faster [1].")))
    assert bare.verdict == "FAIL" and bare.extra["rules"] == ["search-citations-missing"], bare.message
    cut = judge("aux_search_citations", answering(search_answer("Chips got faster and", "length")))
    assert cut.verdict == "SKIP" and "cut at max_tokens before citing a source" in cut.message
    failed = judge("aux_search_citations", answering({"error": {"code": "INTERNAL_ERROR"}}, 500))
    assert failed.verdict == "SKIP" and "(aux_search reports it)" in failed.message
