"""ingest.fetch.http against real HTTP servers on loopback (ephemeral ports only).

Addresses outside loopback are never contacted: `connects` wraps
`socket.create_connection` (the call httpcore makes) to record every connect and
to fail the test instead of sending traffic anywhere but loopback.
"""

from __future__ import annotations

import gzip
import ipaddress
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import brotli
import pytest

from ingest.fetch.http import (
    Fetcher,
    FetchError,
    FetchOptions,
    FetchResult,
    is_blocked_address,
    parse_allowed_networks,
)

LOOPBACK = parse_allowed_networks("127.0.0.0/8")
ZEROS_10MB = b"\0" * (10 * 1024 * 1024)
GZIP_BOMB = gzip.compress(ZEROS_10MB, compresslevel=9)
BROTLI_BOMB = brotli.compress(ZEROS_10MB, quality=5)

Route = Callable[["Handler"], None]

# Self-signed for DNS:localhost only, valid 2020-2120; EC P-256, made for this test.
TEST_KEY = """\
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgWUWcnno+Wjwwqace
ZVZ3yVu9HTPcNJrLhaMCN+bNnPWhRANCAARCAC4AFZHgS/LgAAQmHPbna/Hj+oDk
Y2QIAZdhOxr6chK/1VdMGg8dPlXStY+wOMMTeFzUrRafhAYPS1wWLfG/
-----END PRIVATE KEY-----
"""
TEST_CERT = """\
-----BEGIN CERTIFICATE-----
MIIBqTCCAU+gAwIBAgIBATAKBggqhkjOPQQDAjAUMRIwEAYDVQQDDAlsb2NhbGhv
c3QwIBcNMjAwMTAxMDAwMDAwWhgPMjEyMDAxMDEwMDAwMDBaMBQxEjAQBgNVBAMM
CWxvY2FsaG9zdDBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABEIALgAVkeBL8uAA
BCYc9udr8eP6gORjZAgBl2E7GvpyEr/VV0waDx0+VdK1j7A4wxN4XNStFp+EBg9L
XBYt8b+jgY8wgYwwFAYDVR0RBA0wC4IJbG9jYWxob3N0MA8GA1UdEwEB/wQFMAMB
Af8wHQYDVR0OBBYEFP3/qTk9nW2wnpjddnE7hkix0Vh9MB8GA1UdIwQYMBaAFP3/
qTk9nW2wnpjddnE7hkix0Vh9MA4GA1UdDwEB/wQEAwIChDATBgNVHSUEDDAKBggr
BgEFBQcDATAKBggqhkjOPQQDAgNIADBFAiEAorzfgLQU23rf4/4k/t3Hxv2bqfoa
gM+wB1VSZ8bRXu4CICdF7Rs8u9RwT+lNI94u63B+pkZwoMbnijshjwhwE2HF
-----END CERTIFICATE-----
"""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Server

    def do_GET(self) -> None:
        self.server.paths.append(self.path)
        route = self.server.routes.get(self.path)
        if route is None:
            reply(self, 404, b"not here")
        else:
            route(self)

    def log_message(self, *args: Any) -> None:
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str) -> None:
        super().__init__((host, 0), Handler)
        self.host = host
        self.routes: dict[str, Route] = {}
        self.paths: list[str] = []
        self.connections = 0

    def verify_request(self, request: Any, client_address: Any) -> bool:
        self.connections += 1  # one per accepted TCP connection
        return True

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.server_address[1]}{path}"


