"""Behind the gateway: what it does with its upstream's failures (002 Error Codes; needs --upstream)."""

from gatecheck.checks import CheckGroup

UPSTREAM = CheckGroup("upstream")
