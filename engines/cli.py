"""Subcommands of `engines`: `engine info`, `engine build`, `bench engine`."""

from __future__ import annotations

import argparse


def register(commands: argparse._SubParsersAction, bench: argparse._SubParsersAction) -> None:
    """Add this package's subcommands (filled in by the engines work)."""