def reply(handler: Handler, status: int, body: bytes = b"", **headers: str) -> None:
    handler.send_response(status)
    for name, value in headers.items():
        handler.send_header(name.replace("_", "-"), value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def redirect(status: int, location: str) -> Route:
    return lambda handler: reply(handler, status, Location=location)


def serve(host: str, tls: ssl.SSLContext | None = None) -> Iterator[Server]:
    server = Server(host)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def server() -> Iterator[Server]:
    yield from serve("127.0.0.1")


@pytest.fixture
def other_server() -> Iterator[Server]:
    yield from serve("127.0.0.2")


@pytest.fixture
def tls_server(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Server, list[str]]]:
    """HTTPS on 127.0.0.1 with a certificate for "localhost" that the client trusts."""
    (tmp_path / "cert.pem").write_text(TEST_CERT)
    (tmp_path / "key.pem").write_text(TEST_KEY)
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "cert.pem"))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    sni: list[str] = []
    context.sni_callback = lambda _sock, name, _ctx: sni.append(name)
    for server in serve("127.0.0.1", context):
        yield server, sni


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    real = socket.create_connection

    def spy(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        seen.append(address[0])
        if not ipaddress.ip_address(address[0]).is_loopback:
            raise AssertionError(f"the guard let a connection to {address[0]} through")
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", spy)
    return seen


@pytest.fixture
def fetcher() -> Iterator[Fetcher]:
    with Fetcher(FetchOptions(allowed_networks=LOOPBACK)) as fetcher:
        yield fetcher


def fetch_error(fetcher: Fetcher, url: str, **kwargs: Any) -> FetchError:
    with pytest.raises(FetchError) as info:
        fetcher.get(url, **kwargs)
    return info.value


# --- the private-address guard ------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_loopback_without_allowance_never_receives_a_connection(
    server: Server, connects: list[str], host: str
) -> None:
    server.routes["/feed.xml"] = lambda h: reply(h, 200, b"<rss/>")
    url = server.url("/feed.xml").replace("127.0.0.1", host)
    with Fetcher(FetchOptions()) as fetcher:
        error = fetch_error(fetcher, url)
    assert error.kind == "blocked_address"
    assert error.url == url
    assert str(error) == f"blocked_address: {url} resolves to 127.0.0.1 (loopback)"
    assert server.connections == 0
    assert connects == []


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://10.0.0.5/feed.xml", "resolves to 10.0.0.5 (private network)"),
        ("http://169.254.169.254/latest/meta-data/", "(link-local)"),
        ("http://100.64.0.1/", "(shared address space (CGNAT))"),
        ("http://0.0.0.0:8080/", "(unspecified address)"),
        ("http://[::1]/", "(loopback)"),
        ("http://[::ffff:10.0.0.5]/", "(private network)"),
        ("http://[fd00::1]/", "(private network)"),
        ("https://[fe80::1]/", "(link-local)"),
        ("http://224.0.0.1/", "(multicast)"),
    ],
)
def test_blocked_literals_are_refused_before_connecting(connects: list[str], url: str, reason: str) -> None:
    with Fetcher(FetchOptions(allowed_networks=LOOPBACK)) as fetcher:
        error = fetch_error(fetcher, url)
    assert error.kind == "blocked_address"
    assert str(error).startswith(f"blocked_address: {url} ")
    assert str(error).endswith(reason)
    assert connects == []


def test_allowed_loopback_is_reached_and_the_connection_reused(server: Server, fetcher: Fetcher) -> None:
    server.routes["/feed.xml"] = lambda h: reply(h, 200, b"<rss/>", Content_Type="text/xml")
    results = [fetcher.get(server.url("/feed.xml")) for _ in range(3)]
    assert [r.status for r in results] == [200, 200, 200]
    assert results[0].body == b"<rss/>"
    assert results[0].headers["content-type"] == "text/xml"
    assert results[0].final_url == results[0].url == server.url("/feed.xml")
    assert server.connections == 1


def test_allowed_network_exempts_only_the_listed_addresses(server: Server) -> None:
    server.routes["/"] = lambda h: reply(h, 200, b"ok")
    with Fetcher(FetchOptions(allowed_networks=parse_allowed_networks("127.0.0.2/32"))) as f:
        assert fetch_error(f, server.url("/")).kind == "blocked_address"
    assert server.connections == 0


def test_redirect_to_a_blocked_address_is_refused_after_the_first_hop(
    server: Server, other_server: Server
) -> None:
    secret = other_server.url("/secret")
    other_server.routes["/secret"] = lambda h: reply(h, 200, b"credentials")
    server.routes["/start"] = redirect(302, secret)
    only_first = parse_allowed_networks("127.0.0.1/32")
    with Fetcher(FetchOptions(allowed_networks=only_first)) as fetcher:
        error = fetch_error(fetcher, server.url("/start"))
    assert error.kind == "blocked_address"
    assert error.url == server.url("/start")
    assert f"(redirected to {secret}) resolves to 127.0.0.2 (loopback)" in str(error)
    assert (server.connections, other_server.connections) == (1, 0)


