"""Every Celery task name, in one place, and the stage (queue) each runs on.

Names are part of the wire format: a message queued by one version is run by the next,
so a name is never reused for other arguments. `FETCH_ARTICLE` and `EXTRACT_ARTICLE` are
the one-article tasks of earlier versions, kept as small adapters (workers/tasks.py).
"""

from __future__ import annotations

TICK = "ingest.tick"
POLL_FEED = "ingest.poll_feed"
FETCH_ARTICLES = "ingest.fetch_articles"
EXTRACT_ARTICLES = "ingest.extract_articles"
RETAG_ARTICLES = "ingest.retag_articles"
FETCH_ARTICLE = "ingest.fetch_article"  # one article per task: messages queued by earlier versions
EXTRACT_ARTICLE = "ingest.extract_article"
WEBSUB_REQUEST = "ingest.websub_request"  # workers/websub.py: subscribe, renew, unsubscribe
WEBSUB_PUSH = "ingest.websub_push"  # a pushed feed document: parsed, its new entries handed on

STAGES = ("feeds", "articles", "extract")  # feed polling (I/O), article pages (I/O), extraction (CPU)
STAGE_OF_TASK = {
    TICK: "feeds",
    POLL_FEED: "feeds",
    FETCH_ARTICLES: "articles",
    FETCH_ARTICLE: "articles",
    EXTRACT_ARTICLES: "extract",
    EXTRACT_ARTICLE: "extract",
    RETAG_ARTICLES: "extract",
    WEBSUB_REQUEST: "feeds",
    WEBSUB_PUSH: "feeds",
}
