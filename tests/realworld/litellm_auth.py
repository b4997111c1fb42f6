"""Static keys for the LiteLLM proxy under test, loaded by its ``general_settings.custom_auth``.

Without a database LiteLLM has no virtual keys, so this hook stands in for them: each key the
harness generated (read from ``$REALWORLD_KEYS``, a JSON object ``{key: {"rpm": N, "tpm": N}}``,
never from a file) gets its own RPM/TPM limits, which LiteLLM's own rate limiter then enforces.
This module runs inside the LiteLLM process; it imports only what LiteLLM ships.
"""

from __future__ import annotations

import hashlib
import json
import os

from fastapi import Request
from litellm.proxy._types import UserAPIKeyAuth

_KEYS: dict[str, dict[str, int]] = json.loads(os.environ["REALWORLD_KEYS"])


async def user_api_key_auth(request: Request, api_key: str) -> UserAPIKeyAuth:
    """The key's identity and limits; an unknown key raises, which LiteLLM answers with a 401."""
    limits = _KEYS.get(api_key)
    if limits is None:
        raise Exception("invalid API key")  # LiteLLM turns any exception here into its 401 body
    # LiteLLM names the key in its 429 messages and logs: give it a digest, never the key itself.
    digest = hashlib.sha256(api_key.encode()).hexdigest()
    return UserAPIKeyAuth(api_key=digest, rpm_limit=limits["rpm"], tpm_limit=limits["tpm"])
