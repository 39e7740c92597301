"""The HTTP application: one Starlette app; each feature adds its routes here.

Route groups are plain functions returning Starlette routes, given the service's `HttpContext`
(settings and one Redis client). Every route under `/v1/` asks for a bearer token when
`NEWSWIRE_API_TOKENS` is set (`auth.py`); `/healthz` never does, for load balancers.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from config.settings import Settings
from newswire.http.auth import BearerTokens
from newswire.http.desk import desk_routes
from newswire.http.lookups import lookup_routes
from newswire.http.openapi import openapi_routes
from newswire.http.sse import stream_routes
from newswire.http.websub import websub_routes


@dataclass(frozen=True)
class HttpContext:
    settings: Settings
    redis: redis.Redis


def health_routes(ctx: HttpContext) -> list[BaseRoute]:
    async def healthz(request: Request) -> JSONResponse:
        try:
            ok = bool(ctx.redis.ping())
        except redis.RedisError as exc:
            return JSONResponse({"status": "unavailable", "redis": str(exc)}, status_code=503)
        return JSONResponse({"status": "ok", "redis": ok})

    return [Route("/healthz", healthz)]


# each feature adds its group here (the desk last: it serves `/` and the static files)
ROUTE_GROUPS = (health_routes, websub_routes, stream_routes, lookup_routes, openapi_routes, desk_routes)


def create_app(ctx: HttpContext) -> Starlette:
    routes = [route for group in ROUTE_GROUPS for route in group(ctx)]
    tokens = BearerTokens.from_setting(ctx.settings.api_tokens)
    return Starlette(routes=routes, middleware=[Middleware(tokens.middleware)])