def test_redirect_to_cloud_metadata_is_refused(server: Server, fetcher: Fetcher, connects: list[str]) -> None:
    server.routes["/r"] = redirect(301, "http://169.254.169.254/latest/meta-data/")
    assert fetch_error(fetcher, server.url("/r")).kind == "blocked_address"
    assert connects == ["127.0.0.1"]


# --- redirects ----------------------------------------------------------------------


def test_redirect_chain_is_followed_and_recorded(server: Server, fetcher: Fetcher) -> None:
    server.routes["/a"] = redirect(301, "/b")
    server.routes["/b"] = redirect(302, server.url("/c"))
    server.routes["/c"] = redirect(308, "d?x=1")
    server.routes["/d?x=1"] = lambda h: reply(h, 200, b"done")
    result = fetcher.get(server.url("/a"))
    assert (result.status, result.body) == (200, b"done")
    assert result.url == server.url("/a")
    assert result.final_url == server.url("/d?x=1")
    assert result.redirects == (
        (301, server.url("/b")),
        (302, server.url("/c")),
        (308, server.url("/d?x=1")),
    )


def test_redirect_loop_is_too_many_redirects(server: Server, fetcher: Fetcher) -> None:
    server.routes["/ping"] = redirect(302, "/pong")
    server.routes["/pong"] = redirect(302, "/ping")
    error = fetch_error(fetcher, server.url("/ping"))
    assert error.kind == "too_many_redirects"
    assert "redirect loop longer than max_redirects=5" in str(error)
    assert len(server.paths) == 6


def test_long_redirect_chain_is_too_many_redirects(server: Server) -> None:
    for hop in range(4):
        server.routes[f"/{hop}"] = redirect(307, f"/{hop + 1}")
    server.routes["/4"] = lambda h: reply(h, 200, b"end")
    with Fetcher(FetchOptions(allowed_networks=LOOPBACK, max_redirects=4)) as fetcher:
        assert len(fetcher.get(server.url("/0")).redirects) == 4
    with Fetcher(FetchOptions(allowed_networks=LOOPBACK, max_redirects=3)) as fetcher:
        assert fetch_error(fetcher, server.url("/0")).kind == "too_many_redirects"


def test_cookie_set_on_a_redirect_to_itself_is_sent_back(server: Server, fetcher: Fetcher) -> None:
    def wall(handler: Handler) -> None:
        if "consent=yes" in (handler.headers.get("Cookie") or ""):
            reply(handler, 200, b"article")
        else:
            reply(handler, 302, Location="/wall", Set_Cookie="consent=yes; Path=/")

    server.routes["/wall"] = wall
    assert fetcher.get(server.url("/wall")).body == b"article"


@pytest.mark.parametrize("location", ["file:///etc/passwd", "ftp://example.org/feed.xml"])
def test_redirect_to_another_scheme_is_bad_scheme(server: Server, fetcher: Fetcher, location: str) -> None:
    server.routes["/r"] = redirect(302, location)
    error = fetch_error(fetcher, server.url("/r"))
    assert error.kind == "bad_scheme"
    assert f"(redirected to {location.split(':', maxsplit=1)[0]}:" in str(error)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.org/x", "example.org/feed"])
def test_bad_scheme(fetcher: Fetcher, connects: list[str], url: str) -> None:
    assert fetch_error(fetcher, url).kind == "bad_scheme"
    assert connects == []


# --- body limits and encodings ------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda data: zlib.compress(data, wbits=-zlib.MAX_WBITS)),
        ("br", brotli.compress),
        ("gzip, br", lambda data: brotli.compress(gzip.compress(data))),
    ],
)
def test_compressed_bodies_are_decoded(
    server: Server, fetcher: Fetcher, encoding: str, compress: Callable[[bytes], bytes]
) -> None:
    page = b"<html><body>" + b"news " * 50_000 + b"</body></html>"
    server.routes["/"] = lambda h: reply(h, 200, compress(page), Content_Encoding=encoding)
    assert fetcher.get(server.url("/")).body == page


