"""Auxiliary endpoints: models, balance, images and search (002, 004).

One root cause, one finding: the shared image answer (two URLs) is ``aux_images_url``'s to
report when it is unreadable, the shared search answer ``aux_search``'s; their other readers say
"not checked". gatecheck fetches an image URL only when it lies under the target's base URL.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from gatecheck import clock
from gatecheck.checks import requests as rq
from gatecheck.checks.base import Cost, Failure, NotChecked, check, observation, requires
from gatecheck.checks.chat import check_usage, usage_of
from gatecheck.checks.context import CheckContext
from gatecheck.checks.images import image_dimensions, image_problem
from gatecheck.checks.wire import (
    are_numbers,
    as_dict,
    as_json,
    describe,
    excerpt,
    json_object,
    require_status,
    schema_failures,
)

if TYPE_CHECKING:
    from gatecheck.client import Exchange

MONEY_TOLERANCE = 0.005
"""Half a fen: balances are shown to two decimals."""

CLOCK_SKEW_S = 300.0
"""How far the target's clock may be behind ours before a reset time counts as past."""

IMAGE_PROMPT = "A white cat sitting on a windowsill"
IMAGE_SIZE = "1024x1024"
"""002's example size: every image model offers it."""
OTHER_SIZE = "1536x1024"
"""A landscape size, to tell a size honoured from a default one (a model without it may refuse it)."""
IMAGES_N = 2

BALANCE = "002 Balance (Response; field table)"
IMAGES = "002 Images Generations"
SEARCH = (
    "002 Search Completions (Response: the same format as Chat Completions, with search source citations)"
)
IMAGES_OWNER = "aux_images_url"
"""The check that reports what makes the shared image answer unreadable."""
SEARCH_OWNER = "aux_search"
"""The check that reports what makes the shared search answer unreadable."""

_IMAGE_BODY_RULES = (
    *(f"gateway.images.response-{what}" for what in ("status", "not-json", "schema")),
    "null-optional-field",
)
_URL = re.compile(r"https?://[^\s)\]>\"'<]+")


def _valid_body(ctx: CheckContext, exchange: Exchange, schema: str, what: str) -> dict[str, Any]:
    require_status(exchange, 200, rule=f"{schema}-status", what=what)
    body = json_object(exchange, rule=f"{schema}-not-json", what=what)
    for found in schema_failures(
        ctx.store, schema, body, rule=f"{schema}-schema", what=what, exchange=exchange, own=ctx.check.rules
    ):
        ctx.record(found)
    return body


def _shared_body(ctx: CheckContext, exchange: Exchange, schema: str, what: str, owner: str) -> dict[str, Any]:
    """The body of an answer several checks read: the owner validates it, the others need a 200 object."""
    if ctx.check.id == owner:
        return _valid_body(ctx, exchange, schema, what)
    try:
        require_status(exchange, 200, rule=f"{schema}-status", what=what)
        return json_object(exchange, rule=f"{schema}-not-json", what=what)
    except Failure as failure:
        ctx.owned_by(owner, failure)


@check(
    "aux",
    "004 Request Body (Model List); OpenAI GET /v1/models",
    cost=Cost(1, 0),
    rules=("openai.models-status", "openai.models-not-json", "openai.models-schema", "models-missing"),
)
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


@check(
    "aux",
    f"{BALANCE}: currency fixed CNY; daily/monthly budget, used, remaining; reset times (ISO 8601)",
    cost=Cost(1, 0),
    rules=(
        "gateway.balance-status",
        "gateway.balance-not-json",
        "gateway.balance-schema",
        "null-optional-field",
        "balance-currency",
        "balance-arithmetic",
        "balance-reset-time",
    ),
)
@requires("balance")
def aux_balance(ctx: CheckContext) -> None:
    """GET /v1/balance is valid, in CNY, remaining = budget - used, and every next reset in the future."""
    exchange = ctx.send("GET", "/v1/balance", tokens=1)
    body = _valid_body(ctx, exchange, "gateway.balance", "the balance")
    if body.get("currency") != "CNY":
        ctx.record(
            Failure(
                title=f"the balance is in {as_json(body.get('currency'))}, not CNY",
                rule="balance-currency",
                expected='currency "CNY" (002: fixed CNY)',
                received=f"currency {as_json(body.get('currency'))}",
                exchange=exchange,
            )
        )
    key = as_dict(body.get("api_key"))
    for period in ("daily", "monthly"):
        _check_budget(ctx, key, period, exchange)
        _check_reset(ctx, key, period, exchange)


