"""The one module that speaks HTTP: GET a feed or an article page written by strangers.

Safety first: every connection (first request and every redirect hop) goes through
`netguard.GuardedBackend`, which refuses loopback/private/link-local/reserved
addresses after DNS resolution; redirects are followed here, one checked hop at a
time; the decompressed body is capped at `max_bytes`, decoded in bounded steps (a
gzip or brotli bomb never inflates past one 64 KiB step beyond the cap); and a
wall-clock deadline caps the whole request, headers and redirects included.
A body that is itself a gzip file (a sitemap `.xml.gz`) is inflated the same way with `unzip`.

A source's `FetchProfile` (feeds file) adds its headers, user agent and cookies to each of its
requests, and may send them through a proxy (http, https, socks5): one pooled client per proxy.
Through a proxy the proxy resolves the target, so the target host is resolved and checked here
first, on every hop; the proxy's own address is the operator's choice and is not guarded.

Only transport and safety problems raise `FetchError`; any HTTP status is returned.
"""

from __future__ import annotations

import itertools
import ssl
import time
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

import brotli
import httpx

from ingest import charset
from ingest.fetch.netguard import (
    Deadline,
    GuardedBackend,
    GuardError,
    IPNetwork,
    blocked_reason,
    build_guarded_transport,
    build_proxy_transport,
    is_blocked_address,
    parse_allowed_networks,
)
from ingest.models import FetchProfile, mask_secret_url

__all__ = [
    "FetchError",
    "FetchOptions",
    "FetchResult",
    "Fetcher",
    "blocked_reason",
    "is_blocked_address",
    "parse_allowed_networks",
]

_PIECE = 64 * 1024  # most bytes one decompression step may produce
_GZIP_MAGIC = b"\x1f\x8b"
_POST_REPLY_BYTES = 64 * 1024  # what is read of the answer to a POST (a WebSub hub's)
_NO_PROFILE = FetchProfile()
_AMBIGUOUS_TYPES = frozenset({"application/octet-stream", "binary/octet-stream", "application/unknown"})
_ERROR_KINDS: tuple[tuple[type[Exception] | tuple[type[Exception], ...], str, str], ...] = (
    (httpx.TimeoutException, "timeout", "timed out"),
    (httpx.NetworkError, "connect", "connection failed"),
    (httpx.UnsupportedProtocol, "bad_scheme", "unsupported URL"),
    ((zlib.error, brotli.error), "protocol", "corrupt compressed body"),
)


@dataclass(frozen=True, slots=True)
class FetchOptions:
    user_agent: str = "newswire/0.1 (+https://github.com/newswire/newswire)"
    connect_timeout: float = 5.0
    read_timeout: float = 10.0
    total_timeout: float = 20.0  # wall clock for the whole request: redirects, headers, body
    max_bytes: int = 5 * 1024 * 1024  # cap on the DECOMPRESSED body
    max_redirects: int = 5
    allowed_networks: tuple[IPNetwork, ...] = ()  # CIDRs exempt from the private-address guard


@dataclass(frozen=True, slots=True)
class FetchResult:
    url: str  # the URL asked for
    final_url: str  # after redirects
    status: int
    headers: dict[str, str]  # lower-cased names; repeated headers joined with ", "
    body: bytes  # decompressed; empty for 304
    elapsed_ms: float
    redirects: tuple[tuple[int, str], ...]  # (status, absolute location) per hop

    def text(self) -> str:
        """The body decoded (ingest/charset.py); undecodable bytes become U+FFFD; never raises."""
        return charset.decode(self.body, self.headers.get("content-type"))


class FetchError(Exception):
    """A transport or safety failure. `kind` is a stable short code (see module README)."""

    def __init__(self, kind: str, url: str, reason: str) -> None:
        super().__init__(f"{kind}: {url} {reason}")
        self.kind = kind
        self.url = url
        self.reason = reason


