"""Look-ups: `GET /v1/articles/{id}`, `/v1/stories/{story_id}`, `/v1/stories`, `/v1/topics`.

Thin views over `ingest.streams.lookup` (the index written with every stream write) and the
topics file; the blocking Redis calls run in Starlette's thread pool.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ingest import keys
from ingest.streams.lookup import RedisLookups
from ingest.tag.topics import TopicError, TopicsFile

MAX_LIMIT = 500


def json_response(value: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(value), status, media_type="application/json")


def not_found(what: str) -> Response:
    return JSONResponse({"error": f"{what} not found (unknown, or trimmed from the streams)"}, 404)


def parse_limit(raw: str | None, default: int = 50) -> int:
    try:
        value = int(raw) if raw else default
    except ValueError as exc:
        raise ValueError(f"limit: {raw!r} is not an integer") from exc
    if not 1 <= value <= MAX_LIMIT:
        raise ValueError(f"limit: {value} is outside 1..{MAX_LIMIT}")
    return value


def topic_rows(topics: TopicsFile, lengths: dict[str, int]) -> list[dict[str, Any]]:
    return [
        {"slug": t.slug, "name": t.name, "description": t.description, "stream": f"topic:{t.slug}",
         "articles": lengths.get(t.slug, 0)}
        for t in topics.get().topics
    ]  # fmt: skip


class LookupViews:
    def __init__(self, ctx: Any) -> None:
        self.lookups = RedisLookups(ctx.redis, ctx.settings.prefix)
        self.topics = TopicsFile(ctx.settings.topics_path)
        self.client, self.prefix = ctx.redis, ctx.settings.prefix

    async def article(self, request: Request) -> Response:
        found = await run_in_threadpool(self.lookups.article, request.path_params["article_id"])
        if found is None:
            return not_found("article")
        return json_response(found.document, 200)

    async def story(self, request: Request) -> Response:
        story = await run_in_threadpool(self.lookups.story, request.path_params["story_id"])
        return not_found("story") if story is None else json_response(story)

    async def stories(self, request: Request) -> Response:
        try:
            limit = parse_limit(request.query_params.get("limit"))
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, 400)
        return json_response(await run_in_threadpool(self.recent, limit))

    def recent(self, limit: int) -> dict[str, Any]:
        """The newest stories, and the articles stream's last id before they were read: an SSE
        client that starts `?after=` it misses nothing published since (and may see a few twice)."""
        last = self.lookups.last_entry_id(keys.articles_stream(self.prefix))
        return {"last_event_id": last, "stories": self.lookups.recent(limit)}

    async def topic_list(self, request: Request) -> Response:
        try:
            return json_response({"topics": await run_in_threadpool(self.topic_table)})
        except TopicError as exc:
            return JSONResponse({"error": str(exc)}, 503)

    def topic_table(self) -> list[dict[str, Any]]:
        slugs = self.topics.get().slugs
        pipe = self.client.pipeline(transaction=False)
        for slug in slugs:
            pipe.xlen(keys.topic_stream(self.prefix, slug))
        return topic_rows(self.topics, dict(zip(slugs, pipe.execute(), strict=True)))


def lookup_routes(ctx: Any) -> list[BaseRoute]:
    views = LookupViews(ctx)
    return [
        Route("/v1/articles/{article_id}", views.article),
        Route("/v1/stories", views.stories),
        Route("/v1/stories/{story_id}", views.story),
        Route("/v1/topics", views.topic_list),
    ]
