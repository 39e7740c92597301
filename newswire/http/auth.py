"""Bearer tokens for the HTTP API (`NEWSWIRE_API_TOKENS`, comma-separated). Tokens are never logged.

Without tokens the API is open, and the service binds to loopback only (`server.py`). Paths
outside `/v1/` (`/healthz`, WebSub callbacks, which hubs sign instead) need no token.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from starlette.responses import JSONResponse

Scope = MutableMapping[str, Any]
App = Callable[[Scope, Callable[..., Awaitable[Any]], Callable[..., Awaitable[Any]]], Awaitable[None]]
PROTECTED_PREFIX = "/v1/"


@dataclass(frozen=True)
class BearerTokens:
    tokens: tuple[str, ...]

    @classmethod
    def from_setting(cls, value: str | None) -> BearerTokens:
        return cls(tuple(t.strip() for t in (value or "").split(",") if t.strip()))

    def allows(self, header: str | None) -> bool:
        """True when no tokens are configured, or the Authorization header carries one of them."""
        if not self.tokens:
            return True
        scheme, _, given = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not given:
            return False
        return any(hmac.compare_digest(given.strip().encode(), t.encode()) for t in self.tokens)

    def middleware(self, app: App) -> App:
        async def guarded(scope: Scope, receive: Any, send: Any) -> None:
            if scope["type"] == "http" and scope["path"].startswith(PROTECTED_PREFIX):
                headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
                if not self.allows(headers.get("authorization")):
                    reply = JSONResponse(
                        {"error": "a bearer token is required"}, 401, {"WWW-Authenticate": "Bearer"}
                    )
                    await reply(scope, receive, send)
                    return
            await app(scope, receive, send)

        return guarded
