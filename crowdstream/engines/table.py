"""Fixed-width text tables, as the benchmark commands print them for a person (`--json` for machines).

Each table names its columns once (`Column`: title, width, how a row's cell reads) and `format_table`
lines them up, so every benchmark table pads, aligns and marks missing values the same way."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Column:
    """One column: its title, its width, and the text of a row's cell (None: shown as '-')."""

    title: str
    width: int
    cell: Callable[[Any], str | None]
    left: bool = False  # text reads left-aligned, numbers right-aligned

    def pad(self, text: str) -> str:
        return text.ljust(self.width) if self.left else text.rjust(self.width)


def format_table(rows: Sequence[Any], columns: Sequence[Column], rule: bool = False) -> str:
    """A header line, a rule of dashes under it if asked, then one line per row; cells are separated by
    one space and padded to their column's width (a longer cell widens its line, never gets cut)."""
    header = " ".join(column.pad(column.title) for column in columns)
    lines = [header, "-" * len(header)] if rule else [header]
    for row in rows:
        cells = (column.cell(row) for column in columns)
        lines.append(
            " ".join(c.pad("-" if text is None else text) for c, text in zip(columns, cells, strict=True))
        )
    return "\n".join(lines)
