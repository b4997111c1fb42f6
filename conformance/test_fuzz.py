"""Requests generated from the request schema: valid ones answered, invalid ones refused (hypothesis)."""

from gatecheck.checks import CheckGroup

FUZZ = CheckGroup("fuzz")
