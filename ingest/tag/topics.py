"""Topic definitions: load and validate a topics file once, and reload it when it changes.

Tagging an article with them is `ingest.tag.match` (re-exported here: `tag_article`,
`explain_article`). The query language lives in `ingest.tag.query`; docs/topics.md
describes it for editors.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ingest.tag import query as tq
from ingest.tag import terms
from ingest.tag.match import explain_article, tag_article

__all__ = [
    "Scoring", "Topic", "TopicError", "TopicSet", "TopicsFile", "explain_article", "load_topics",
    "tag_article",
]  # fmt: skip

log = logging.getLogger(__name__)

SLUG_RE = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
LANG_RE = re.compile(r"[a-z]{2}|any")
TOPIC_KEYS = frozenset({"slug", "name", "description", "query", "exclude", "min_score"})
TOP_KEYS = frozenset({"scoring", "aliases", "topic"})


class TopicError(ValueError):
    """An invalid topic definition; the message names the file, the line and the reason."""


@dataclass(frozen=True, slots=True)
class Scoring:
    """Weights of one occurrence by where it is; title beats lead beats deep body."""

    title: float = 3.0
    lead: float = 2.0  # the first `lead_words` words of the text
    body: float = 1.0
    deep: float = 0.5  # after `deep_words` words of the text
    lead_words: int = 60
    deep_words: int = 300
    per_term: int = 2  # occurrences of one term that count
    min_score: float = 3.0  # default for topics that set none
    max_evidence: int = 6


@dataclass(frozen=True, slots=True)
class Topic:
    slug: str
    name: str
    description: str
    query: str
    min_score: float
    exclude: str | None = None
    rule: tq.Node = field(repr=False, compare=False, default=tq.Or(()))
    exclude_rule: tq.Node | None = field(repr=False, compare=False, default=None)
    term_ids: frozenset[int] = field(repr=False, compare=False, default=frozenset())
    must: tuple[frozenset[int], ...] = field(repr=False, compare=False, default=())


@dataclass(frozen=True, slots=True)
class TopicSet:
    topics: tuple[Topic, ...]
    scoring: Scoring = Scoring()
    table: terms.TermTable = field(default_factory=terms.TermTable, repr=False, compare=False)
    path: Path | None = None
    by_term: dict[int, tuple[int, ...]] = field(default_factory=dict, repr=False, compare=False)

    def candidates(self, found: dict[int, list[tuple[int, int]]]) -> list[Topic]:
        """The topics that have any term among `found`, in definition order."""
        indexes = {i for term_id in found for i in self.by_term.get(term_id, ())}
        return [self.topics[i] for i in sorted(indexes)]

    @property
    def slugs(self) -> tuple[str, ...]:
        return tuple(t.slug for t in self.topics)


# --- loading -------------------------------------------------------------------------


def load_topics(path: Path) -> TopicSet:
    """Parse and compile a topics file; raise TopicError on any invalid definition."""
    try:
        raw = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TopicError(f"{path}: cannot read topics file: {exc}") from exc
    loader = _Loader(Path(path), raw)
    try:
        data = tomllib.loads(raw)
    except tomllib.TOMLDecodeError as exc:
        line = re.search(r"line (\d+)", str(exc))
        raise loader.error(int(line.group(1)) if line else 1, f"invalid TOML: {exc}") from exc
    return loader.build(data)


class _Loader:
    """Validates the parsed TOML, pointing errors at lines of the raw file."""

    def __init__(self, path: Path, raw: str) -> None:
        self.path = path
        self.lines = raw.splitlines()
        self.table = terms.TermTable()
        self.aliases: dict[str, tuple[int, ...]] = {}
        self.scoring = Scoring()

    def error(self, line: int, reason: str) -> TopicError:
        return TopicError(f"{self.path}:{line}: {reason}")

    def find(self, pattern: str, start: int = 1) -> int:
        """The 1-based line of the first match at or after `start`, else `start`."""
        compiled = re.compile(pattern)
        for number in range(max(start, 1), len(self.lines) + 1):
            if compiled.search(self.lines[number - 1]):
                return number
        return start

    def key_error(self, key: str, start: int, reason: str) -> TopicError:
        return self.error(self.find(rf"^\s*{re.escape(key)}\s*=", start), reason)

    def build(self, data: dict[str, Any]) -> TopicSet:
        for key in sorted(data.keys() - TOP_KEYS):
            raise self.key_error(key, 1, f"unknown key {key!r} (use [scoring], [aliases], [[topic]])")
        self.scoring = self.read_scoring(data.get("scoring", {}))
        aliases = data.get("aliases", {})
        if not isinstance(aliases, dict):
            raise self.key_error("aliases", 1, "aliases must be a table")
        for name, lists in aliases.items():
            self.aliases[name] = self.read_alias(name, lists)
        raw_topics = data.get("topic", [])
        if not isinstance(raw_topics, list) or not raw_topics:
            raise self.error(1, "no topics: add at least one [[topic]] table")
        headers = [i + 1 for i, s in enumerate(self.lines) if re.match(r"\s*\[\[\s*topic\s*]]", s)]
        topics = [
            self.read_topic(t, headers[i] if i < len(headers) else 1, i) for i, t in enumerate(raw_topics)
        ]
        for i, topic in enumerate(topics):
            if topic.slug in {t.slug for t in topics[:i]}:
                raise self.key_error("slug", headers[i], f"duplicate slug {topic.slug!r}")
        self.table.compile()
        by_term: dict[int, list[int]] = {}
        for i, topic in enumerate(topics):
            for term_id in topic.term_ids:
                by_term.setdefault(term_id, []).append(i)
        index = {term_id: tuple(ids) for term_id, ids in by_term.items()}
        return TopicSet(tuple(topics), self.scoring, self.table, self.path, index)

    def read_scoring(self, raw: Any) -> Scoring:
        line = self.find(r"^\s*\[scoring]")
        if not isinstance(raw, dict):
            raise self.error(line, "[scoring] must be a table")
        values = {}
        for key, value in raw.items():
            if key not in Scoring.__dataclass_fields__:
                raise self.key_error(key, line, f"unknown scoring key {key!r}")
            if not _is_number(value):
                raise self.key_error(key, line, f"{key} must be a number >= 0")
            values[key] = type(getattr(Scoring(), key))(value)
        return Scoring(**values)

    def read_alias(self, name: str, lists: Any) -> tuple[int, ...]:
        line = self.find(rf"^\s*(\[aliases\.{re.escape(name)}]|{re.escape(name)}\s*=)")
        lists = {"any": lists} if isinstance(lists, list) else lists
        if not re.fullmatch(r"[\w-]+", name) or not isinstance(lists, dict) or not lists:
            raise self.error(line, f"alias {name!r}: give a list of terms or a table of lists")
        langs = frozenset(k for k in lists if k != "any")
        ids = []
        for lang, entries in lists.items():
            if not LANG_RE.fullmatch(lang) or not isinstance(entries, list):
                raise self.error(line, f"alias {name!r}: {lang!r} must be a language code = [terms]")
            for term in entries:
                spec = self.read_term(name, lang, term, line)
                ids.append(self.table.add(replace(spec, alias_langs=langs)))
        return tuple(ids)

    def read_term(self, name: str, lang: str, term: Any, line: int) -> terms.TermSpec:
        if not isinstance(term, str):
            raise self.error(line, f"alias {name!r}: terms must be strings, not {term!r}")
        text, case = term.removeprefix("case:"), term.startswith("case:")
        try:
            return terms.parse_term(text, case=case, lang=None if lang == "any" else lang)
        except terms.QueryError as exc:
            where = self.find(re.escape(json.dumps(term, ensure_ascii=False)), line)
            raise self.error(where, f"alias {name!r}: {exc.reason}") from exc

    def read_topic(self, raw: Any, line: int, index: int) -> Topic:
        if not isinstance(raw, dict):
            raise self.error(line, "each [[topic]] must be a table")
        for key in sorted(raw.keys() - TOPIC_KEYS):
            raise self.key_error(key, line, f"unknown key {key!r} (one of {sorted(TOPIC_KEYS)})")
        for key in ("slug", "name", "description", "query"):
            if not isinstance(raw.get(key), str) or not raw[key].strip():
                raise self.error(line, f"topic #{index + 1}: {key!r} is missing or empty")
        slug = raw["slug"]
        if not SLUG_RE.fullmatch(slug):
            raise self.key_error("slug", line, f"bad slug {slug!r}: use a-z, 0-9 and '-'")
        min_score = raw.get("min_score", self.scoring.min_score)
        if not _is_number(min_score):
            raise self.key_error("min_score", line, "min_score must be a number >= 0")
        rule = self.read_query(raw, "query", line)
        exclude = self.read_query(raw, "exclude", line) if "exclude" in raw else None
        ids = tq.leaf_ids(rule) | (tq.leaf_ids(exclude) if exclude else frozenset())
        return Topic(
            slug, raw["name"], raw["description"], raw["query"], float(min_score),
            raw.get("exclude"), rule, exclude, ids, tq.required(rule),
        )  # fmt: skip

    def read_query(self, raw: dict[str, Any], key: str, line: int) -> tq.Node:
        text, slug = raw[key], raw["slug"]
        key_line = self.find(rf"^\s*{key}\s*=", line)
        if not isinstance(text, str):
            raise self.error(key_line, f"topic {slug!r}: {key} must be a string")
        try:
            return tq.parse_query(text, self.aliases, self.table)
        except terms.QueryError as exc:
            # a multi-line string starting right after `"""` begins on the next line
            opens_block = re.search(r"=\s*(\"\"\"|''')\s*$", self.lines[key_line - 1])
            where = key_line + bool(opens_block) + text.count("\n", 0, exc.column)
            near = text[exc.column : exc.column + 20].split("\n")[0].strip()
            at = f" (at {near!r})" if near else ""
            raise self.error(where, f"topic {slug!r}: {key}: {exc.reason}{at}") from exc


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


# --- hot reload ----------------------------------------------------------------------


class TopicsFile:
    """A topics file that reloads when it changes; a broken edit keeps the last good set."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._stamp: tuple[int, int, int] | None = None
        self._topics: TopicSet | None = None
        self._lock = threading.Lock()

    def get(self) -> TopicSet:
        """The current TopicSet; raises TopicError only if no good version was ever read."""
        stamp = self._stat()
        if stamp != self._stamp or self._topics is None:
            with self._lock:
                if stamp != self._stamp or self._topics is None:
                    self._reload(stamp)
        assert self._topics is not None  # noqa: S101 - _reload sets it or raises
        return self._topics

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _reload(self, stamp: tuple[int, int, int] | None) -> None:
        try:
            topics = load_topics(self.path)
        except TopicError as exc:
            if self._topics is None:
                raise
            self._stamp = stamp
            log.error("topics reload failed, keeping the last good set", extra={  # noqa: TRY400
                "stage": "tag", "topics_path": str(self.path), "error": str(exc),
            })  # fmt: skip
            return
        self._topics, self._stamp = topics, stamp
        log.info("topics loaded", extra={
            "stage": "tag", "topics_path": str(self.path), "topics": len(topics.topics),
        })  # fmt: skip
