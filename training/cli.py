"""Subcommands of `training`: `train`, `eval`, `density`, `export`."""

from __future__ import annotations

import argparse


def register(commands: argparse._SubParsersAction, bench: argparse._SubParsersAction) -> None:
    """Add this package's subcommands."""
