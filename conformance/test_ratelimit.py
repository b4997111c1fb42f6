"""Rate limits: 429 beyond RPM and TPM, Retry-After, the rate-limit headers (002 Rate Limits)."""

from gatecheck.checks import CheckGroup

RATELIMIT = CheckGroup("ratelimit")
