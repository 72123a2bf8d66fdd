"""Errors a user can act on: one line that names the problem and the fix."""


class GanlabError(Exception):
    """A problem with the user's input or environment; printed as one line, no traceback."""

    exit_code = 1


class UsageError(GanlabError):
    """A bad flag, value, key or file given by the user (exit code 2)."""

    exit_code = 2