def _check_budget(ctx: CheckContext, key: dict[str, Any], period: str, exchange: Exchange) -> None:
    """Where a budget is set, used and remaining are amounts and remaining = budget - used."""
    budget, used, remaining = (_amount(key.get(f"{period}_{f}")) for f in ("budget", "used", "remaining"))
    if budget is None:
        return
    if used is None or remaining is None or abs(budget - used - remaining) > MONEY_TOLERANCE:
        shown = f"{budget - used:.2f}" if used is not None else "a number"
        ctx.record(
            Failure(
                title=f"{period}_remaining is not {period}_budget - {period}_used",
                rule="balance-arithmetic",
                expected=f"{period}_remaining = {budget} - {as_json(used)} = {shown}",
                received=f"{period}_used {as_json(used)}, {period}_remaining {as_json(remaining)}",
                exchange=exchange,
            )
        )


def _amount(value: Any) -> float | None:
    """An amount of money read from the body (a JSON number), else None."""
    return float(value) if are_numbers([value]) and not isinstance(value, bool) else None


def _check_reset(ctx: CheckContext, key: dict[str, Any], period: str, exchange: Exchange) -> None:
    """The next reset is in the future; a set budget has one (a malformed time is the schema's finding)."""
    field = f"{period}_reset_at"
    value = key.get(field)
    if value is None and _amount(key.get(f"{period}_budget")) is None:
        return
    when = _parse_time(value)
    if value is not None and when is None:
        return
    now = clock.time()
    if when is None or when < now - CLOCK_SKEW_S:
        shown = "null" if when is None else f"{as_json(value)}, {(now - when) / 3600:.1f} h ago"
        ctx.record(
            Failure(
                title=f"{field} is not a future time",
                rule="balance-reset-time",
                expected=f"the next {period} budget reset (ISO 8601), after now "
                f"({datetime.fromtimestamp(now).astimezone().isoformat(timespec='seconds')})",
                received=f"{field} {shown}",
                exchange=exchange,
            )
        )


