"""An independent gateway double: the five API documents implemented differently, for a second opinion.

Written from shared/api-docs alone (nothing from gatecheck's reference gateway, schemas or fake
model) on a different stack (the standard library's ThreadingHTTPServer), with its own model
(deterministic, disobedient, ~4 characters per token), RPM by a sliding log, TPM charged after the
response, 002's error dialect. ``QUIRKS`` names switches that each reproduce one behaviour of
issue 9 for a test of gatecheck's verdict on it.
"""

from .catalog import MODELS, QUIRKS
from .limits import KeyLimits
from .server import DoubleConfig, RunningDouble, running_double, start_double

__all__ = ["MODELS", "QUIRKS", "DoubleConfig", "KeyLimits", "RunningDouble", "running_double", "start_double"]
