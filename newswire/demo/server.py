"""A static news-site server on loopback, for the demo and for tests.

Serves a directory tree over HTTP in a background thread, on an ephemeral port by
default. Text files are templates: the literal ``{{BASE}}`` becomes the server's
base URL, so feeds can link to the server's own pages whatever port it got.
Answers conditional GETs (strong ``ETag`` over the served bytes, ``Last-Modified``
from the file's mtime), logs every request for tests to assert on, and lets a test
override any path with a canned status, body and headers (410, 429 + Retry-After,
301 + Location, a slow answer, ...).

Run by hand: ``python -m newswire.demo.server ROOT [--port N]``.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import posixpath
import signal
import socket
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import NamedTuple, cast
from urllib.parse import unquote, urlsplit

log = logging.getLogger(__name__)

PLACEHOLDER = b"{{BASE}}"
TEMPLATE_SUFFIXES = frozenset({".xml", ".rss", ".atom", ".json", ".html", ".htm", ".opml", ".toml"})
CONTENT_TYPES = {
    ".rss": "application/rss+xml",
    ".atom": "application/atom+xml",
    ".xml": "application/xml",
    ".json": "application/json",
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".opml": "text/x-opml; charset=utf-8",
    ".toml": "application/toml",
    ".md": "text/markdown; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
}
DEFAULT_CONTENT_TYPE = "application/octet-stream"
SNIFF_BYTES = 1024
BODILESS_STATUSES = frozenset({HTTPStatus.NO_CONTENT, HTTPStatus.NOT_MODIFIED})


class Headers(Mapping[str, str]):
    """Request headers: a read-only mapping with case-insensitive keys, as sent."""

    def __init__(self, items: Iterable[tuple[str, str]]) -> None:
        self._values: dict[str, str] = {}
        self._names: dict[str, str] = {}
        for name, value in items:
            key = name.lower()
            previous = self._values.get(key)
            self._values[key] = value if previous is None else f"{previous}, {value}"
            self._names.setdefault(key, name)

    def __getitem__(self, name: str) -> str:
        return self._values[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names.values())

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Headers({dict(self.items())!r})"


class RequestRecord(NamedTuple):
    """One request as the server saw it: ``path`` is the raw target with its query string,
    ``headers`` the request headers (case-insensitive), ``status`` what was answered."""

    method: str
    path: str
    headers: Headers
    status: int


@dataclass(frozen=True, slots=True)
class Route:
    """A canned answer for one path, set by `SiteServer.set_route`."""

    status: int
    body: bytes | None
    headers: tuple[tuple[str, str], ...]
    delay: float


@dataclass(frozen=True, slots=True)
class Reply:
    """What the handler sends: status, headers, body (omitted on HEAD and 304)."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes = b""


