"""`GET /v1/openapi.json`: the HTTP API described as OpenAPI 3.1 (tests check it lists every route)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

ARTICLE = {"$ref": "#/components/schemas/Article"}
STORY = {"$ref": "#/components/schemas/Story"}
ERRORS = {
    "401": {"description": "a bearer token is required (when NEWSWIRE_API_TOKENS is set)"},
    "404": {"description": "not found (unknown, or trimmed from the streams)"},
}


def json_reply(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def param(name: str, where: str, description: str, *, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": where, "required": required or where == "path",
            "description": description, "schema": {"type": "string"}}  # fmt: skip


STREAM_PARAMS = [
    param("stream", "path", "`articles`, `duplicates`, `updates` or `topic:{slug}`"),
    param("Last-Event-ID", "header", "resume after this entry id (browsers send it on reconnect)"),
    param("after", "query", "start after this entry id (`1795771045170-0`)"),
    param("since", "query", "start at this ISO 8601 time (`2026-11-27T09:00:00Z`)"),
]
SSE_TEXT = (
    "Server-Sent Events: `id:` the Redis entry id, `event: article|duplicate|update`, `data:` the "
    "document as one line of JSON. Default start: new entries only. A comment every 15 s. A client "
    "more than the server's ring (1,024 entries) behind a live stream gets `event: dropped` with "
    '`{"reason", "last_event_id"}` and should reconnect with that id.'
)
PATHS: dict[str, Any] = {
    "/v1/streams/{stream}": {"get": {
        "summary": "An output stream as Server-Sent Events, resumable", "parameters": STREAM_PARAMS,
        "responses": {"200": {"description": SSE_TEXT, "content": {"text/event-stream": {}}},
                      "400": {"description": "a bad entry id or time"}, **ERRORS},
    }},
    "/v1/articles/{article_id}": {"get": {
        "summary": "The latest revision of one article",
        "parameters": [param("article_id", "path", "the document's `id`")],
        "responses": {"200": json_reply(ARTICLE, "the article document"), **ERRORS},
    }},
    "/v1/stories": {"get": {
        "summary": "The most recently active stories, newest first (documents without `text`)",
        "parameters": [param("limit", "query", "1..500, default 50")],
        "responses": {"200": json_reply({"type": "object", "properties": {
            "last_event_id": {"type": "string", "description": "start the articles stream after this"},
            "stories": {"type": "array", "items": STORY}}}, "recent stories"), **ERRORS},
    }},
    "/v1/stories/{story_id}": {"get": {
        "summary": "The articles of one story, oldest first, with sources and first-seen times",
        "parameters": [param("story_id", "path", "the documents' `story_id`")],
        "responses": {"200": json_reply(STORY, "the story"), **ERRORS},
    }},
    "/v1/topics": {"get": {
        "summary": "The topic definitions and how many articles each topic stream holds",
        "responses": {"200": json_reply({"type": "object"}, "the topics"), **ERRORS},
    }},
    "/v1/openapi.json": {"get": {
        "summary": "This document", "responses": {"200": {"description": "OpenAPI 3.1"}},
    }},
}  # fmt: skip
SCHEMAS = {
    "Article": {"type": "object", "description": "The article document, `schema_version` 1: "
                "docs/article.schema.json in the project", "required": ["id", "url", "title", "story_id"]},
    "Story": {"type": "object", "properties": {
        "story_id": {"type": "string"}, "count": {"type": "integer"}, "headline": {"type": "string"},
        "first_seen": {"type": "string", "format": "date-time"},
        "last_seen": {"type": "string", "format": "date-time"},
        "sources": {"type": "array", "items": {"type": "string"}},
        "topics": {"type": "array", "items": {"type": "object"}},
        "articles": {"type": "array", "items": {"type": "object", "properties": {
            "first_seen": {"type": "string", "format": "date-time"}, "entry_id": {"type": "string"},
            "document": ARTICLE}}}}},
}  # fmt: skip


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "newswire", "version": "1",
                 "description": "Subscribe to newswire's output streams without Redis."},
        "paths": PATHS,
        "components": {
            "schemas": SCHEMAS, "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }  # fmt: skip


def openapi_routes(ctx: Any) -> list[BaseRoute]:
    async def openapi(request: Request) -> JSONResponse:
        return JSONResponse(document())

    return [Route("/v1/openapi.json", openapi)]
