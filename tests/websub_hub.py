"""A WebSub hub on loopback (the hub side of the W3C spec, as much as the tests need), and a forger.

`Hub` accepts subscription requests (`hub.mode`, `hub.topic`, `hub.callback`, `hub.secret`,
`hub.lease_seconds`) with 202, then verifies intent in the background: a GET of the callback with
`hub.challenge`, the subscription active only when the challenge comes back. It grants at most
`max_lease_s`. `publish` distributes content to every subscription of a topic whose lease has not
expired, signed `X-Hub-Signature: sha256=…` (or sha1) with the subscriber's secret; expired ones
are dropped (lease expiry). `Forger` sends pushes a hub never would.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import parse_qs

import httpx


@dataclass
class HubSubscription:
    topic: str
    callback: str
    secret: str
    lease_s: int
    expires_at: float


@dataclass
class Delivery:
    callback: str
    status: int
    sent_at: float  # time.time() just before the POST


@dataclass
class HubLog:
    requests: list[dict[str, str]] = field(default_factory=list)  # each subscription request's form
    verifications: list[tuple[str, str, bool]] = field(default_factory=list)  # (mode, callback, confirmed)


class Hub:
    def __init__(self, *, max_lease_s: int = 864000, algorithm: str = "sha256") -> None:
        self.max_lease_s = max_lease_s
        self.algorithm = algorithm
        self.subscriptions: dict[tuple[str, str], HubSubscription] = {}
        self.log = HubLog()
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(self))
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/"

    def __enter__(self) -> Hub:
        self.thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.server.shutdown()
        self.server.server_close()

    def request(self, form: dict[str, str]) -> int:
        """A subscriber's POST: 202 and verification of intent in the background, or 400."""
        mode, topic, callback = form.get("hub.mode"), form.get("hub.topic"), form.get("hub.callback")
        if mode not in ("subscribe", "unsubscribe") or not topic or not callback:
            return 400
        with self.lock:
            self.log.requests.append(form)
        threading.Thread(target=self.verify, args=(form,), daemon=True).start()
        return 202

    def verify(self, form: dict[str, str]) -> None:
        mode, topic, callback = form["hub.mode"], form["hub.topic"], form["hub.callback"]
        lease = min(int(form.get("hub.lease_seconds") or self.max_lease_s), self.max_lease_s)
        challenge = secrets.token_urlsafe(12)
        params = {"hub.mode": mode, "hub.topic": topic, "hub.challenge": challenge}
        if mode == "subscribe":
            params["hub.lease_seconds"] = str(lease)
        try:
            reply = httpx.get(callback, params=params, timeout=5)
            confirmed = reply.status_code // 100 == 2 and reply.text == challenge
        except httpx.HTTPError:
            confirmed = False
        with self.lock:
            self.log.verifications.append((mode, callback, confirmed))
            if confirmed and mode == "subscribe":
                secret = form.get("hub.secret", "")
                self.subscriptions[(topic, callback)] = HubSubscription(
                    topic, callback, secret, lease, time.time() + lease
                )
            elif confirmed:
                self.subscriptions.pop((topic, callback), None)

    def active(self, topic: str) -> list[HubSubscription]:
        """Subscriptions of `topic` whose lease has not expired; expired ones are dropped."""
        now = time.time()
        with self.lock:
            for key in [k for k, s in self.subscriptions.items() if s.expires_at <= now]:
                del self.subscriptions[key]
            return [s for s in self.subscriptions.values() if s.topic == topic]

    def publish(self, topic: str, body: bytes, content_type: str = "application/rss+xml") -> list[Delivery]:
        """Content distribution: one signed POST per active subscription."""
        deliveries = []
        for sub in self.active(topic):
            digest = hmac.new(sub.secret.encode(), body, getattr(hashlib, self.algorithm)).hexdigest()
            headers = {"Content-Type": content_type, "X-Hub-Signature": f"{self.algorithm}={digest}",
                       "Link": f'<{self.url}>; rel="hub", <{topic}>; rel="self"'}  # fmt: skip
            sent_at = time.time()
            reply = httpx.post(sub.callback, content=body, headers=headers, timeout=10)
            deliveries.append(Delivery(sub.callback, reply.status_code, sent_at))
        return deliveries

    def wait_active(self, topic: str, timeout: float = 60) -> HubSubscription:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            subs = self.active(topic)
            if subs:
                return subs[0]
            time.sleep(0.1)
        raise AssertionError(f"no active subscription to {topic} within {timeout}s: {self.log}")


def make_handler(hub: Hub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            status = hub.request(form)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:  # quiet
            return

    return Handler


class Forger:
    """Pushes no hub would send: each returns the HTTP status the subscriber answered."""

    def __init__(self, callback: str) -> None:
        self.callback = callback

    def post(self, body: bytes, headers: dict[str, str], url: str | None = None) -> int:
        return httpx.post(url or self.callback, content=body, headers=headers, timeout=10).status_code

    def unsigned(self, body: bytes) -> int:
        return self.post(body, {"Content-Type": "application/rss+xml"})

    def wrongly_signed(self, body: bytes) -> list[int]:
        wrong = hmac.new(b"not the secret", body, hashlib.sha256).hexdigest()
        return [
            self.post(body, {"X-Hub-Signature": f"sha256={wrong}"}),
            self.post(body, {"X-Hub-Signature": "sha256="}),
            self.post(body, {"X-Hub-Signature": f"md5={hashlib.md5(body).hexdigest()}"}),  # noqa: S324
            self.post(body, {"X-Hub-Signature": "garbage"}),
        ]

    def oversized(self, secret: str, size: int) -> int:
        body = b"<rss>" + b"x" * size + b"</rss>"
        digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        return self.post(body, {"X-Hub-Signature": f"sha256={digest}"})

    def unknown_subscription(self, body: bytes) -> int:
        base = self.callback.rsplit("/", 1)[0]
        digest = hmac.new(b"guess", body, hashlib.sha256).hexdigest()
        return self.post(body, {"X-Hub-Signature": f"sha256={digest}"}, url=f"{base}/no-such-subscription")
