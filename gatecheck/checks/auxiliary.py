"""Auxiliary endpoints: models, balance, images and search (002, 004)."""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from gatecheck.checks import requests as rq
from gatecheck.checks.base import Cost, Failure, check, requires
from gatecheck.checks.chat import check_usage, usage_of
from gatecheck.checks.context import CheckContext
from gatecheck.checks.images import image_problem
from gatecheck.checks.wire import (
    are_numbers,
    as_dict,
    as_json,
    excerpt,
    json_object,
    require_status,
    schema_failures,
)

if TYPE_CHECKING:
    from gatecheck.client import Exchange

MONEY_TOLERANCE = 0.005
"""Half a fen: balances are shown to two decimals."""

IMAGE_PROMPT = "A white cat sitting on a windowsill"


def _valid_body(ctx: CheckContext, exchange: Exchange, schema: str, what: str) -> dict[str, Any]:
    require_status(exchange, 200, rule=f"{schema}-status", what=what)
    body = json_object(exchange, rule=f"{schema}-not-json", what=what)
    for found in schema_failures(
        ctx.store, schema, body, rule=f"{schema}-schema", what=what, exchange=exchange
    ):
        ctx.record(found)
    return body


@check("aux", "004 Request Body (Model List); OpenAI GET /v1/models", cost=Cost(1, 0))
@requires("models")
def aux_models_list(ctx: CheckContext) -> None:
    """GET /v1/models is a valid list that includes every model the target is configured with."""
    exchange = ctx.send("GET", "/v1/models", tokens=1)
    body = _valid_body(ctx, exchange, "openai.models", "the model list")
    listed = {m.get("id") for m in body.get("data") or [] if isinstance(m, dict)}
    models = ctx.target.models
    wanted = {models.chat} | {
        m
        for cap, m in (("reasoning", models.reasoning), ("images", models.images), ("search", models.search))
        if ctx.target.claims(cap)
    }
    missing = sorted(wanted - listed)
    if missing:
        raise Failure(
            title=f"the model list lacks {', '.join(missing)}",
            rule="models-missing",
            expected=f"data[].id including {as_json(sorted(wanted))}",
            received=f"{len(listed)} models: {excerpt(', '.join(sorted(str(m) for m in listed)), 300)}",
            exchange=exchange,
        )


@check("aux", "002 Balance (Response; daily/monthly budget fields)", cost=Cost(1, 0))
@requires("balance")
def aux_balance(ctx: CheckContext) -> None:
    """GET /v1/balance is valid and remaining = budget - used wherever a budget is set."""
    exchange = ctx.send("GET", "/v1/balance", tokens=1)
    body = _valid_body(ctx, exchange, "gateway.balance", "the balance")
    key = as_dict(body.get("api_key"))
    for period in ("daily", "monthly"):
        values = [key.get(f"{period}_{f}") for f in ("budget", "used", "remaining")]
        if not are_numbers(values):
            continue
        budget, used, remaining = values
        if abs(budget - used - remaining) > MONEY_TOLERANCE:
            ctx.record(
                Failure(
                    title=f"{period}_remaining is not {period}_budget - {period}_used",
                    rule="balance-arithmetic",
                    expected=f"{period}_remaining = {budget} - {used} = {budget - used:.2f}",
                    received=f"{period}_remaining {as_json(remaining)}",
                    exchange=exchange,
                )
            )


@check("aux", "002 Images Generations (response_format url or b64_json)", cost=Cost(3, 0))
@requires("images")
def aux_images(ctx: CheckContext) -> None:
    """A generated image, as b64_json and as a URL on the target, decodes to a real image."""
    for response_format in ("b64_json", "url"):
        body = {
            "model": ctx.target.models.images,
            "prompt": IMAGE_PROMPT,
            "n": 1,
            "size": "1024x1024",
            "response_format": response_format,
        }
        exchange = ctx.send("POST", "/v1/images/generations", json_body=body, tokens=1)
        answer = _valid_body(
            ctx, exchange, "gateway.images.response", f"the {response_format} image response"
        )
        for item in answer.get("data") or []:
            if isinstance(item, dict):
                _check_image_item(ctx, item, exchange)


def _check_image_item(ctx: CheckContext, item: dict[str, Any], exchange: Exchange) -> None:
    if isinstance(item.get("b64_json"), str):
        try:
            data = base64.b64decode(item["b64_json"], validate=True)
        except (binascii.Error, ValueError):
            data = b""
        _check_image_bytes(ctx, data, "the b64_json image", exchange)
    url = item.get("url")
    if isinstance(url, str):
        path = _path_on_target(ctx, url)
        if path is None:
            return  # not on the target's host: gatecheck fetches nothing elsewhere
        fetched = ctx.send("GET", path, tokens=1)
        if fetched.status != 200:
            ctx.record(
                Failure(
                    title=f"the image URL answered {fetched.status}",
                    rule="image-url-unreachable",
                    expected="HTTP 200 with the image",
                    received=f"{url}: HTTP {fetched.status}",
                    exchange=fetched,
                )
            )
            return
        _check_image_bytes(ctx, fetched.body, f"the image at {url}", fetched)


def _path_on_target(ctx: CheckContext, url: str) -> str | None:
    """The path to fetch ``url`` through the client, when it lies under the target's base URL."""
    base = ctx.target.base_url or ""
    target, image = urlsplit(base), urlsplit(url)
    if (image.scheme, image.netloc) != (target.scheme, target.netloc) or not image.path.startswith(
        target.path
    ):
        return None
    path = image.path[len(target.path.rstrip("/")) :]
    return path + (f"?{image.query}" if image.query else "")


def _check_image_bytes(ctx: CheckContext, data: bytes, what: str, exchange: Exchange) -> None:
    problem = image_problem(data)
    if problem:
        ctx.record(
            Failure(
                title=f"{what} is not a real image",
                rule="image-not-an-image",
                expected="PNG, JPEG, WebP or GIF bytes (PNG: valid chunks and CRCs)",
                received=f"{problem}; {len(data)} bytes starting {excerpt(data, 32)}",
                exchange=exchange,
            )
        )


@check("aux", "002 Search Completions (the same format as Chat Completions)", cost=Cost(1, rq.SHORT_TOKENS))
@requires("search")
def aux_search(ctx: CheckContext) -> None:
    """POST /v1/search/completions answers in the chat completion shape, usage adding up."""
    body = rq.chat_body(ctx.target.models.search, rq.user("What are today's tech news?"))
    exchange = ctx.send("POST", "/v1/search/completions", json_body=body)
    answer = _valid_body(ctx, exchange, "gateway.search.response", "the search completion")
    if answer.get("object") != "chat.completion":
        ctx.record(
            Failure(
                title="the search completion's object is not chat.completion",
                rule="search-shape",
                expected='object "chat.completion", as Chat Completions',
                received=f"object {as_json(answer.get('object'))}",
                exchange=exchange,
            )
        )
    check_usage(ctx, usage_of(answer), exchange, "search-usage")
