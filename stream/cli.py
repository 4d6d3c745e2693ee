"""Subcommands of `stream`: `serve`, `count`, `bench stream`, `bench soak`."""

from __future__ import annotations

import argparse


def register(commands: argparse._SubParsersAction, bench: argparse._SubParsersAction) -> None:
    """Add this package's subcommands (filled in by the stream work)."""
