"""Non-streaming chat completions: the body, usage and honoured parameters (001, 002; OpenAI)."""

from gatecheck.checks import CheckGroup

NONSTREAM = CheckGroup("nonstream")
