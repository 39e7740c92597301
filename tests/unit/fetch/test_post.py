"""ingest/fetch/post.py: webhook POSTs go through the address guard and follow no redirect."""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from ingest.fetch.post import FetchError, Poster, PostOptions

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)


class Handler(BaseHTTPRequestHandler):
    bodies: ClassVar[list[bytes]] = []

    def do_POST(self) -> None:
        Handler.bodies.append(self.rfile.read(int(self.headers["content-length"])))
        if self.path == "/moved":
            self.send_response(301)
            self.send_header("location", "/elsewhere")
        else:
            self.send_response(202)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    httpd.server_close()


def test_a_post_to_an_allowed_address(server: str) -> None:
    poster = Poster(PostOptions(allowed_networks=LOOPBACK))
    result = poster.post(f"{server}/hook", b'{"id":"a"}', {"content-type": "application/json"})
    assert (result.status, result.body) == (202, b"ok")
    assert Handler.bodies[-1] == b'{"id":"a"}'


def test_loopback_is_refused_unless_allowed(server: str) -> None:
    with pytest.raises(FetchError) as caught:
        Poster(PostOptions()).post(f"{server}/hook", b"{}", {})
    assert caught.value.kind == "blocked_address"


def test_redirects_are_returned_not_followed(server: str) -> None:
    result = Poster(PostOptions(allowed_networks=LOOPBACK)).post(f"{server}/moved", b"{}", {})
    assert result.status == 301


def test_a_refused_connection_and_a_bad_url_are_fetch_errors() -> None:
    poster = Poster(PostOptions(allowed_networks=LOOPBACK, total_timeout=3))
    with pytest.raises(FetchError) as refused:
        poster.post("http://127.0.0.1:9/hook", b"{}", {})
    assert refused.value.kind == "connect"
    with pytest.raises(FetchError) as bad:
        poster.post("ftp://127.0.0.1/hook", b"{}", {})
    assert bad.value.kind == "bad_scheme"
