"""gatecheck: conformance and load testing for OpenAI- and Anthropic-compatible LLM gateways."""

from __future__ import annotations

__version__ = "0.1.0"
