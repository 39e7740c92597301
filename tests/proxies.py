"""Two small proxies for the fetch-profile tests, on loopback: an HTTP proxy (absolute-URI GETs
forwarded, CONNECT tunnelled) and a SOCKS5 proxy (no auth, or username/password). Each records
the targets it was asked for, and can demand credentials."""

from __future__ import annotations

import base64
import select
import socket
import socketserver
import struct
import threading
from types import TracebackType
from urllib.parse import urlsplit


def relay(a: socket.socket, b: socket.socket) -> None:
    """Copy bytes both ways until either side closes."""
    sockets = [a, b]
    while True:
        ready, _, _ = select.select(sockets, [], [], 10)
        if not ready:
            return
        for source in ready:
            data = source.recv(65536)
            if not data:
                return
            (b if source is a else a).sendall(data)


class ProxyBase(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, handler: type[socketserver.BaseRequestHandler], credentials: tuple[str, str] | None):
        super().__init__(("127.0.0.1", 0), handler)
        self.credentials = credentials
        self.targets: list[str] = []  # host:port (CONNECT, SOCKS) or the absolute URL (forwarded GET)
        self.refused: list[str] = []
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def __enter__(self) -> ProxyBase:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.shutdown()
        self.server_close()


class HttpProxyHandler(socketserver.StreamRequestHandler):
    server: HttpProxy

    def handle(self) -> None:
        head = self.rfile.readline(65536).decode("latin-1")
        headers = {}
        while (line := self.rfile.readline(65536)) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        method, target, _ = [*head.split(" "), "", "", ""][:3]
        if not self.server.allows(headers.get("proxy-authorization", "")):
            self.server.refused.append(target)
            self.wfile.write(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
            return
        self.server.targets.append(target)
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            with socket.create_connection((host, int(port)), timeout=10) as upstream:
                self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                relay(self.connection, upstream)
            return
        self.forward(method, target, headers)

    def forward(self, method: str, target: str, headers: dict[str, str]) -> None:
        """An absolute-URI request: sent on to the origin as an origin-form request, answer relayed."""
        parts = urlsplit(target)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        kept = {
            k: v
            for k, v in headers.items()
            if k not in {"proxy-authorization", "proxy-connection", "connection"}
        }
        lines = [
            f"{method} {path} HTTP/1.1",
            *(f"{k}: {v}" for k, v in kept.items()),
            "Connection: close",
            "",
            "",
        ]
        with socket.create_connection((parts.hostname, parts.port or 80), timeout=10) as upstream:
            upstream.sendall("\r\n".join(lines).encode("latin-1"))
            while data := upstream.recv(65536):
                self.wfile.write(data)


class HttpProxy(ProxyBase):
    def __init__(self, credentials: tuple[str, str] | None = None) -> None:
        super().__init__(HttpProxyHandler, credentials)

    def allows(self, header: str) -> bool:
        if self.credentials is None:
            return True
        expected = base64.b64encode(":".join(self.credentials).encode()).decode()
        return header == f"Basic {expected}"


class Socks5Handler(socketserver.StreamRequestHandler):
    server: Socks5Proxy

    def handle(self) -> None:
        version, count = struct.unpack("!BB", self.rfile.read(2))
        methods = self.rfile.read(count)
        wanted = 2 if self.server.credentials else 0
        if version != 5 or wanted not in methods:
            self.wfile.write(b"\x05\xff")
            return
        self.wfile.write(bytes([5, wanted]))
        if wanted == 2 and not self.authenticate():
            return
        _, _command, _, kind = struct.unpack("!BBBB", self.rfile.read(4))
        host = self.read_address(kind)
        port = struct.unpack("!H", self.rfile.read(2))[0]
        self.server.targets.append(f"{host}:{port}")  # before answering, as above
        with socket.create_connection((host, port), timeout=10) as upstream:
            self.wfile.write(b"\x05\x00\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack("!H", port))
            relay(self.connection, upstream)

    def authenticate(self) -> bool:
        self.rfile.read(1)
        user = self.rfile.read(self.rfile.read(1)[0]).decode()
        password = self.rfile.read(self.rfile.read(1)[0]).decode()
        ok = (user, password) == self.server.credentials
        if not ok:  # recorded before answering: the client may look as soon as it has the answer
            self.server.refused.append(user)
        self.wfile.write(b"\x01\x00" if ok else b"\x01\x01")
        return ok

    def read_address(self, kind: int) -> str:
        if kind == 1:
            return socket.inet_ntoa(self.rfile.read(4))
        if kind == 3:
            return self.rfile.read(self.rfile.read(1)[0]).decode()
        return socket.inet_ntop(socket.AF_INET6, self.rfile.read(16))


class Socks5Proxy(ProxyBase):
    def __init__(self, credentials: tuple[str, str] | None = None) -> None:
        super().__init__(Socks5Handler, credentials)
