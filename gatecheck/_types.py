"""Type names used across gatecheck, defined once."""

from __future__ import annotations

from typing import Any, TypeAlias

JSON: TypeAlias = Any
"""A decoded JSON value."""

JSONObject: TypeAlias = dict[str, Any]
"""A decoded JSON object."""

Headers: TypeAlias = dict[str, str]
"""Request headers as sent (names as given)."""
