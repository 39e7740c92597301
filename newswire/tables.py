"""Tables for listing commands: boxed for a person at a terminal; for a pipe or a file, one
row per line, tab-separated, with a header, nothing truncated (CONTRACT §2)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table


def print_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    title: str | None = None,
    out: TextIO | None = None,
) -> None:
    out = out or sys.stdout
    if out.isatty():
        table = Table(*headers, title=title, title_justify="left")
        for row in rows:
            table.add_row(*(cell_text(c) for c in row))
        Console(file=out).print(table)
        return
    out.write("\t".join(headers) + "\n")
    for row in rows:
        out.write("\t".join(cell_text(c).replace("\t", " ").replace("\n", " ") for c in row) + "\n")


def cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