class SiteServer:
    """Serves a directory tree over HTTP on 127.0.0.1 with an ephemeral port, in a background
    thread. ``requests`` logs every request (thread-safe appends), oldest first."""

    def __init__(self, root: Path, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise NotADirectoryError(f"site root is not a directory: {self.root}")
        self.host = host
        self.port = port
        self.requests: list[RequestRecord] = []
        self._lock = threading.Lock()
        self._routes: dict[str, Route] = {}
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> SiteServer:
        if self._httpd is not None:
            return self
        self._httpd = _HTTPServer((self.host, self.port), _Handler, site=self)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"site-server-{self.port}",
            daemon=True,
        )
        self._thread.start()
        log.debug("site server started", extra={"root": str(self.root), "url": self.base_url})
        return self

    def stop(self) -> None:
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._httpd = self._thread = None

    def __enter__(self) -> SiteServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("SiteServer is not running; call start() first")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def url(self, path: str) -> str:
        """The absolute URL of a path on this server: ``url("/news/rss.xml")``."""
        return self.base_url + "/" + path.lstrip("/")

    # -- overrides and the request log ---------------------------------------------

    def set_route(
        self,
        path: str,
        *,
        status: int = 200,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
    ) -> None:
        """Override one path: make a feed answer 410, 429 with Retry-After, 301 to another
        path, or a custom body.

        ``path`` matches the request target with its query string first, then without
        it. A 200 route without ``body`` serves the file as usual with ``headers``
        added (say ``Cache-Control``); any other route without ``body`` answers
        empty. ``{{BASE}}`` in the body and header values becomes the base URL.
        ``delay`` (seconds) holds the answer back, for timeout tests.
        """
        route = Route(status, body, tuple((headers or {}).items()), delay)
        with self._lock:
            self._routes[path] = route

    def clear_routes(self) -> None:
        with self._lock:
            self._routes.clear()

    def clear_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    def requests_for(self, path: str) -> list[RequestRecord]:
        """The logged requests whose target, without its query string, is ``path``."""
        with self._lock:
            return [r for r in self.requests if urlsplit(r.path).path == path]

    def _record(self, record: RequestRecord) -> None:
        with self._lock:
            self.requests.append(record)

    def _route_for(self, target: str) -> Route | None:
        with self._lock:
            return self._routes.get(target) or self._routes.get(urlsplit(target).path)

    # -- answering -----------------------------------------------------------------

    def answer(self, target: str, request_headers: Mapping[str, str]) -> Reply:
        """The reply to a GET of ``target`` (HEAD sends the same, without the body)."""
        route = self._route_for(target)
        if route is not None and route.delay > 0:
            time.sleep(route.delay)
        if route is not None and (route.body is not None or route.status != 200):
            return self._route_reply(target, route)
        reply = self._file_reply(target, request_headers)
        if route is not None and reply.status in (200, 304):
            extra = tuple((k, self._fill(v)) for k, v in route.headers)
            names = {k.lower() for k, _ in extra}
            kept = tuple((k, v) for k, v in reply.headers if k.lower() not in names)
            reply = Reply(reply.status, kept + extra, reply.body)
        return reply

    def _route_reply(self, target: str, route: Route) -> Reply:
        body = (route.body or b"").replace(PLACEHOLDER, self.base_url.encode())
        headers = [(k, self._fill(v)) for k, v in route.headers]
        if not any(k.lower() == "content-type" for k, _ in headers):
            path = urlsplit(target).path
            headers.append(("Content-Type", content_type_for(path, body)))
        return Reply(route.status, tuple(headers), body)

    def _file_reply(self, target: str, request_headers: Mapping[str, str]) -> Reply:
        try:
            path = resolve_path(self.root, urlsplit(target).path)
        except PermissionError:
            return error_reply(HTTPStatus.FORBIDDEN)
        if path is None:
            return error_reply(HTTPStatus.NOT_FOUND)
        body = path.read_bytes()
        if path.suffix.lower() in TEMPLATE_SUFFIXES:
            body = body.replace(PLACEHOLDER, self.base_url.encode())
        etag = etag_for(body)
        mtime = int(path.stat().st_mtime)
        headers = (
            ("ETag", etag),
            ("Last-Modified", formatdate(mtime, usegmt=True)),
            ("Content-Type", content_type_for(path.name, body)),
        )
        if is_not_modified(request_headers, etag, mtime):
            return Reply(HTTPStatus.NOT_MODIFIED, headers)
        return Reply(HTTPStatus.OK, headers, body)

    def _fill(self, value: str) -> str:
        return value.replace(PLACEHOLDER.decode(), self.base_url)


# -- pure decisions ------------------------------------------------------------------


def resolve_path(root: Path, url_path: str) -> Path | None:
    """The file under ``root`` that ``url_path`` names, or None if there is none.

    Raises PermissionError for ``..`` segments, NUL bytes, or anything resolving
    outside ``root`` (a symlink, say). ``/`` and directories map to ``index.html``.
    """
    decoded = unquote(url_path)
    segments = decoded.replace("\\", "/").split("/")
    if "\x00" in decoded or ".." in segments:
        raise PermissionError(url_path)
    relative = posixpath.normpath("/" + "/".join(s for s in segments if s)).lstrip("/")
    candidate = (root / relative).resolve() if relative else root
    if not candidate.is_relative_to(root):
        raise PermissionError(url_path)
    if candidate.is_dir():
        candidate = candidate / "index.html"
    return candidate if candidate.is_file() else None


