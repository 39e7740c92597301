"""Tables that read on a terminal and in a pipe (CONTRACT §2).

On a terminal: a rich table, long cells folded to the screen. Anywhere else (`| less`, `| grep`,
`> file`): one row per line, tab-separated, after one header line (and a `# title` line before it
when the command prints several tables), nothing truncated or wrapped; a tab or a line break inside
a cell becomes a space, so each row stays one line.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import IO

import click
from rich import box
from rich.console import Console
from rich.table import Table

BREAKS = re.compile(r"[\t\r\n\v\f]+")


@dataclass(frozen=True, slots=True)
class Column:
    header: str  # the header line of the tab-separated form: a stable name for `cut` and scripts
    title: str = ""  # the rich table's heading (default: the header)
    width: int | None = None  # on a terminal, cells longer than this are cut with an ellipsis


def is_terminal(stream: IO[str] | None = None) -> bool:
    stream = stream or sys.stdout
    return bool(getattr(stream, "isatty", lambda: False)())


def cell(value: object) -> str:
    """One table cell as text on one line."""
    return "" if value is None else BREAKS.sub(" ", str(value))


def tsv_lines(columns: Sequence[Column], rows: Sequence[Sequence[object]]) -> list[str]:
    """The header line, then one tab-separated line per row."""
    return ["\t".join(c.header for c in columns)] + ["\t".join(cell(v) for v in row) for row in rows]


def rich_table(
    columns: Sequence[Column], rows: Sequence[Sequence[object]], title: str | None = None
) -> Table:
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    for column in columns:
        table.add_column(column.title or column.header, overflow="fold")
    for row in rows:
        table.add_row(*(shorten(cell(v), c.width) for c, v in zip(columns, row, strict=True)))
    return table


def shorten(text: str, width: int | None) -> str:
    return text if width is None or len(text) <= width else text[: width - 1] + "…"


def as_columns(columns: Sequence[Column | str]) -> list[Column]:
    return [c if isinstance(c, Column) else Column(c) for c in columns]


def print_table(
    columns: Sequence[Column | str],
    rows: Sequence[Sequence[object]],
    *,
    title: str | None = None,
    console: Console | None = None,
    terminal: bool | None = None,
) -> None:
    """A rich table on a terminal, tab-separated lines otherwise (`terminal` overrides the check).
    A column given as a plain string is a `Column` with that header."""
    columns = as_columns(columns)
    if terminal if terminal is not None else is_terminal():
        (console or Console()).print(rich_table(columns, rows, title))
        return
    emit_lines(([f"# {title}"] if title else []) + tsv_lines(columns, rows))


def emit_lines(lines: Iterable[str]) -> None:
    """Lines to stdout; a reader that stops early (`| head`) ends the command quietly."""
    try:
        for line in lines:
            click.echo(line)
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        raise SystemExit(0) from None