class Fetcher:
    """One pooled HTTP/1.1 client behind the address guard.

    Not thread-safe: use one instance from one thread at a time (one per worker
    thread); the per-request deadline lives on the instance."""

    def __init__(self, options: FetchOptions) -> None:
        self._options = options
        self._deadline = Deadline()
        self._backend = GuardedBackend(options.allowed_networks, self._deadline)
        self._client = self._new_client(build_guarded_transport(self._backend))
        self._proxied: dict[str, httpx.Client] = {}  # proxy URL -> its pooled client
        self._profile = _NO_PROFILE  # of the request under way

    @property
    def max_bytes(self) -> int:
        return self._options.max_bytes

    def _new_client(self, transport: httpx.HTTPTransport) -> httpx.Client:
        return httpx.Client(
            transport=transport,
            timeout=httpx.Timeout(self._options.read_timeout, connect=self._options.connect_timeout),
            follow_redirects=False,
            trust_env=False,  # no env proxies or .netrc: the guard must see the real peer
            headers={"user-agent": self._options.user_agent, "accept-encoding": "gzip, deflate, br"},
        )

    def _client_for(self, profile: FetchProfile) -> httpx.Client:
        if not profile.proxy:
            return self._client
        client = self._proxied.get(profile.proxy)
        if client is None:
            client = self._new_client(build_proxy_transport(profile.proxy, self._deadline))
            self._proxied[profile.proxy] = client
        return client

    def get(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        accept: str | None = None,
        allowed_types: tuple[str, ...] | None = None,
        profile: FetchProfile | None = None,
        unzip: bool = False,
    ) -> FetchResult:
        """GET `url`, following up to `max_redirects` redirects, each hop re-checked.

        `allowed_types`: a 2xx whose Content-Type is clearly something else (a binary
        type such as image/*, video/*, application/pdf) raises "bad_content_type";
        a missing, textual or octet-stream type is accepted for the parser to judge.
        `profile`: the source's headers, user agent, cookies and proxy. `unzip`: a body that is
        a gzip file is inflated (within `max_bytes`, like a compressed transfer)."""
        started = time.monotonic()
        self._deadline.at = started + self._options.total_timeout
        self._profile = profile or _NO_PROFILE
        self._client_for(self._profile).cookies.clear()  # cookies live for one redirect chain only
        redirects: list[tuple[int, str]] = []
        sent = request_headers(headers, accept, self._profile)
        try:
            return self._fetch(url, sent, allowed_types, redirects, started, unzip)
        except (GuardError, httpx.HTTPError, httpx.InvalidURL, zlib.error, brotli.error) as exc:
            raise self._to_fetch_error(exc, url, redirects) from exc
        finally:
            self._deadline.at = None

    def post_form(self, url: str, form: Mapping[str, str]) -> FetchResult:
        """POST a form (a WebSub hub request) behind the same guard and deadline; no redirects
        are followed and at most 64 KiB of the answer is read."""
        started = time.monotonic()
        self._deadline.at = started + self._options.total_timeout
        self._profile = _NO_PROFILE
        try:
            check_url(url)
            request = self._client.build_request("POST", url, data=dict(form))
            response = self._client.send(request, stream=True)
            try:
                body = bytes(next(response.iter_bytes(_POST_REPLY_BYTES), b""))
            finally:
                response.close()
        except (GuardError, httpx.HTTPError, httpx.InvalidURL) as exc:
            raise self._to_fetch_error(exc, url, []) from exc
        finally:
            self._deadline.at = None
        headers = {name.lower(): value for name, value in response.headers.items()}
        elapsed = (time.monotonic() - started) * 1000
        return FetchResult(url, str(response.url), response.status_code, headers, body, elapsed, ())

    def close(self) -> None:
        self._client.close()
        for client in self._proxied.values():
            client.close()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _fetch(
        self,
        url: str,
        headers: dict[str, str],
        allowed_types: tuple[str, ...] | None,
        redirects: list[tuple[int, str]],
        started: float,
        unzip: bool = False,
    ) -> FetchResult:
        response = self._follow(url, headers, redirects)
        try:
            if allowed_types and response.is_success:
                check_content_type(response.headers.get("content-type", ""), allowed_types)
            body = self._read_body(response, unzip)
        finally:
            response.close()
        return FetchResult(
            url=url,
            final_url=str(response.url),
            status=response.status_code,
            headers={name.lower(): value for name, value in response.headers.items()},
            body=body,
            elapsed_ms=(time.monotonic() - started) * 1000,
            redirects=tuple(redirects),
        )

    def _follow(self, url: str, headers: dict[str, str], redirects: list[tuple[int, str]]) -> httpx.Response:
        """Send one hop at a time; returns the first non-redirect response, unread."""
        current = url
        client = self._client_for(self._profile)
        while True:
            check_url(current)
            if client is not self._client:  # the proxy connects: check where it would go first
                hop = httpx.URL(current)
                self._backend.resolve_permitted(hop.host, hop.port or default_port(hop.scheme))
            request = client.build_request("GET", current, headers=headers)
            response = client.send(request, stream=True)
            target = redirect_target(response)
            if target is None:
                return response
            response.close()
            check_redirect_count(redirects, current, target, self._options.max_redirects)
            redirects.append((response.status_code, target))
            headers = strip_credentials(headers, current, target, self._profile)
            current = target

    def _read_body(self, response: httpx.Response, unzip: bool = False) -> bytes:
        limit = self._options.max_bytes
        if _is_identity(response) and int(response.headers.get("content-length") or 0) > limit:
            raise GuardError("too_large", f"declares Content-Length above max_bytes={limit}")
        body = bytearray()
        pieces = decode_body(response.iter_raw(), response.headers.get("content-encoding", ""))
        for piece in inflate_gzip_file(pieces) if unzip else pieces:
            body += piece
            if len(body) > limit:
                raise GuardError("too_large", f"body exceeds max_bytes={limit} after decompression")
            if self._deadline.is_expired():
                raise httpx.ReadTimeout("total timeout exceeded")
        return bytes(body)

    def _to_fetch_error(self, exc: Exception, url: str, redirects: list[tuple[int, str]]) -> FetchError:
        kind, detail = describe_error(exc)
        if kind == "timeout" and self._deadline.is_expired():
            detail = f"exceeded total_timeout={self._options.total_timeout}s"
        hop = f"(redirected to {redirects[-1][1]}) " if redirects else ""
        if self._profile.proxy:  # an error from the proxy may quote its URL: never its password
            detail = detail.replace(self._profile.proxy, mask_secret_url(self._profile.proxy))
            kind = "proxy" if isinstance(exc, httpx.ProxyError) else kind
        return FetchError(kind, url, hop + detail)