@pytest.mark.parametrize(("encoding", "bomb"), [("gzip", GZIP_BOMB), ("br", BROTLI_BOMB)])
def test_compression_bomb_is_too_large(server: Server, fetcher: Fetcher, encoding: str, bomb: bytes) -> None:
    server.routes["/bomb"] = lambda h: reply(h, 200, bomb, Content_Encoding=encoding)
    error = fetch_error(fetcher, server.url("/bomb"))
    assert error.kind == "too_large"
    assert "max_bytes=5242880 after decompression" in str(error)


def stream_forever(handler: Handler) -> None:
    """100 MB with no Content-Length: only counting can stop it."""
    handler.send_response(200)
    handler.send_header("Connection", "close")
    handler.end_headers()
    handler.close_connection = True
    chunk = b"x" * (1024 * 1024)
    try:
        for _ in range(100):
            handler.wfile.write(chunk)
    except OSError:
        pass  # the client hung up, as it should


def test_big_plain_body_is_too_large(server: Server, fetcher: Fetcher) -> None:
    server.routes["/big"] = stream_forever
    assert fetch_error(fetcher, server.url("/big")).kind == "too_large"


def test_declared_big_body_is_refused_before_reading(server: Server, fetcher: Fetcher) -> None:
    def declare(handler: Handler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(100 * 1024 * 1024))
        handler.end_headers()

    server.routes["/big"] = declare
    error = fetch_error(fetcher, server.url("/big"))
    assert (error.kind, "declares Content-Length" in str(error)) == ("too_large", True)


def trickle(handler: Handler, data: bytes) -> None:
    try:
        for i in range(len(data)):
            handler.wfile.write(data[i : i + 1])
            time.sleep(0.1)
    except OSError:
        pass


def trickle_body(handler: Handler, length: int) -> None:
    handler.send_response(200)
    handler.send_header("Content-Length", str(length))
    handler.end_headers()
    trickle(handler, b"x" * length)


@pytest.mark.parametrize(
    "route",
    [
        lambda h: trickle(h, b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 100),
        lambda h: trickle_body(h, 1000),
    ],
    ids=["headers", "body"],
)
def test_trickling_server_is_stopped_at_total_timeout(server: Server, route: Route) -> None:
    server.routes["/slow"] = route
    options = FetchOptions(allowed_networks=LOOPBACK, total_timeout=1.5, read_timeout=10)
    started = time.monotonic()
    with Fetcher(options) as fetcher:
        error = fetch_error(fetcher, server.url("/slow"))
    assert error.kind == "timeout"
    assert "exceeded total_timeout=1.5s" in str(error)
    assert 1.4 < time.monotonic() - started < 2.5


# --- statuses, headers, content types ----------------------------------------------


def test_not_modified_is_passed_through(server: Server, fetcher: Fetcher) -> None:
    def conditional(handler: Handler) -> None:
        if handler.headers.get("If-None-Match") == '"v1"':
            handler.send_response(304)
            handler.send_header("ETag", '"v1"')
            handler.end_headers()
        else:
            reply(handler, 200, b"<rss/>", ETag='"v1"')

    server.routes["/feed"] = conditional
    result = fetcher.get(server.url("/feed"), headers={"If-None-Match": '"v1"'})
    assert (result.status, result.body, result.headers["etag"]) == (304, b"", '"v1"')


@pytest.mark.parametrize("status", [404, 410, 429, 500])
def test_error_statuses_are_returned(server: Server, fetcher: Fetcher, status: int) -> None:
    server.routes["/x"] = lambda h: reply(h, status, b"nope", Retry_After="120")
    result = fetcher.get(server.url("/x"))
    assert (result.status, result.body, result.headers["retry-after"]) == (status, b"nope", "120")


def test_request_headers(server: Server, fetcher: Fetcher) -> None:
    seen: dict[str, str] = {}

    def echo(handler: Handler) -> None:
        seen.update({name.lower(): value for name, value in handler.headers.items()})
        reply(handler, 200)

    server.routes["/h"] = echo
    fetcher.get(server.url("/h"), accept="application/rss+xml", headers={"X-Test": "1"})
    assert seen["user-agent"] == FetchOptions().user_agent
    assert seen["accept-encoding"] == "gzip, deflate, br"
    assert (seen["accept"], seen["x-test"]) == ("application/rss+xml", "1")


