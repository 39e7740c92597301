"""The desk: a page at `/` for editors, stories as they form, live from the SSE stream.

Plain HTML, CSS and a little JavaScript from `static/`, no build step. The page itself needs no
token; its calls to `/v1/…` send the one the editor types in (kept in the browser's storage).
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

STATIC = resources.files("newswire.http") / "static"
FILES = {"/": ("desk.html", "text/html"), "/desk.js": ("desk.js", "text/javascript"),
         "/desk.css": ("desk.css", "text/css")}  # fmt: skip
SECURITY = {
    "content-security-policy": "default-src 'self'; img-src 'self' data:",
    "x-content-type-options": "nosniff",
}


def static_file(name: str, media: str) -> Any:
    body = STATIC.joinpath(name).read_bytes()

    async def serve(request: Request) -> Response:
        return Response(body, media_type=f"{media}; charset=utf-8", headers=SECURITY)

    return serve


def desk_routes(ctx: Any) -> list[BaseRoute]:
    return [Route(path, static_file(name, media)) for path, (name, media) in FILES.items()]
