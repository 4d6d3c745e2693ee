"""Everything the soak counts as an unhandled exception, from the three places one can surface: a log
record at ERROR or above (and whether it carries a traceback), an exception escaping a thread
(`threading.excepthook`) and one escaping a task or callback (the event loop's exception handler).
Each is still reported the usual way; the watch only counts."""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass, field


class ErrorCounter(logging.Handler):
    """Counts log records at ERROR or above, and those carrying a traceback, while attached."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.errors = 0
        self.exceptions = 0
        self.first: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.errors += 1
        self.exceptions += record.exc_info is not None
        if len(self.first) < 5:
            self.first.append(f"{record.name}: {record.getMessage()}"[:200])


@dataclass
class ExceptionWatch:
    """Attach with `start()` (inside the running loop), detach with `stop()`; read the counts after."""

    log: ErrorCounter = field(default_factory=ErrorCounter)
    thread_exceptions: int = 0
    loop_exceptions: int = 0
    _thread_hook: object = None
    _loop: asyncio.AbstractEventLoop | None = None
    _loop_handler: object = None

    def start(self) -> None:
        logging.getLogger().addHandler(self.log)
        self._thread_hook = threading.excepthook
        threading.excepthook = self._on_thread_exception
        self._loop = asyncio.get_running_loop()
        self._loop_handler = self._loop.get_exception_handler()
        self._loop.set_exception_handler(self._on_loop_exception)

    def _on_thread_exception(self, args: threading.ExceptHookArgs) -> None:
        self.thread_exceptions += 1
        self._thread_hook(args)

    def _on_loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict) -> None:
        self.loop_exceptions += 1
        if self._loop_handler is not None:
            self._loop_handler(loop, context)
        else:
            loop.default_exception_handler(context)

    def stop(self) -> None:
        logging.getLogger().removeHandler(self.log)
        if self._thread_hook is not None:
            threading.excepthook = self._thread_hook
        if self._loop is not None:
            self._loop.set_exception_handler(self._loop_handler)

    def as_dict(self) -> dict:
        return {
            "errors_logged": self.log.errors,
            "exceptions_logged": self.log.exceptions,
            "thread_exceptions": self.thread_exceptions,
            "loop_exceptions": self.loop_exceptions,
            "first_errors": self.log.first,
        }

    @property
    def clean(self) -> bool:
        """No traceback anywhere and nothing logged at ERROR."""
        return not (self.log.errors or self.thread_exceptions or self.loop_exceptions)
