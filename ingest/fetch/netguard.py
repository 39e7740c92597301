"""The private-address guard under `fetch.py`: which IPs we may connect to, and the
httpcore network backend that enforces it on the address actually connected to.

`GuardedBackend.connect_tcp` resolves the host itself, checks every resolved address,
and connects only to an address that passed, so DNS rebinding cannot slip a private
address in between check and connect. httpcore passes the TLS `server_hostname`
separately (`_sync/connection.py`: `sni_hostname or origin.host`), so SNI and the
certificate check still use the URL's hostname. Every stream it returns also enforces
the per-request wall-clock deadline on each read and write.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import time
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
# IANA special-purpose blocks that some Python 3.11 patch releases call global.
_SPECIAL = tuple(
    ipaddress.ip_network(cidr)
    for cidr in ("0.0.0.0/8", "192.0.0.0/24", "198.18.0.0/15", "2001::/23", "2001:db8::/32")
)
_CATEGORIES: tuple[tuple[str, str], ...] = (
    ("is_unspecified", "unspecified address"),
    ("is_loopback", "loopback"),
    ("is_link_local", "link-local"),
    ("is_multicast", "multicast"),
    ("is_private", "private network"),
    ("is_reserved", "reserved address"),
)


class GuardError(Exception):
    """Raised inside the transport; `fetch.py` turns it into a `FetchError`."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


def parse_allowed_networks(value: str) -> tuple[IPNetwork, ...]:
    """'127.0.0.0/24, ::1/128' -> networks; a bare address means that single host."""
    return tuple(_parse_network(part.strip()) for part in value.split(",") if part.strip())


def _parse_network(text: str) -> IPNetwork:
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        raise ValueError(
            f"invalid allowed network {text!r} ({exc}); expected a CIDR such as 127.0.0.0/24"
        ) from exc


def is_blocked_address(ip: IPAddress, allowed: tuple[IPNetwork, ...]) -> bool:
    """True when `ip` is not a public unicast address and no `allowed` network lists it."""
    return blocked_reason(ip, allowed) is not None


def blocked_reason(ip: IPAddress, allowed: tuple[IPNetwork, ...]) -> str | None:
    """Why `ip` is blocked ("private network", ...), or None when it may be connected.

    IPv4-mapped and NAT64 addresses are judged entirely by the IPv4 address they
    carry (DNS64 networks hand out NAT64 addresses for every IPv4-only site)."""
    if isinstance(ip, ipaddress.IPv6Address):
        carried = ip.ipv4_mapped or (_low_ipv4(ip) if ip in _NAT64 else None)
        if carried is not None:
            return blocked_reason(carried, allowed)
    if any(ip in network for network in allowed):
        return None
    own = _own_reason(ip)
    if own is not None or not isinstance(ip, ipaddress.IPv6Address) or ip.sixtofour is None:
        return own
    inner = _own_reason(ip.sixtofour)
    return None if inner is None else f"6to4 for {ip.sixtofour}: {inner}"


def _own_reason(ip: IPAddress) -> str | None:
    for attribute, reason in _CATEGORIES:
        if getattr(ip, attribute):
            return reason
    if ip in _CGNAT:
        return "shared address space (CGNAT)"
    if any(ip in network for network in _SPECIAL):
        return "special-purpose address"
    return None if ip.is_global else "non-global address"


def _low_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)


class Deadline:
    """A per-request wall-clock limit shared by a backend and all of its streams."""

    def __init__(self) -> None:
        self.at: float | None = None  # time.monotonic() value; None = no limit

    def is_expired(self) -> bool:
        return self.at is not None and time.monotonic() >= self.at

    def cap(self, timeout: float | None, error: type[Exception]) -> float | None:
        """`timeout` shortened to what is left; `error` once nothing is left."""
        if self.at is None:
            return timeout
        left = self.at - time.monotonic()
        if left <= 0:
            raise error("total timeout exceeded")
        return left if timeout is None else min(timeout, left)


class DeadlineStream(httpcore.NetworkStream):
    """Delegates to the real socket stream, capping every wait by the deadline."""

    def __init__(self, inner: httpcore.NetworkStream, deadline: Deadline) -> None:
        self._inner = inner
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._deadline.cap(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._deadline.cap(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        capped = self._deadline.cap(timeout, httpcore.ConnectTimeout)
        return DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, capped), self._deadline)

    def get_extra_info(self, info: str) -> object:
        return self._inner.get_extra_info(info)


