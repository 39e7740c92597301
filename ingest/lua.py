"""Lua scripts: each a `.lua` file beside the Python that calls it, its KEYS and ARGV at its top.

A script that uses a library of functions (the near-duplicate and story indexes) is the
library's file followed by its own: Redis runs one chunk, so the functions are in scope.
`ScriptPipeline` sends many script calls in one round trip.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import redis
from redis.commands.core import Script


@cache
def lua_source(package: str, *files: str) -> str:
    """The source of one script: the library files it uses first, its own file last."""
    root = resources.files(package)
    return "\n".join(root.joinpath(name).read_text(encoding="utf-8") for name in files)


def register(client: Any, package: str, *files: str) -> Script:
    """The script, ready to call on `client` (EVALSHA, loaded on first use)."""
    return client.register_script(lua_source(package, *files))  # type: ignore[no-any-return]


class ScriptPipeline:
    """Script calls sent in one round trip as bare EVALSHAs; the scripts are loaded again (and the
    calls repeated: every script sent this way is idempotent) only when the server has lost them.
    (A redis-py pipeline asks SCRIPT EXISTS before each execute: one more round trip per batch.)"""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.calls: list[tuple[Script, list[Any], list[Any]]] = []

    def __len__(self) -> int:
        return len(self.calls)

    def add(self, script: Script, keys: list[Any], args: list[Any]) -> None:
        self.calls.append((script, keys, args))

    def execute(self) -> list[Any]:
        if not self.calls:
            return []
        try:
            return self.send()
        except redis.exceptions.NoScriptError:
            for script in {call[0] for call in self.calls}:
                self.client.script_load(script.script)
            return self.send()

    def send(self) -> list[Any]:
        pipe = self.client.pipeline(transaction=False)
        for script, keys, args in self.calls:
            pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
        return list(pipe.execute())
