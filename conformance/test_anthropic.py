"""The Anthropic-compatible /v1/messages: auth, response, the stream's event grammar (002; Anthropic)."""

from gatecheck.checks import CheckGroup

ANTHROPIC = CheckGroup("anthropic")