def request_headers(
    extra: Mapping[str, str] | None, accept: str | None, profile: FetchProfile = _NO_PROFILE
) -> dict[str, str]:
    """What one request sends: the source's own headers, then the caller's (conditional GET)."""
    headers = {"accept": accept or "*/*"}
    headers.update({name.lower(): value for name, value in profile.headers})
    if profile.user_agent:
        headers["user-agent"] = profile.user_agent
    if profile.cookies:
        headers["cookie"] = "; ".join(f"{name}={value}" for name, value in profile.cookies)
    headers.update({name.lower(): value for name, value in (extra or {}).items()})
    headers["accept-encoding"] = "gzip, deflate, br"  # only what decode_body undoes
    return headers


def default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def check_url(url: str) -> None:
    """GuardError("bad_scheme") unless `url` is an absolute http(s) URL with a host."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise GuardError("bad_scheme", f"is not a valid URL ({exc})") from exc
    if parsed.scheme not in ("http", "https"):
        raise GuardError("bad_scheme", f"uses {parsed.scheme or 'no'} scheme; only http and https")
    if not parsed.host or not 0 < (parsed.port or 80) < 65536:
        raise GuardError("bad_scheme", "has no host or an invalid port")


def redirect_target(response: httpx.Response) -> str | None:
    """The absolute URL a 301/302/303/307/308 points to (httpx resolves it), or None."""
    return None if response.next_request is None else str(response.next_request.url)


def check_redirect_count(redirects: list[tuple[int, str]], current: str, target: str, limit: int) -> None:
    if len(redirects) < limit:
        return
    seen = {current, *(location for _, location in redirects)}
    loop = "redirect loop" if target in seen else "redirect chain"
    raise GuardError("too_many_redirects", f"{loop} longer than max_redirects={limit} (at {target})")


def strip_credentials(
    headers: dict[str, str], current: str, target: str, profile: FetchProfile = _NO_PROFILE
) -> dict[str, str]:
    """Drop caller-supplied credentials (and the source's own headers, which may be API keys)
    when a redirect leaves the origin."""
    here, there = httpx.URL(current), httpx.URL(target)
    if (here.scheme, here.host, here.port) == (there.scheme, there.host, there.port):
        return headers
    private = {"authorization", "cookie", *(name.lower() for name, _ in profile.headers)}
    return {name: value for name, value in headers.items() if name not in private}


def check_content_type(content_type: str, allowed_types: tuple[str, ...]) -> None:
    media = content_type.split(";", 1)[0].strip().lower()
    if not media or media in _AMBIGUOUS_TYPES or is_textual(media):
        return
    if any(media == kind or (kind.endswith("/*") and media.startswith(kind[:-1])) for kind in allowed_types):
        return
    raise GuardError("bad_content_type", f"is {media}, expected one of {', '.join(allowed_types)}")


def is_textual(media: str) -> bool:
    major, _, minor = media.partition("/")
    return major == "text" or minor in ("xml", "json") or minor.endswith(("+xml", "+json"))


def _is_identity(response: httpx.Response) -> bool:
    return response.headers.get("content-encoding", "identity").strip().lower() in ("", "identity")


def describe_error(exc: Exception) -> tuple[str, str]:
    """(kind, detail) for anything `get` catches."""
    if isinstance(exc, GuardError):
        return exc.kind, exc.detail
    if isinstance(exc, httpx.ConnectError) and _caused_by(exc, ssl.SSLError):
        return "tls", f"TLS handshake failed ({exc})"
    for types, kind, what in _ERROR_KINDS:
        if isinstance(exc, types):
            return kind, f"{what} ({type(exc).__name__}: {exc})"
    return "protocol", f"bad HTTP response ({type(exc).__name__}: {exc})"


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None or isinstance(seen, kind):
            return seen is not None
        seen = seen.__cause__ or seen.__context__
    return False


# --- Content-Encoding, undone in bounded steps ----------------------------------


def decode_body(raw: Iterable[bytes], content_encoding: str) -> Iterator[bytes]:
    """Undo Content-Encoding lazily; each step yields at most about 64 KiB.

    httpx's own `iter_bytes()` decompresses each network read in one call, so a
    64 KiB read of a brotli bomb could inflate to gigabytes before any check; here
    zlib's `max_length` and brotli's `output_buffer_limit` bound every step."""
    stream: Iterator[bytes] = iter(raw)
    for coding in reversed([part.strip().lower() for part in content_encoding.split(",")]):
        if coding in ("gzip", "x-gzip"):
            stream = _inflate(stream, 16 + zlib.MAX_WBITS)
        elif coding == "deflate":
            stream = _inflate_deflate(stream)
        elif coding == "br":
            stream = _unbrotli(stream)
    return stream


def inflate_gzip_file(pieces: Iterable[bytes]) -> Iterator[bytes]:
    """The body inflated when it is a gzip file (starts with its magic bytes), else as it is;
    in the same bounded steps as a compressed transfer."""
    stream = iter(pieces)
    head = b""
    for piece in stream:
        head += piece
        if len(head) >= len(_GZIP_MAGIC):
            break
    rest = itertools.chain([head], stream)
    if head.startswith(_GZIP_MAGIC):
        return _inflate(rest, 16 + zlib.MAX_WBITS)
    return rest


def _inflate(chunks: Iterator[bytes], wbits: int) -> Iterator[bytes]:
    inflater = zlib.decompressobj(wbits)
    for chunk in chunks:
        data = chunk
        while True:
            out = inflater.decompress(data, _PIECE)
            yield out
            data = inflater.unconsumed_tail
            if not data and len(out) < _PIECE:
                break
    yield inflater.flush()


def _inflate_deflate(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """'deflate' is zlib-wrapped per RFC 9110 but raw in some old servers: sniff it."""
    first = next(chunks, b"")
    wrapped = len(first) >= 2 and first[0] & 0x0F == 8 and int.from_bytes(first[:2], "big") % 31 == 0
    yield from _inflate(itertools.chain([first], chunks), zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)


def _unbrotli(chunks: Iterator[bytes]) -> Iterator[bytes]:
    decompressor = brotli.Decompressor()
    for chunk in chunks:
        out: bytes = decompressor.process(chunk, output_buffer_limit=_PIECE)
        while out or not decompressor.can_accept_more_data():
            yield out
            out = decompressor.process(b"", output_buffer_limit=_PIECE)
