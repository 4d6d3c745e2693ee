"""`Subcommands`: the type of what `ArgumentParser.add_subparsers()` returns, for the `register`
functions through which each package adds its commands. argparse documents that object and its
`add_parser` method but keeps its class (`argparse._SubParsersAction`) private, so the packages name it
by what they use of it."""

from __future__ import annotations

import argparse
from typing import Any, Protocol


class Subcommands(Protocol):
    """A parser's set of subcommands: `add_parser` adds one and returns its own parser."""

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser: ...
