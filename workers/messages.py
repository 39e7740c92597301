"""The messages of the Celery tasks, typed: what each task's arguments mean, read once.

A message is a frozen dataclass built from the call's arguments (`from_call`) and turned back into
them (`call`), so what a task receives and what is sent (a split batch, a replay from the
dead-letter stream) is one shape. `to_dict`/`from_dict` give the same as one JSON object.

A batch message (`batch = True`) splits into messages of one item each (`parts`): a batch that
keeps killing its worker goes on as batches of one, and a failed batch is dead-lettered item by
item. The items themselves stay JSON here: each is read on its own by the stage that handles it,
so one broken item fails alone (ingest/batch.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Protocol, Self

Call = tuple[list[Any], dict[str, Any]]


class Message(Protocol):
    batch: ClassVar[bool]

    @classmethod
    def from_call(cls, args: Any, kwargs: dict[str, Any]) -> Self: ...

    def call(self) -> Call: ...

    def parts(self) -> list[Self]: ...

    @property
    def tracked(self) -> tuple[str, str] | None:
        """(sweep id, item) of a message of one item in a sweep: what a sweep waits for."""


class DictMessage:
    """`to_dict`/`from_dict` for a message dataclass: its call as one JSON object."""

    __slots__ = ()

    def call(self) -> Call:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        args, kwargs = self.call()
        return {"args": args, "kwargs": kwargs}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        return cls.from_call(data.get("args") or [], data.get("kwargs") or {})  # type: ignore[attr-defined,no-any-return]


@dataclass(frozen=True, slots=True)
class Tick(DictMessage):
    batch: ClassVar[bool] = False
    tracked: None = None

    @classmethod
    def from_call(cls, args: Any, kwargs: dict[str, Any]) -> Tick:
        return cls()

    def call(self) -> Call:
        return [], {}

    def parts(self) -> list[Tick]:
        return [self]


@dataclass(frozen=True, slots=True)
class PollFeed(DictMessage):
    """Poll one feed (from the tick, or from a sweep that waits for `item`)."""

    batch: ClassVar[bool] = False
    feed_url: str
    sweep_id: str | None = None
    item: str | None = None
    claimed: bool = False  # claimed from its host's queue: it holds the host's slot (ingest/dispatch.py)

    @classmethod
    def from_call(cls, args: Any, kwargs: dict[str, Any]) -> PollFeed:
        return cls(*args, **kwargs)

    def call(self) -> Call:
        extra = {"claimed": True} if self.claimed else {}
        return [self.feed_url], {"sweep_id": self.sweep_id, "item": self.item, **extra}

    def parts(self) -> list[PollFeed]:
        return [self]

    @property
    def tracked(self) -> tuple[str, str] | None:
        return (self.sweep_id, self.item) if self.sweep_id and self.item else None


@dataclass(frozen=True, slots=True)
class FetchArticles(DictMessage):
    """Article pages to fetch: `jobs` claimed from the host queues (each holds its host's slot:
    ingest/dispatch.py), or `entries` (`FeedEntry.to_dict()` each, with their sweep `items`) from
    messages of earlier versions, which go into the host queues."""

    batch: ClassVar[bool] = True
    entries: tuple[dict[str, Any], ...] = ()
    sweep_id: str | None = None
    items: tuple[str | None, ...] = ()  # one per entry; empty: not known (derived from the entries)
    first_seen: float | None = None  # when the poll found them (end-to-end latency)
    jobs: tuple[dict[str, Any], ...] = ()  # `HostJob` JSON, each with its own sweep and poll time

    @classmethod
    def from_call(cls, args: Any, kwargs: dict[str, Any]) -> FetchArticles:
        entries, *rest = args or [[]]
        values = dict(zip(("sweep_id", "items", "first_seen"), rest, strict=False)) | kwargs
        return cls(tuple(entries), values.get("sweep_id"), tuple(values.get("items") or ()),
                   values.get("first_seen"), tuple(values.get("jobs") or ()))  # fmt: skip

    def call(self) -> Call:
        kwargs = {"sweep_id": self.sweep_id, "items": list(self.items) if self.items else None}
        extra = {"jobs": list(self.jobs)} if self.jobs else {}
        return [list(self.entries)], {**kwargs, "first_seen": self.first_seen, **extra}

    def parts(self) -> list[FetchArticles]:
        items = self.items or (None,) * len(self.entries)
        return [FetchArticles((e,), self.sweep_id, (i,) if i else (), self.first_seen)
                for e, i in zip(self.entries, items, strict=True)] + [
                FetchArticles(jobs=(job,)) for job in self.jobs]  # fmt: skip

    @property
    def tracked(self) -> tuple[str, str] | None:
        if len(self.jobs) + len(self.entries) != 1:
            return None
        if self.jobs:
            data = self.jobs[0].get("data") or {}
            sweep, item = data.get("sweep_id"), data.get("item")
        else:
            sweep, item = self.sweep_id, self.items[0] if self.items else None
        return (sweep, item) if sweep and item else None


@dataclass(frozen=True, slots=True)
class ExtractArticles(DictMessage):
    """Fetched pages to extract and publish (`PageItem.to_dict()` each)."""

    batch: ClassVar[bool] = True
    pages: tuple[dict[str, Any], ...]
    sweep_id: str | None = None
    first_seen: float | None = None

    @classmethod
    def from_call(cls, args: Any, kwargs: dict[str, Any]) -> ExtractArticles:
        pages, *rest = args
        values = dict(zip(("sweep_id", "first_seen"), rest, strict=False)) | kwargs
        return cls(tuple(pages), values.get("sweep_id"), values.get("first_seen"))

    def call(self) -> Call:
        return [list(self.pages)], {"sweep_id": self.sweep_id, "first_seen": self.first_seen}

    def parts(self) -> list[ExtractArticles]:
        return [ExtractArticles((p,), self.sweep_id, self.first_seen) for p in self.pages]

    @property
    def tracked(self) -> tuple[str, str] | None:
        page = self.pages[0] if len(self.pages) == 1 and isinstance(self.pages[0], dict) else {}
        sweep, item = page.get("sweep_id") or self.sweep_id, page.get("item")
        return (sweep, item) if isinstance(sweep, str) and isinstance(item, str) else None


@dataclass(frozen=True, slots=True)
class RetagArticles(DictMessage):
    batch: ClassVar[bool] = False
    since_ms: int
    sweep_id: str | None = None
    item: str | None = None

    @classmethod
    def from_call(cls, args: Any, kwargs: dict[str, Any]) -> RetagArticles:
        return cls(*args, **kwargs)

    def call(self) -> Call:
        return [self.since_ms], {"sweep_id": self.sweep_id, "item": self.item}

    def parts(self) -> list[RetagArticles]:
        return [self]

    @property
    def tracked(self) -> tuple[str, str] | None:
        return (self.sweep_id, self.item) if self.sweep_id and self.item else None


@dataclass(frozen=True, slots=True)
class WebsubRequest(DictMessage):
    """Subscribe, renew or unsubscribe one feed at its hub (handed out by the beat tick)."""

    batch: ClassVar[bool] = False
    tracked: ClassVar[None] = None
    feed_url: str

    @classmethod
    def from_call(cls, args: Any, kwargs: dict[str, Any]) -> WebsubRequest:
        return cls(*args, **kwargs)

    def call(self) -> Call:
        return [self.feed_url], {}

    def parts(self) -> list[WebsubRequest]:
        return [self]


@dataclass(frozen=True, slots=True)
class WebsubPush(DictMessage):
    """One accepted push: the subscription and where the HTTP service stored the body."""

    batch: ClassVar[bool] = False
    tracked: ClassVar[None] = None
    sub_id: str
    body_key: str
    content_type: str = ""

    @classmethod
    def from_call(cls, args: Any, kwargs: dict[str, Any]) -> WebsubPush:
        return cls(*args, **kwargs)

    def call(self) -> Call:
        return [self.sub_id, self.body_key], {"content_type": self.content_type}

    def parts(self) -> list[WebsubPush]:
        return [self]


# --- one-article messages of earlier versions, read as batches of one -------------------------


@dataclass(frozen=True, slots=True)
class FetchArticle(DictMessage):
    batch: ClassVar[bool] = False
    entry: dict[str, Any]
    sweep_id: str | None = None
    item: str | None = None
    first_seen: float | None = None

    @classmethod
    def from_call(cls, args: Any, kwargs: dict[str, Any]) -> FetchArticle:
        return cls(*args, **kwargs)

    def call(self) -> Call:
        return [self.entry], {k: v for k, v in asdict(self).items() if k != "entry"}

    def parts(self) -> list[FetchArticle]:
        return [self]

    @property
    def tracked(self) -> tuple[str, str] | None:
        return (self.sweep_id, self.item) if self.sweep_id and self.item else None

    def as_batch(self) -> FetchArticles:
        return FetchArticles((self.entry,), self.sweep_id, (self.item,) if self.item else (), self.first_seen)


@dataclass(frozen=True, slots=True)
class ExtractArticle(DictMessage):
    """entry, html, final_url, error (positional), then sweep_id, item, first_seen, page_key."""

    batch: ClassVar[bool] = False
    entry: Any
    html: str | None = None
    final_url: str | None = None
    error: str | None = None
    sweep_id: str | None = None
    item: str | None = None
    first_seen: float | None = None
    page_key: str | None = None

    @classmethod
    def from_call(cls, args: Any, kwargs: dict[str, Any]) -> ExtractArticle:
        return cls(*args, **kwargs)

    def call(self) -> Call:
        values = asdict(self)
        head = [values.pop(k) for k in ("entry", "html", "final_url", "error")]
        return head, values

    def parts(self) -> list[ExtractArticle]:
        return [self]

    @property
    def tracked(self) -> tuple[str, str] | None:
        return (self.sweep_id, self.item) if self.sweep_id and self.item else None

    def as_batch(self) -> ExtractArticles:
        page = {"entry": self.entry, "item": self.item, "html": self.html, "final_url": self.final_url,
                "error": self.error, "page_key": self.page_key}  # fmt: skip
        return ExtractArticles((page,), self.sweep_id, self.first_seen)
