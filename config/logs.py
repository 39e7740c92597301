"""Structured logging: JSON lines when not on a terminal, readable lines on one.

Stable fields (when a log call passes them in `extra`): feed_url, article_id,
story_id, stage, outcome, duration_ms.
"""

from __future__ import annotations

import logging
import re
import sys
import time

import orjson

SECRET_IN_URL = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^/\s:@]*:)[^@\s/]+@")
FIELDS = ("feed_url", "article_id", "story_id", "stage", "outcome", "duration_ms", "url")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + "Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update({k: getattr(record, k) for k in FIELDS if hasattr(record, k)})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return mask_secrets(orjson.dumps(entry, default=str).decode())


class ReadableFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        extra = " ".join(f"{k}={getattr(record, k)}" for k in FIELDS if hasattr(record, k))
        line = f"{stamp} {record.levelname:<7} {record.name}: {record.getMessage()}"
        line = f"{line}  [{extra}]" if extra else line
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return mask_secrets(line)


def mask_secrets(line: str) -> str:
    """Passwords inside URLs (redis://:pw@host, https://user:pw@feeds) never reach a log line."""
    return SECRET_IN_URL.sub(r"\1***@", line)


def configure_logging(level: str = "INFO", *, json_lines: bool | None = None) -> None:
    """Configure the root logger once for this process (stderr)."""
    use_json = not sys.stderr.isatty() if json_lines is None else json_lines
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if use_json else ReadableFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "trafilatura", "htmldate", "courlan", "charset_normalizer"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
