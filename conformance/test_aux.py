"""Auxiliary endpoints: models, balance, images, search completions (002, 004)."""

from gatecheck.checks import CheckGroup

AUX = CheckGroup("aux")
