"""A loopback news web over the extraction corpus, for bench/pipeline.py and bench/soak.py.

`sources` sites, each on its own loopback address (127.1.x.y, so each is its own host to the
politeness limiter and to robots.txt) and a free port, each with one RSS feed (`/feed.xml`) of
its article pages (`/a/<n>.html`) and a `/robots.txt` that allows everything.

Item n of source s is a corpus page written in a "dialect": in the page's text (never in
tags, scripts, styles or comments) about half of the words of 4+ letters have their 2nd and
3rd letters swapped (any script), the half chosen by the dialect. So one page under two dialects is two
distinct articles (another body hash, few shared 5-word shingles), as one story is when two
outlets write it. Every `copy_every`-th item is an exact copy of the next source's article on
the same page (syndication), to exercise dedup. Items are released over time (`rate` per
second, 0 = all at once); a feed lists its newest `feed_items` released items. Pages are
rendered ahead (bench) or on request (soak) and served from memory, identity encoding, HTTP/1.1 keep-alive.
The corpus is read at run time only.
"""

from __future__ import annotations

import gzip
import hashlib
import html
import json
import multiprocessing as mp
import re
import threading
import time
import zlib
from dataclasses import dataclass
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

CORPUS = Path("/work/shared/corpus/article-extraction-benchmark")
TEXT_OR_MARKUP = re.compile(
    r"(<script\b.*?</script\s*>|<style\b.*?</style\s*>|<!--.*?-->|<[^>]*>)|([^\W\d_]{4,})", re.S | re.I
)
TITLE = re.compile(r"<title[^>]*>(.*?)</title", re.S | re.I)
PAGE_PATH = re.compile(r"^/a/(\d+)\.html$")
STRIDE = 15  # sources start at different places in the corpus
Bodies = dict[tuple[int, int], bytes]  # (source, n) -> page body, rendered ahead
STATS = ("first_request", "first_page", "last_request", "feeds", "pages", "other")


@dataclass(frozen=True, slots=True)
class CorpusPage:
    id: str
    html: str
    lead: str  # the first words of the ground-truth body: the feed's description
    title: str


@dataclass(frozen=True, slots=True)
class WebPlan:
    sources: int = 12
    per_source: int | None = None  # None: the corpus size (bench); unbounded when rate > 0
    copy_every: int = 12  # every k-th item copies the next source's article (0 = no copies)
    rate: float = 0.0  # items released per second over the whole web; 0 = all at start
    feed_items: int = 500  # newest items a feed lists (ingest.feeds.parse reads at most 500)


def source_address(source: int) -> str:
    """Source s listens on a loopback address of its own (the whole of 127.0.0.0/8 is loopback)."""
    return f"127.{1 + source // 62500}.{source // 250 % 250}.{1 + source % 250}"


@dataclass(frozen=True, slots=True)
class Item:
    source: int
    n: int
    page: int  # index into the corpus
    dialect: int


def load_corpus(corpus: Path = CORPUS) -> list[CorpusPage]:
    truth = json.loads((corpus / "ground-truth.json").read_text(encoding="utf-8"))
    return [load_page(corpus, key, truth[key]) for key in sorted(truth)]


def load_page(corpus: Path, key: str, truth: dict[str, str]) -> CorpusPage:
    raw = gzip.decompress((corpus / "html" / f"{key}.html.gz").read_bytes())
    lead = " ".join(truth["articleBody"].split()[:40])
    page = raw.decode("utf-8", errors="replace")
    return CorpusPage(key, page, lead, title_of(page))


# --- what the web holds (pure) ---------------------------------------------------------


