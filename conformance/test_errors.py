"""Authentication, status codes and error bodies, negative tests generated from the request schema (002)."""

from gatecheck.checks import CheckGroup

ERRORS = CheckGroup("errors")
