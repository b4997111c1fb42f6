"""Tool calling and structured output: tool_choice, arguments, JSON mode, json_schema (000, 001, 004)."""

from gatecheck.checks import CheckGroup

TOOLS = CheckGroup("tools", "json")