def _parse_time(value: Any) -> float | None:
    """An ISO 8601 date-time with an offset as a Unix time, or None."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return parsed.timestamp() if parsed.tzinfo is not None else None


def _image_request(ctx: CheckContext, **extra: Any) -> Exchange:
    body = {"model": ctx.target.models.images, "prompt": IMAGE_PROMPT, **extra}
    return ctx.send("POST", "/v1/images/generations", json_body=body, tokens=1)


def _items(body: dict[str, Any]) -> list[dict[str, Any]]:
    data = body.get("data")
    return [item for item in data if isinstance(item, dict)] if isinstance(data, list) else []


def _format_failure(items: list[dict[str, Any]], asked: str, exchange: Exchange) -> Failure | None:
    """A finding when an item lacks the field the response_format asked for."""
    lacking = [position for position, item in enumerate(items) if not isinstance(item.get(asked), str)]
    if not lacking:
        return None
    return Failure(
        title=f"response_format {asked} was answered without {asked}",
        rule="images-response-format",
        expected=f"every data[] item carrying {asked}",
        received=f"item {lacking[0]} has {as_json(sorted(items[lacking[0]]))}",
        exchange=exchange,
    )


@check(
    "aux",
    f"{IMAGES} (response_format: url (default) or b64_json)",
    cost=Cost(1, 0),
    rules=(*_IMAGE_BODY_RULES, "images-response-format", "image-not-an-image"),
)
@requires("images")
def aux_images(ctx: CheckContext) -> None:
    """response_format b64_json gives base64 of a real image (PNG, JPEG, WebP or GIF)."""
    exchange = _image_request(ctx, n=1, size=IMAGE_SIZE, response_format="b64_json")
    body = _valid_body(ctx, exchange, "gateway.images.response", "the b64_json image response")
    items = _items(body)
    problem = _format_failure(items, "b64_json", exchange)
    if problem is not None:
        raise problem
    for item in items:
        _check_image_bytes(ctx, _decoded(item["b64_json"]), "the b64_json image", exchange)


def _decoded(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return b""


@observation(cost=Cost(1, 0))
def url_images(ctx: CheckContext) -> Exchange:
    """Two images in the default response format (url, 002 says), at 002's example size.

    No ``response_format``: the default is what 002 documents, and a gateway that refuses the
    parameter itself (LiteLLM for gpt-image models) is reported once, by ``aux_images``."""
    return _image_request(ctx, n=IMAGES_N, size=IMAGE_SIZE)


@check(
    "aux",
    f"{IMAGES} (response_format: url (default) or b64_json; Response: data[].url)",
    cost=Cost(IMAGES_N, 0),
    rules=(*_IMAGE_BODY_RULES, "images-response-format", "image-url-unreachable", "image-not-an-image"),
)
@requires("images")
def aux_images_url(ctx: CheckContext, url_images: Exchange) -> None:
    """The default response format gives URLs that serve real images (fetched only when on the target)."""
    body = _shared_body(ctx, url_images, "gateway.images.response", "the url image response", IMAGES_OWNER)
    items = _items(body)
    problem = _format_failure(items, "url", url_images)
    if problem is not None:
        raise problem
    elsewhere = []
    for item in items:
        path = _path_on_target(ctx, item["url"])
        if path is None:
            elsewhere.append(item["url"])
        else:
            _check_fetched(ctx, item["url"], path)
    if elsewhere and not ctx.failures:
        raise NotChecked(
            "not checked: the image URLs are not under the target's base URL "
            f"({excerpt(elsewhere[0], 120)}); "
            "gatecheck fetches nothing elsewhere, so whether they serve images is not known"
        )


def _check_fetched(ctx: CheckContext, url: str, path: str) -> None:
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


@check("aux", f"{IMAGES} (n: number of images to generate)", rules=("images-n-ignored",))
@requires("images")
def aux_images_n(ctx: CheckContext, url_images: Exchange) -> None:
    """n=2 gives two images."""
    body = _shared_body(ctx, url_images, "gateway.images.response", "the url image response", IMAGES_OWNER)
    items = _items(body)
    if len(items) != IMAGES_N:
        raise Failure(
            title=f"n={IMAGES_N} gave {len(items)} image(s)",
            rule="images-n-ignored",
            expected=f"{IMAGES_N} data[] items (002: n, the number of images to generate)",
            received=f"{len(items)} item(s)",
            exchange=url_images,
        )


@check(
    "aux",
    f"{IMAGES} (size: image size, e.g. 1024x1024)",
    cost=Cost(1, 0),
    rules=("gateway.images.response-status", "gateway.images.response-not-json", "images-size-ignored"),
)
@requires("images")
def aux_images_size(ctx: CheckContext) -> None:
    """An image asked for at 1536x1024 is 1536 pixels wide and 1024 high (read from its header)."""
    exchange = _image_request(ctx, n=1, size=OTHER_SIZE, response_format="b64_json")
    if exchange.status == 400:
        raise NotChecked(
            f"not checked: the target refused a {OTHER_SIZE} b64_json image with 400 (a model may offer "
            f"only some sizes): {describe(exchange, 200)}"
        )
    what = f"the {OTHER_SIZE} image response"
    require_status(exchange, 200, rule="gateway.images.response-status", what=what)
    items = _items(json_object(exchange, rule="gateway.images.response-not-json", what=what))
    sizes = [
        image_dimensions(_decoded(item["b64_json"]))
        for item in items
        if isinstance(item.get("b64_json"), str)
    ]
    readable = [size for size in sizes if size is not None]
    if not readable:
        raise NotChecked(
            "not checked: the answer carries no base64 image whose size can be read (aux_images judges "
            f"b64_json images): {describe(exchange, 200)}"
        )
    wanted = tuple(int(side) for side in OTHER_SIZE.split("x"))
    wrong = [size for size in readable if size != wanted]
    if wrong:
        raise Failure(
            title=f"size {OTHER_SIZE} was not honoured",
            rule="images-size-ignored",
            expected=f"an image {wanted[0]} pixels wide and {wanted[1]} high (002: size)",
            received=f"an image of {wrong[0][0]}x{wrong[0][1]}",
            exchange=exchange,
        )


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


@observation(cost=Cost(1, rq.SHORT_TOKENS))
def search_answer(ctx: CheckContext) -> Exchange:
    """002's search example question."""
    body = rq.chat_body(ctx.target.models.search, rq.user("What are today's tech news?"))
    return ctx.send("POST", "/v1/search/completions", json_body=body)


