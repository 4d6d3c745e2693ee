"""The one user-facing error type. The CLI prints its message on one line and exits 2 — no traceback —
so every package raises a subclass of it for mistakes a user can fix (bad file, bad config, bad flag)."""


class CrowdstreamError(Exception):
    """A problem the user can fix; the message names the file, key or value and what was expected."""