HTML = ("text/html", "application/xhtml+xml")


@pytest.mark.parametrize("content_type", ["image/png", "application/pdf", "video/mp4"])
def test_binary_content_type_is_refused(server: Server, fetcher: Fetcher, content_type: str) -> None:
    server.routes["/a"] = lambda h: reply(h, 200, b"\x89PNG", Content_Type=content_type)
    error = fetch_error(fetcher, server.url("/a"), allowed_types=HTML)
    assert error.kind == "bad_content_type"
    assert content_type in str(error)


@pytest.mark.parametrize(
    "content_type", ["text/html; charset=utf-8", "text/plain", "application/octet-stream", None]
)
def test_plausible_content_types_are_accepted(
    server: Server, fetcher: Fetcher, content_type: str | None
) -> None:
    headers = {} if content_type is None else {"Content_Type": content_type}
    server.routes["/a"] = lambda h: reply(h, 200, b"<p>hi</p>", **headers)
    assert fetcher.get(server.url("/a"), allowed_types=HTML).body == b"<p>hi</p>"


def test_content_type_is_not_judged_on_errors(server: Server, fetcher: Fetcher) -> None:
    server.routes["/a"] = lambda h: reply(h, 404, b"", Content_Type="image/png")
    assert fetcher.get(server.url("/a"), allowed_types=HTML).status == 404


# --- transport failures -------------------------------------------------------------


def test_tls_to_a_plain_http_server_is_a_tls_error(server: Server, fetcher: Fetcher) -> None:
    url = server.url("/").replace("http://", "https://")
    assert fetch_error(fetcher, url).kind == "tls"


def test_tls_verifies_the_hostname_while_connecting_to_the_checked_ip(
    tls_server: tuple[Server, list[str]], connects: list[str]
) -> None:
    server, sni = tls_server
    server.routes["/"] = lambda h: reply(h, 200, b"secure")
    port = server.server_address[1]
    with Fetcher(FetchOptions(allowed_networks=LOOPBACK)) as fetcher:
        assert fetcher.get(f"https://localhost:{port}/").body == b"secure"
        error = fetch_error(fetcher, f"https://127.0.0.1:{port}/")  # not in the certificate
    assert (error.kind, sni[0]) == ("tls", "localhost")
    assert connects == ["127.0.0.1", "127.0.0.1"]  # the resolved, checked address


def test_closed_port_is_a_connect_error(fetcher: Fetcher) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    assert fetch_error(fetcher, f"http://127.0.0.1:{port}/").kind == "connect"


