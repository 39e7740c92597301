"""Tables for listing commands: boxed for a person at a terminal; for a pipe or a file, one
row per line, tab-separated, with a header, nothing truncated (CONTRACT §2)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table

SHORT_COLUMN = 24  # characters


def print_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    title: str | None = None,
    out: TextIO | None = None,
) -> None:
    out = out or sys.stdout
    cells = [[cell_text(c) for c in row] for row in rows]
    if out.isatty():
        table = Table(title=title, title_justify="left")
        for i, header in enumerate(headers):  # short columns never wrap: long ones give way
            widest = max((len(row[i]) for row in cells), default=0)
            table.add_column(header, no_wrap=widest <= SHORT_COLUMN)
        for row in cells:
            table.add_row(*row)
        Console(file=out).print(table)
        return
    out.write("\t".join(headers) + "\n")
    for row in cells:
        out.write("\t".join(c.replace("\t", " ").replace("\n", " ") for c in row) + "\n")


def cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
