"""The CLI's log handler follows sys.stderr, so an in-process caller that swaps and closes it (pytest's
capsys) never leaves the root logger writing into a closed stream."""

from __future__ import annotations

import io
import logging
import sys

import pytest

from crowdstream.logs import configure_logging


@pytest.fixture
def root_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield root
    root.handlers[:], root.level = handlers, level


def test_records_go_to_the_stderr_of_their_moment(root_logging, monkeypatch) -> None:
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    configure_logging("info")
    logging.getLogger("crowdstream.test").info("source up", extra={"camera": "gate"})
    first.close()  # the caller is done with its stream
    monkeypatch.setattr(sys, "stderr", second)
    logging.getLogger("crowdstream.test").info("source down", extra={"camera": "gate"})
    assert second.getvalue().rstrip().endswith("crowdstream.test: source down camera=gate")
    assert "Logging error" not in second.getvalue()
