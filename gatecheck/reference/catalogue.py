"""The models the reference gateway serves: the documented ones (000/001) plus two test helpers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

CREATED = 1_700_000_000
"""The fixed ``created`` time of every model in ``GET /v1/models``."""

MIDSTREAM_ERROR_MODEL = "gatecheck-midstream-error"
"""A chat model that fails after a few tokens: the trigger for mid-stream upstream errors."""

TINY_MODEL = "gatecheck-tiny"
"""A chat model with a 1,024-token context, so a context_length_exceeded test costs little."""


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What the gateway knows of one model: who owns it, its context length, what it serves."""

    id: str
    owned_by: str
    context_length: int
    kind: Literal["chat", "image"] = "chat"
    reasoning: bool = False


MODELS: dict[str, ModelInfo] = {
    m.id: m
    for m in (
        ModelInfo("deepseek-v4-flash", "deepseek", 1_000_000),
        ModelInfo("deepseek-v4-pro", "deepseek", 1_000_000, reasoning=True),
        ModelInfo("qwen3.7-max", "qwen", 1_000_000),
        ModelInfo("glm-5.7", "zhipu", 200_000),
        ModelInfo("kimi-k2.6", "moonshot", 256_000),
        ModelInfo("minimax-m3", "minimax", 1_000_000),
        ModelInfo("gpt-image-2", "openai", 0, kind="image"),
        ModelInfo(TINY_MODEL, "gatecheck", 1_024),
        ModelInfo(MIDSTREAM_ERROR_MODEL, "gatecheck", 1_000_000),
    )
}
"""Every served model by id, in the order ``GET /v1/models`` lists them."""
