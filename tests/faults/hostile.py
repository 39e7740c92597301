"""A hostile feed server on loopback, and a tripwire on an address the fetcher must never reach.

`HostileServer` answers each path with one kind of abuse (garbage, truncated XML, entity bombs,
compression bombs, a 100 MB body, a 1 byte/s trickle, redirect loops, redirects to a private
address or another scheme) and also serves a few well-formed articles and a feed behind HTTP
basic auth. `Tripwire` listens on 127.0.0.2 and counts connections: with
NEWSWIRE_ALLOWED_NETWORKS=127.0.0.1/32 it must count none. Everything stays on loopback.
"""

from __future__ import annotations

import base64
import functools
import random
import socket
import threading
import time
import zlib
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import brotli

BOMB_BYTES = 256 * 1024 * 1024  # what the compression bombs inflate to
HUGE_BYTES = 100 * 1000 * 1000
AUTH = ("reader", "s3cr3t-pw")  # the credentials of the private feed: must never reach a log line
RSS = (
    b'<?xml version="1.0" encoding="utf-8"?>\n'
    b'<rss version="2.0"><channel><title>%s</title>\n%s</channel></rss>\n'
)
ITEM = (
    b"<item><title>%s</title><link>%s</link><guid isPermaLink='false'>%s</guid>"
    b"<description>%s</description></item>\n"
)
PAGE = """<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>
<body><article><h1>{title}</h1>{paragraphs}</article></body></html>"""
WORDS = ("harbour", "council", "ferry", "budget", "vote", "river", "bridge", "school", "winter", "market")