class GuardedBackend(httpcore.SyncBackend):
    """httpcore backend: resolve, refuse blocked addresses, connect to a checked IP."""

    def __init__(self, allowed: tuple[IPNetwork, ...], deadline: Deadline) -> None:
        self._allowed = allowed
        self.deadline = deadline

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,  # httpcore's SOCKET_OPTION tuples
    ) -> httpcore.NetworkStream:
        last_error: Exception | None = None
        for ip in self.resolve_permitted(host, port):
            capped = self.deadline.cap(timeout, httpcore.ConnectTimeout)
            try:
                stream = super().connect_tcp(str(ip), port, capped, local_address, socket_options)
            except httpcore.ConnectError as exc:  # try the next checked address
                last_error = exc
                continue
            return DeadlineStream(stream, self.deadline)
        raise last_error or httpcore.ConnectError(f"cannot connect to {host}")

    def resolve_permitted(self, host: str, port: int) -> list[IPAddress]:
        """Resolved addresses that pass the guard; GuardError when none does."""
        addresses = resolve_host(host, port)
        permitted = [ip for ip in addresses if not is_blocked_address(ip, self._allowed)]
        if not permitted:
            reason = blocked_reason(addresses[0], self._allowed)
            raise GuardError("blocked_address", f"resolves to {addresses[0]} ({reason})")
        return permitted


def resolve_host(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to, in the resolver's preferred order."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise GuardError("dns", f"does not resolve ({exc})") from exc
    addresses: list[IPAddress] = []
    for info in infos:
        ip = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if ip not in addresses:
            addresses.append(ip)
    if not addresses:
        raise GuardError("dns", "resolves to no address")
    return addresses


def build_guarded_transport(backend: GuardedBackend) -> httpx.HTTPTransport:
    """httpx's own transport (exception mapping, streaming) around a guarded pool.

    httpx 0.28 has no public hook for a network backend, so the pool it built is
    replaced before first use; `trust_env=False` on the client keeps proxies out."""
    transport = httpx.HTTPTransport(http1=True, http2=False, retries=0)
    transport._pool = httpcore.ConnectionPool(
        ssl_context=httpx.create_ssl_context(),
        max_connections=100,
        max_keepalive_connections=20,
        keepalive_expiry=5.0,
        http1=True,
        http2=False,
        network_backend=backend,
    )
    return transport


class ProxyBackend(httpcore.SyncBackend):
    """The backend under a proxy's pool: connects to the proxy (the operator's choice, not guarded;
    `http.py` checks each target first) with the same per-request deadline on every read and write."""

    def __init__(self, deadline: Deadline) -> None:
        self.deadline = deadline

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        capped = self.deadline.cap(timeout, httpcore.ConnectTimeout)
        stream = super().connect_tcp(host, port, capped, local_address, socket_options)
        return DeadlineStream(stream, self.deadline)


def build_proxy_transport(proxy_url: str, deadline: Deadline) -> httpx.HTTPTransport:
    """httpx's transport for an http(s) or socks5 proxy, its pool on a `ProxyBackend`."""
    proxy = httpx.Proxy(url=proxy_url)
    target = httpcore.URL(
        scheme=proxy.url.raw_scheme, host=proxy.url.raw_host, port=proxy.url.port, target=proxy.url.raw_path
    )
    transport = httpx.HTTPTransport(http1=True, http2=False, retries=0)
    common: dict[str, Any] = {
        "proxy_url": target, "proxy_auth": proxy.raw_auth, "ssl_context": httpx.create_ssl_context(),
        "max_connections": 20, "max_keepalive_connections": 10, "keepalive_expiry": 5.0,
        "http1": True, "http2": False, "network_backend": ProxyBackend(deadline),
    }  # fmt: skip
    if proxy.url.scheme in ("socks5", "socks5h"):
        transport._pool = httpcore.SOCKSProxy(**common)
    else:
        transport._pool = httpcore.HTTPProxy(**common, proxy_headers=proxy.headers.raw)
    return transport
