"""Streaming chat completions: SSE framing, chunk rules, usage, tool-call deltas (000, 003, 004; SSE)."""

from gatecheck.checks import CheckGroup

STREAM = CheckGroup("stream")