@check(
    "aux",
    SEARCH,
    rules=(
        "gateway.search.response-status",
        "gateway.search.response-not-json",
        "gateway.search.response-schema",
        "null-optional-field",
        "search-shape",
        "search-usage-missing",
        "search-usage-total",
    ),
)
@requires("search")
def aux_search(ctx: CheckContext, search_answer: Exchange) -> None:
    """POST /v1/search/completions answers in the chat completion shape, usage adding up."""
    answer = _valid_body(ctx, search_answer, "gateway.search.response", "the search completion")
    if answer.get("object") != "chat.completion":
        ctx.record(
            Failure(
                title="the search completion's object is not chat.completion",
                rule="search-shape",
                expected='object "chat.completion", as Chat Completions',
                received=f"object {as_json(answer.get('object'))}",
                exchange=search_answer,
            )
        )
    check_usage(ctx, usage_of(answer), search_answer, "search-usage")


@check("aux", SEARCH, rules=("search-citations-missing",))
@requires("search")
def aux_search_citations(ctx: CheckContext, search_answer: Exchange) -> None:
    """The search answer cites its sources: a URL in its text, or OpenAI's or Perplexity's citation fields."""
    answer = _shared_body(
        ctx, search_answer, "gateway.search.response", "the search completion", SEARCH_OWNER
    )
    choice = next((c for c in answer.get("choices") or [] if isinstance(c, dict)), {})
    message = as_dict(choice.get("message"))
    if citations(answer, message):
        return
    content = message.get("content")
    if choice.get("finish_reason") == "length":
        raise NotChecked(
            "not checked: the search answer was cut at max_tokens before citing a source "
            f"({excerpt(str(content), 200)}); raise --max-output-tokens to judge it"
        )
    raise Failure(
        title="the search answer cites no source",
        rule="search-citations-missing",
        expected="search source citations in the answer: a source URL in the text, message.annotations "
        "url_citation (OpenAI) or citations / search_results (Perplexity)",
        received=f"content {excerpt(str(content), 300)}; fields {as_json(sorted(answer))}",
        exchange=search_answer,
    )


def citations(answer: dict[str, Any], message: dict[str, Any]) -> list[str]:
    """The source URLs a search answer cites, in any of the forms gatecheck knows."""
    found = _URL.findall(message.get("content") or "") if isinstance(message.get("content"), str) else []
    for note in message.get("annotations") or []:
        url = as_dict(as_dict(note).get("url_citation")).get("url")
        if isinstance(url, str):
            found.append(url)
    for cited in answer.get("citations") or []:
        url = cited if isinstance(cited, str) else as_dict(cited).get("url")
        if isinstance(url, str):
            found.append(url)
    for result in answer.get("search_results") or []:
        url = as_dict(result).get("url")
        if isinstance(url, str):
            found.append(url)
    return [url for url in found if _URL.match(url)]
