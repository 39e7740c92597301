"""A small SSE reader for tests and benchmarks: events as dicts from an httpx streaming reply."""

from __future__ import annotations

from collections.abc import Iterator

import httpx


def events(reply: httpx.Response) -> Iterator[dict[str, str]]:
    """Each event as {"id", "event", "data"}; comment lines are yielded as {"comment": text}."""
    event: dict[str, str] = {}
    data: list[str] = []
    for line in reply.iter_lines():
        if not line:
            if data or event:
                yield {**event, "data": "\n".join(data)}
            event, data = {}, []
        elif line.startswith(":"):
            yield {"comment": line[1:].strip()}
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                data.append(value)
            elif name in ("id", "event", "retry"):
                event[name] = value