def test_unresolvable_host_is_a_dns_error(fetcher: Fetcher, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_such_host(*args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
    error = fetch_error(fetcher, "http://news.invalid/feed.xml")
    assert error.kind == "dns"
    assert str(error).startswith("dns: http://news.invalid/feed.xml does not resolve")


# --- charset ------------------------------------------------------------------------


def test_charset_from_content_type_header(server: Server, fetcher: Fetcher) -> None:
    body = "<p>Café crème, naïve</p>".encode("latin-1")
    latin1 = "text/html; charset=ISO-8859-1"
    server.routes["/p"] = lambda h: reply(h, 200, body, Content_Type=latin1)
    assert fetcher.get(server.url("/p")).text() == "<p>Café crème, naïve</p>"
    # as browsers do, an ISO-8859-1 label means windows-1252 (curly quotes in 0x80-0x9F)
    assert result_of("“Café”".encode("cp1252"), latin1).text() == "“Café”"


def result_of(body: bytes, content_type: str | None = "text/html") -> FetchResult:
    headers = {} if content_type is None else {"content-type": content_type}
    return FetchResult("http://a/", "http://a/", 200, headers, body, 1.0, ())


def test_charset_from_meta() -> None:
    page = '<html><head><meta charset="windows-1251"></head><body>Привет, мир</body></html>'
    assert "Привет, мир" in result_of(page.encode("cp1251")).text()


def test_charset_from_http_equiv_and_xml_declaration() -> None:
    equiv = '<meta http-equiv="Content-Type" content="text/html; charset=koi8-r"><p>Новости'
    assert result_of(equiv.encode("koi8_r")).text().endswith("Новости")
    feed = '<?xml version="1.0" encoding="windows-1251"?><rss><title>Україна</title></rss>'
    assert "Україна" in result_of(feed.encode("cp1251"), "application/rss+xml").text()


def test_header_charset_wins_over_meta_and_bom_wins_over_all() -> None:
    page = '<meta charset="windows-1251"><p>Zoë'.encode()
    assert result_of(page, "text/html; charset=utf-8").text().endswith("Zoë")
    assert result_of(b"\xef\xbb\xbfZo\xc3\xab", "text/html; charset=cp1251").text() == "Zoë"


def test_charset_is_detected_without_any_declaration() -> None:
    text = "Переговоры о прекращении огня продолжатся в понедельник. " * 20
    assert result_of(text.encode("cp1251"), None).text() == text
    assert result_of(text.encode(), None).text() == text


def test_undecodable_bytes_never_raise() -> None:
    utf8 = "text/html; charset=utf-8"
    assert result_of(b"ok \xff\xfe\xfa", utf8).text() == "ok \ufffd\ufffd\ufffd"
    assert result_of(b"ok", "text/html; charset=no-such-codec").text() == "ok"
    assert result_of(b"", None).text() == ""


# --- pure guard decisions -----------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1", "127.8.9.10", "10.1.2.3", "172.16.0.1", "172.31.255.255",
        "192.168.1.1", "100.64.0.1", "100.127.255.254", "169.254.169.254", "0.0.0.0",
        "224.0.0.251", "239.255.255.250", "240.0.0.1", "255.255.255.255", "192.0.0.8",
        "198.18.0.1", "192.0.2.1",
        "::1", "::", "fc00::1", "fd12:3456::1", "fe80::1", "ff02::1",
        "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254",
        "2002:0a00:0001::1", "2002:7f00:0001::1", "64:ff9b::a00:1", "64:ff9b::7f00:1",
        "2001:0:4136:e378:8000:63bf:f5ff:fffe", "2001:db8::1",
    ],
)  # fmt: skip
def test_blocked_addresses(address: str) -> None:
    assert is_blocked_address(ipaddress.ip_address(address), ())


@pytest.mark.parametrize(
    "address",
    ["93.184.216.34", "8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8",
     "2002:0808:0808::1", "64:ff9b::808:808", "172.32.0.1", "100.128.0.1"],
)  # fmt: skip
def test_public_addresses(address: str) -> None:
    assert not is_blocked_address(ipaddress.ip_address(address), ())


def test_allowed_networks_exempt_exactly_what_they_list() -> None:
    allowed = parse_allowed_networks("127.0.0.0/24, ::1/128")
    ip = ipaddress.ip_address
    assert not is_blocked_address(ip("127.0.0.9"), allowed)
    assert not is_blocked_address(ip("::ffff:127.0.0.9"), allowed)
    assert not is_blocked_address(ip("::1"), allowed)
    assert is_blocked_address(ip("127.0.1.1"), allowed)
    assert is_blocked_address(ip("10.0.0.1"), allowed)
    assert is_blocked_address(ip("169.254.169.254"), allowed)


def test_parse_allowed_networks() -> None:
    assert parse_allowed_networks("") == ()
    assert parse_allowed_networks(" 127.0.0.0/24 , ::1/128 ,") == (
        ipaddress.ip_network("127.0.0.0/24"),
        ipaddress.ip_network("::1/128"),
    )
    assert parse_allowed_networks("10.0.0.7") == (ipaddress.ip_network("10.0.0.7/32"),)


@pytest.mark.parametrize("value", ["127.0.0.1/24", "10.0.0.0/33", "localhost", "127.0.0.0/8;"])
def test_parse_allowed_networks_rejects_bad_cidrs(value: str) -> None:
    with pytest.raises(ValueError, match=r"invalid allowed network .*expected a CIDR"):
        parse_allowed_networks(value)
