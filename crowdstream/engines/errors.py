"""The error types users see. The CLI prints a CrowdstreamError's message on one line and exits 2 (no
traceback), so every package raises a subclass of it for mistakes a user can fix (bad file, bad config,
bad flag). ConfigError is one type for the service's configuration and training's alike. The engine
error lives here, not beside `load_engine`, so every backend can raise it without importing the module
that imports the backends."""


class CrowdstreamError(Exception):
    """A problem the user can fix; the message names the file, key or value and what was expected."""


class ConfigError(CrowdstreamError):
    """A configuration file, key or override that cannot be used; one line naming the file and key."""


class EngineError(CrowdstreamError):
    """A model file or backend that cannot be used (missing, corrupt, wrong shape, backend absent)."""
