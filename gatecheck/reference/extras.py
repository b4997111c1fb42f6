"""The auxiliary endpoints' bodies (002): model list, balance, generated images.

Images are real PNGs of the requested size: one colour (derived from the prompt) in a 1-bit
palette image, so even 4096x4096 costs a few kilobytes and milliseconds.
"""

from __future__ import annotations

import datetime
import hashlib
import struct
import urllib.parse
import zlib
from collections import OrderedDict
from functools import lru_cache

from gatecheck._types import JSONObject
from gatecheck.reference.catalogue import CREATED, MODELS

PRICE_PER_TOKEN = 0.000002
"""CNY charged per token (prompt + completion) against a key's daily budget and the balance."""

MAX_IMAGE_SIDE = 4096
NOT_A_PNG = b"this is not an image\n"
"""What the ``images-bad-png`` fault serves instead of a PNG."""

_BEIJING = datetime.timezone(datetime.timedelta(hours=8))


def models_body(*, hide: str | None = None) -> JSONObject:
    """``GET /v1/models``: every served model (``hide`` drops one, for a fault mode)."""
    data = [
        {"id": m.id, "object": "model", "created": CREATED, "owned_by": m.owned_by}
        for m in MODELS.values()
        if m.id != hide
    ]
    return {"object": "list", "data": data}


def key_id(key: str) -> str:
    """A stable numeric id for a key that reveals nothing of it (sha256, 19 digits)."""
    return str(int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % 10**19)


def balance_body(
    key: str,
    name: str,
    *,
    tokens_used: int,
    tenant_tokens_used: int,
    balance: float,
    daily_budget: float | None,
    arithmetic_fault: bool = False,
    currency: str = "CNY",
    reset_past: bool = False,
    now: datetime.datetime | None = None,
) -> JSONObject:
    """``GET /v1/balance`` for ``key``: spending is tokens x PRICE_PER_TOKEN, rounded to 6 places.

    ``currency`` and ``reset_past`` (the last reset instead of the next) exist for fault modes.
    """
    used = round(tokens_used * PRICE_PER_TOKEN, 6)
    remaining = (
        None if daily_budget is None else round(daily_budget - used + (1.0 if arithmetic_fault else 0.0), 6)
    )
    moment = now or datetime.datetime.now(_BEIJING)
    reset = (moment.astimezone(_BEIJING) + datetime.timedelta(days=0 if reset_past else 1)).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    return {
        "object": "balance",
        "currency": currency,
        "balance": round(balance - tenant_tokens_used * PRICE_PER_TOKEN, 6),
        "api_key": {
            "id": key_id(key),
            "name": name,
            "daily_budget": daily_budget,
            "daily_used": used,
            "daily_remaining": remaining,
            "daily_reset_at": reset.isoformat(),
            "monthly_budget": None,
            "monthly_used": None,
            "monthly_remaining": None,
            "monthly_reset_at": None,
        },
    }


SEARCH_HOST = "https://search.gatecheck.invalid"
"""Where the reference's search sources point (``.invalid`` never resolves: nothing to fetch)."""


def search_sources(query: str) -> tuple[str, ...]:
    """The sources a search answer cites: one made-up result page per query."""
    return (f"{SEARCH_HOST}/results?q={urllib.parse.quote_plus(' '.join(query.split()[:12]))}",)


def parse_size(size: object) -> tuple[int, int] | None:
    """``"1024x1024"`` -> (1024, 1024); None when it is not WxH with sides 1..MAX_IMAGE_SIDE."""
    if not isinstance(size, str):
        return None
    width, sep, height = size.lower().partition("x")
    if not sep or not width.isdigit() or not height.isdigit():
        return None
    w, h = int(width), int(height)
    return (w, h) if 1 <= w <= MAX_IMAGE_SIDE and 1 <= h <= MAX_IMAGE_SIDE else None


def colour_for(prompt: str, index: int) -> tuple[int, int, int]:
    """A colour derived from the prompt and the image's index (different images differ)."""
    digest = hashlib.sha256(f"{index}:{prompt}".encode()).digest()
    return digest[0], digest[1], digest[2]


@lru_cache(maxsize=64)
def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A valid one-colour PNG (1-bit palette, CRCs included)."""
    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    header = struct.pack(">IIBBBBB", width, height, 1, 3, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"PLTE", bytes(rgb))
        + _chunk(b"IDAT", zlib.compress(row * height, 9))
        + _chunk(b"IEND", b"")
    )


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


class ImageStore:
    """Generated images by id, for their URLs; bounded (oldest dropped first)."""

    def __init__(self, capacity: int = 256) -> None:
        self._capacity = capacity
        self._images: OrderedDict[str, bytes] = OrderedDict()

    def put(self, image_id: str, data: bytes) -> None:
        self._images[image_id] = data
        while len(self._images) > self._capacity:
            self._images.popitem(last=False)

    def get(self, image_id: str) -> bytes | None:
        return self._images.get(image_id)