def item_of(plan: WebPlan, pages: int, source: int, n: int) -> Item:
    """Item n of a source: which page, in which dialect (a new dialect every pass over the corpus)."""
    page = (n + source * STRIDE) % pages
    owner = source
    if plan.copy_every and plan.sources > 1 and n % plan.copy_every == plan.copy_every - 1:
        owner = (source + 1) % plan.sources
    return Item(source, n, page, owner + plan.sources * (n // pages))


def items_per_source(plan: WebPlan, pages: int) -> int:
    return plan.per_source if plan.per_source is not None else pages


def all_items(plan: WebPlan, pages: int) -> list[Item]:
    count = items_per_source(plan, pages)
    return [item_of(plan, pages, s, n) for s in range(plan.sources) for n in range(count)]


def released(plan: WebPlan, pages: int, source: int, start: float, now: float) -> int:
    """How many of a source's items are out at `now`."""
    cap = items_per_source(plan, pages) if plan.rate == 0 or plan.per_source is not None else None
    if plan.rate == 0:
        return cap or 0
    out = int(max(0.0, now - start) * plan.rate / plan.sources) + 1
    return out if cap is None else min(out, cap)


def vary_text(text: str, dialect: int) -> str:
    """The dialect: every other (by hash) word of 4+ letters gets its 2nd and 3rd letters swapped."""

    def swap(match: re.Match[str]) -> str:
        word = match.group(2)
        if word is None:
            return match.group(1)
        if is_kept(word, dialect):
            return word
        return word[0] + word[2] + word[1] + word[3:]

    return TEXT_OR_MARKUP.sub(swap, text)


def is_kept(word: str, dialect: int) -> bool:
    """Whether a dialect keeps a word as it is: a hash of word and dialect, mixed by a multiply."""
    mixed = ((zlib.crc32(word.encode()) ^ (dialect * 0x9E3779B1)) * 0x85EBCA6B) & 0xFFFFFFFF
    return bool(mixed >> 16 & 1)


def title_of(page_html: str) -> str:
    match = TITLE.search(page_html)
    return " ".join(html.unescape(match.group(1)).split()) if match else "Untitled"


def rss(plan: WebPlan, corpus: list[CorpusPage], base: str, source: int, count: int, start: float) -> bytes:
    """The source's feed: its newest `feed_items` of `count` released items, newest first."""
    first = max(0, count - plan.feed_items)
    items = [rss_item(plan, corpus, base, item_of(plan, len(corpus), source, n), start)
             for n in range(count - 1, first - 1, -1)]  # fmt: skip
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>'
        f"<title>Source {source}</title><link>{base}/</link><description>bench source</description>"
        + "".join(items)
        + "</channel></rss>\n"
    ).encode()


def rss_item(plan: WebPlan, corpus: list[CorpusPage], base: str, item: Item, start: float) -> str:
    link = f"{base}/a/{item.n}.html"
    title = vary_text(corpus[item.page].title, item.dialect)
    lead = vary_text(corpus[item.page].lead, item.dialect)
    offset = (item.n * plan.sources + item.source) / plan.rate if plan.rate else float(item.n)
    when = formatdate(start + offset - 3600, usegmt=True)
    return (
        f"<item><title>{html.escape(title)}</title><link>{link}</link>"
        f'<guid isPermaLink="true">{link}</guid><pubDate>{when}</pubDate>'
        f"<description>{html.escape(lead)}</description></item>"
    )


def page_body(corpus: list[CorpusPage], item: Item) -> bytes:
    return vary_text(corpus[item.page].html, item.dialect).encode("utf-8")


def prerender(plan: WebPlan, corpus: list[CorpusPage]) -> list[tuple[Item, bytes]]:
    """Every item with its page body, rendered now (the bench serves them all at once)."""
    return [(item, page_body(corpus, item)) for item in all_items(plan, len(corpus))]


# --- serving ----------------------------------------------------------------------------


class SourceHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: SourceServer

    def do_GET(self) -> None:
        web = self.server.web
        path = self.path.split("?", 1)[0]
        if path == "/feed.xml":
            web.count("feeds")
            self.send_feed(web)
        elif match := PAGE_PATH.match(path):
            web.count("pages")
            self.send_page(web, int(match.group(1)))
        elif path == "/robots.txt":
            web.count("other")
            self.reply(200, b"User-agent: *\nAllow: /\n", "text/plain")
        else:
            web.count("other")
            self.reply(404, b"not found\n", "text/plain")

    def send_feed(self, web: WebState) -> None:
        count = released(web.plan, len(web.corpus), self.server.source, web.start, time.time())
        body = web.feed_cached(self.server.source, self.server.base, count)
        etag = '"' + hashlib.sha1(body, usedforsecurity=False).hexdigest()[:16] + '"'
        if self.headers.get("If-None-Match") == etag:
            self.reply(304, b"", "application/rss+xml", etag)
            return
        self.reply(200, body, "application/rss+xml; charset=utf-8", etag)

    def send_page(self, web: WebState, n: int) -> None:
        count = released(web.plan, len(web.corpus), self.server.source, web.start, time.time())
        if n >= count:
            self.reply(404, b"not found\n", "text/plain")
            return
        self.reply(200, web.page(self.server.source, n), "text/html; charset=utf-8")

    def reply(self, status: int, body: bytes, content_type: str, etag: str | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if etag:
            self.send_header("ETag", etag)
        self.end_headers()
        if status != 304:
            self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


class SourceServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, web: WebState, source: int) -> None:
        super().__init__((source_address(source), 0), SourceHandler)
        self.web = web
        self.source = source
        self.base = f"http://{source_address(source)}:{self.server_address[1]}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hangs up mid-response (the peer at exit) is not the web's problem


class WebState:
    """What every source server of the web shares: the plan, the pages, the request counters."""

    def __init__(self, plan: WebPlan, corpus: list[CorpusPage], stats: Any, bodies: Bodies) -> None:
        self.plan = plan
        self.corpus = corpus
        self.stats = stats  # a shared array of doubles, laid out as STATS
        self.bodies = bodies
        self.start = time.time()
        self.lock = threading.Lock()
        self.feeds: dict[tuple[int, int], bytes] = {}

    def count(self, kind: str) -> None:
        now = time.time()
        with self.stats.get_lock():
            if self.stats[0] == 0:
                self.stats[0] = now
            if kind == "pages" and self.stats[1] == 0:
                self.stats[1] = now
            self.stats[2] = now
            self.stats[STATS.index(kind)] += 1

    def feed(self, source: int, base: str, count: int) -> bytes:
        return rss(self.plan, self.corpus, base, source, count, self.start)

    def page(self, source: int, n: int) -> bytes:
        body = self.bodies.get((source, n))
        if body is None:
            with self.lock:  # rendering is pure Python: one at a time is enough at soak rates
                body = page_body(self.corpus, item_of(self.plan, len(self.corpus), source, n))
        return body

    def feed_cached(self, source: int, base: str, count: int) -> bytes:
        key = (source, count)
        body = self.feeds.get(key)
        if body is None:
            body = self.feeds[key] = self.feed(source, base, count)
        return body


def serve(plan: WebPlan, corpus: list[CorpusPage], stats: Any, bodies: Bodies, conn: Connection) -> None:
    """The web's process: one server thread per source; reports the base URLs, runs until killed."""
    web = WebState(plan, corpus, stats, bodies)
    servers = [SourceServer(web, s) for s in range(plan.sources)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    conn.send([server.base for server in servers])
    threading.Event().wait()


class CorpusWeb:
    """The web in a child process of its own (so its CPU is its own); a context manager."""

    def __init__(self, plan: WebPlan, corpus: list[CorpusPage], bodies: Bodies | None = None) -> None:
        ctx = mp.get_context("fork")  # the child shares the rendered pages instead of copying them
        self.stats = ctx.Array("d", len(STATS))
        parent, child = ctx.Pipe()
        self.process = ctx.Process(
            target=serve, args=(plan, corpus, self.stats, bodies or {}, child), daemon=True
        )
        self.process.start()
        self.bases: list[str] = parent.recv()

    @property
    def pid(self) -> int:
        return int(self.process.pid or 0)

    def feed_urls(self) -> list[str]:
        return [f"{base}/feed.xml" for base in self.bases]

    def page_url(self, item: Item) -> str:
        return f"{self.bases[item.source]}/a/{item.n}.html"

    def snapshot(self) -> dict[str, float]:
        with self.stats.get_lock():
            return dict(zip(STATS, list(self.stats), strict=True))

    def reset(self) -> None:
        with self.stats.get_lock():
            for i in range(len(STATS)):
                self.stats[i] = 0.0

    def close(self) -> None:
        self.process.terminate()
        self.process.join(10)

    def __enter__(self) -> CorpusWeb:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_feeds_file(path: Path, web: CorpusWeb, interval: int | None = None) -> Path:
    """A newswire feeds file (TOML) with one feed per source."""
    lines = []
    for i, url in enumerate(web.feed_urls()):
        lines += ["[[feed]]", f'url = "{url}"', f'name = "Bench source {i}"']
        lines += [f"interval = {interval}"] if interval else []
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
