"""POST a body to a URL someone configured (webhook deliveries), behind the same address guard.

Every connection goes through `netguard.GuardedBackend` (loopback, private, link-local and
reserved addresses refused after DNS unless listed in the allowed networks), a wall-clock
deadline caps the whole request, redirects are not followed (a 3xx is returned as such: a
webhook that moved must be reconfigured), and at most `max_response_bytes` of the reply are
read. Transport and safety failures raise `FetchError` with the same kinds as `http.py`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from ingest.fetch.http import FetchError, check_url, describe_error
from ingest.fetch.netguard import Deadline, GuardedBackend, GuardError, IPNetwork, build_guarded_transport

__all__ = ["FetchError", "PostOptions", "PostResult", "Poster"]


@dataclass(frozen=True, slots=True)
class PostOptions:
    user_agent: str = "newswire/0.1 (+https://github.com/newswire/newswire)"
    connect_timeout: float = 5.0
    read_timeout: float = 10.0
    total_timeout: float = 15.0
    max_response_bytes: int = 64 * 1024
    allowed_networks: tuple[IPNetwork, ...] = ()


@dataclass(frozen=True, slots=True)
class PostResult:
    status: int
    headers: dict[str, str]  # lower-cased names
    body: bytes  # the first max_response_bytes of the reply
    elapsed_ms: float


class Poster:
    """One pooled HTTP/1.1 client behind the address guard; one instance per thread."""

    def __init__(self, options: PostOptions) -> None:
        self._options = options
        self._deadline = Deadline()
        self._client = httpx.Client(
            transport=build_guarded_transport(GuardedBackend(options.allowed_networks, self._deadline)),
            timeout=httpx.Timeout(options.read_timeout, connect=options.connect_timeout),
            follow_redirects=False,
            trust_env=False,  # no env proxies: the guard must see the real peer
            headers={"user-agent": options.user_agent},
        )

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> PostResult:
        started = time.monotonic()
        self._deadline.at = started + self._options.total_timeout
        try:
            check_url(url)
            with self._client.stream("POST", url, content=body, headers=dict(headers)) as response:
                head = self._read_head(response)
            return PostResult(
                response.status_code, {k.lower(): v for k, v in response.headers.items()}, head,
                (time.monotonic() - started) * 1000,
            )  # fmt: skip
        except (GuardError, httpx.HTTPError, httpx.InvalidURL) as exc:
            kind, detail = describe_error(exc)
            raise FetchError(kind, url, detail) from exc
        finally:
            self._deadline.at = None

    def _read_head(self, response: httpx.Response) -> bytes:
        head = bytearray()
        for piece in response.iter_raw():
            head += piece
            if len(head) >= self._options.max_response_bytes:
                break
        return bytes(head[: self._options.max_response_bytes])

    def close(self) -> None:
        self._client.close()