class Tripwire:
    """Counts every TCP connection made to 127.0.0.2 on its port."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.2", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.2:{self.sock.getsockname()[1]}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@functools.cache
def gzip_bomb() -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = b"\0" * (1 << 20)
    return b"".join(packer.compress(zeros) for _ in range(BOMB_BYTES >> 20)) + packer.flush()


@functools.cache
def brotli_bomb() -> bytes:
    packer = brotli.Compressor(quality=5)
    zeros = b"\0" * (1 << 20)
    return b"".join(packer.process(zeros) for _ in range(BOMB_BYTES >> 20)) + packer.finish()


def billion_laughs() -> bytes:
    levels = b"".join(
        b'<!ENTITY lol%d "%s">\n' % (i, (b"&lol%d;" % (i - 1)) * 10) for i in range(1, 10)
    ).replace(b"&lol0;", b"&lol;")
    doctype = b'<!DOCTYPE rss [\n<!ENTITY lol "lol">\n' + levels + b"]>\n"
    return b'<?xml version="1.0"?>\n' + doctype + RSS.split(b"\n", 1)[1] % (b"&lol9;", b"")


def quadratic_blowup() -> bytes:
    doctype = b'<!DOCTYPE rss [\n<!ENTITY a "' + b"A" * 5000 + b'">\n]>\n'
    item = ITEM % (b"&a;" * 300_000, b"http://x.invalid/", b"q", b"")
    return b'<?xml version="1.0"?>\n' + doctype + RSS.split(b"\n", 1)[1] % (b"blowup", item)


def xxe(target: str) -> bytes:
    doctype = b'<!DOCTYPE rss [\n<!ENTITY x SYSTEM "' + target.encode() + b'/xxe.dtd">\n]>\n'
    return b'<?xml version="1.0"?>\n' + doctype + RSS.split(b"\n", 1)[1] % (b"&x;", b"")


def page(title: str, seed: int) -> bytes:
    rng = random.Random(seed)
    paragraphs = "".join(
        "<p>" + " ".join(rng.choice(WORDS) + str(rng.randint(0, 999)) for _ in range(60)) + ".</p>"
        for _ in range(5)
    )
    return PAGE.format(title=title, paragraphs=paragraphs).encode()


class HostileServer:
    """One path per kind of abuse (see `routes`), on 127.0.0.1, an ephemeral port."""

    def __init__(self, tripwire: Tripwire) -> None:
        self.tripwire = tripwire
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.hostile = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05})
        self._thread.daemon = True
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def feed_of(self, name: str, paths: list[str]) -> bytes:
        items = b"".join(
            ITEM % (f"{name} {p}".encode(), (self.base_url + p).encode(), p.encode(), b"summary")
            for p in paths
        )
        return RSS % (name.encode(), items)

    def routes(self) -> dict[str, Callable[[_Handler], None]]:
        truncated = self.feed_of("Truncated", ["/pages/t1.html", "/pages/t2.html", "/pages/t3.html"])
        return {
            "/garbage.xml": lambda h: h.reply(random.Random(1).randbytes(64 * 1024)),
            "/truncated.xml": lambda h: h.reply(truncated[: truncated.index(b"/pages/t3.html")]),
            "/laughs.xml": lambda h: h.reply(billion_laughs()),
            "/quadratic.xml": lambda h: h.reply(quadratic_blowup()),
            "/xxe.xml": lambda h: h.reply(xxe(self.tripwire.base_url)),
            "/gzip-bomb.xml": lambda h: h.reply(gzip_bomb(), encoding="gzip"),
            "/br-bomb.xml": lambda h: h.reply(brotli_bomb(), encoding="br"),
            "/huge.xml": lambda h: h.stream(HUGE_BYTES, declare=False),
            "/huge-declared.xml": lambda h: h.stream(HUGE_BYTES, declare=True),
            "/trickle.xml": lambda h: h.trickle(body=True),
            "/slow-headers.xml": lambda h: h.trickle(body=False),
            "/loop.xml": lambda h: h.redirect("/loop-2.xml"),
            "/loop-2.xml": lambda h: h.redirect("/loop.xml"),
            "/to-private.xml": lambda h: h.redirect(self.tripwire.base_url + "/feed.xml"),
            "/to-file.xml": lambda h: h.redirect("file:///etc/passwd"),
            "/private.xml": lambda h: h.authorized(self.feed_of("Private", ["/pages/p1.html"])),
        }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        server: Any = self.server
        route = server.hostile.routes().get(self.path.split("?")[0])
        if route is not None:
            route(self)
        elif self.path.startswith("/pages/"):
            self.reply(page(self.path, hash(self.path) & 0xFFFF), content_type="text/html; charset=utf-8")
        else:
            self.reply(b"not here", status=404, content_type="text/plain")

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def head(self, status: int, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()

    def reply(
        self, body: bytes, *, status: int = 200, content_type: str = "application/rss+xml", encoding: str = ""
    ) -> None:
        headers = {"Content-Type": content_type, "Content-Length": str(len(body)), "Connection": "close"}
        if encoding:
            headers["Content-Encoding"] = encoding
        self.head(status, headers)
        self.write(body)

    def write(self, data: bytes) -> bool:
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except OSError:  # the client gave up: that is the point
            return False
        return True

    def stream(self, size: int, *, declare: bool) -> None:
        headers = {"Content-Type": "application/rss+xml", "Connection": "close"}
        if declare:
            headers["Content-Length"] = str(size)
        self.head(200, headers)
        self.close_connection = True
        chunk = b"<!-- padding -->" * 4096
        sent = 0
        while sent < size and self.write(chunk):
            sent += len(chunk)

    def trickle(self, *, body: bool) -> None:
        """One byte a second, for at most a minute: in the body, or in the headers themselves."""
        self.close_connection = True
        if body:
            self.head(200, {"Content-Type": "application/rss+xml", "Content-Length": "10000"})
        else:
            self.write(b"HTTP/1.1 200 OK\r\n")
        for _ in range(60):
            if not self.write(b"<" if body else b"X"):
                return
            time.sleep(1.0)

    def redirect(self, location: str) -> None:
        self.head(302, {"Location": location, "Content-Length": "0", "Connection": "close"})

    def authorized(self, body: bytes) -> None:
        expected = "Basic " + base64.b64encode(":".join(AUTH).encode()).decode()
        if self.headers.get("Authorization") != expected:
            self.head(401, {"WWW-Authenticate": 'Basic realm="feeds"', "Content-Length": "0"})
            return
        self.reply(body)