def content_type_for(name: str, body: bytes) -> str:
    """Content-Type by extension; ``.xml`` and ``.json`` are sniffed for feed formats."""
    suffix = Path(name).suffix.lower()
    head = body[:SNIFF_BYTES]
    if suffix == ".xml":
        if b"<rss" in head or b"<rdf:RDF" in head:
            return "application/rss+xml"
        if b"<feed" in head:
            return "application/atom+xml"
    if suffix == ".json" and b"jsonfeed.org/version" in head:
        return "application/feed+json"
    return CONTENT_TYPES.get(suffix, DEFAULT_CONTENT_TYPE)


def etag_for(body: bytes) -> str:
    """A strong validator: a quoted hash of exactly the bytes served."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def is_not_modified(request_headers: Mapping[str, str], etag: str, mtime: int) -> bool:
    """RFC 9110 §13.2.2: If-None-Match decides when present, else If-Modified-Since."""
    if_none_match = request_headers.get("If-None-Match")
    if if_none_match is not None:
        tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
        return "*" in tags or etag in tags
    if_modified_since = request_headers.get("If-Modified-Since")
    if if_modified_since is None:
        return False
    try:
        since = parsedate_to_datetime(if_modified_since).timestamp()
    except (TypeError, ValueError):
        return False
    return mtime <= since


def error_reply(status: HTTPStatus) -> Reply:
    body = f"{status.value} {status.phrase}\n".encode()
    return Reply(status, (("Content-Type", "text/plain; charset=utf-8"),), body)


# -- HTTP plumbing ---------------------------------------------------------------------


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        *,
        site: SiteServer,
    ) -> None:
        self.site = site
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)

    def handle_error(self, request: object, client_address: object) -> None:
        # A client hanging up mid-answer is normal for fetch tests; keep stderr quiet.
        # socketserver calls this from inside its except block, so exc_info is set.
        log.debug("site server request failed", exc_info=True)  # noqa: LOG014


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "newswire-demo/1"
    sys_version = ""

    def do_GET(self) -> None:
        self._send(self._site().answer(self.path, self._headers()), with_body=True)

    def do_HEAD(self) -> None:
        self._send(self._site().answer(self.path, self._headers()), with_body=False)

    def do_POST(self) -> None:
        self._not_allowed()

    def do_PUT(self) -> None:
        self._not_allowed()

    def do_DELETE(self) -> None:
        self._not_allowed()

    def do_PATCH(self) -> None:
        self._not_allowed()

    def log_message(self, format: str, *args: object) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("site server: %s", format % args)

    def _not_allowed(self) -> None:
        reply = error_reply(HTTPStatus.METHOD_NOT_ALLOWED)
        headers = (*reply.headers, ("Allow", "GET, HEAD"))
        self._send(Reply(reply.status, headers, reply.body), with_body=True)

    def _site(self) -> SiteServer:
        return cast(_HTTPServer, self.server).site

    def _headers(self) -> Headers:
        return Headers([(k, str(v)) for k, v in self.headers.items()])

    def _send(self, reply: Reply, *, with_body: bool) -> None:
        # Log before answering, so a client that has the answer also finds the record.
        record = RequestRecord(self.command, self.path, self._headers(), int(reply.status))
        self._site()._record(record)
        self.close_connection = True
        self.send_response(reply.status)
        for name, value in reply.headers:
            self.send_header(name, value)
        has_body = reply.status not in BODILESS_STATUSES and reply.status >= 200
        if has_body:
            self.send_header("Content-Length", str(len(reply.body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if with_body and has_body:
            self.wfile.write(reply.body)


# -- CLI ---------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m newswire.demo.server",
        description="Serve a news-site directory on loopback ({{BASE}} filled in).",
    )
    parser.add_argument("root", type=Path, help="site directory, e.g. newswire/demo/site")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = an ephemeral port")
    args = parser.parse_args(argv)
    stopping = threading.Event()  # Ctrl-C or SIGTERM: set by the handler, not raised mid-statement
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    with SiteServer(args.root, host=args.host, port=args.port) as server:
        print(server.base_url, flush=True)
        while not stopping.wait(1.0):
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
