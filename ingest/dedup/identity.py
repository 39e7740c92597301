"""Identity decisions: canonical URLs, article ids and content hashes (pure functions).

The check-and-insert against what was already published happens atomically in
Redis (see `publish.py`); this module only computes the keys.

`normalize_text` runs on every body twice (the body hash, then the near-duplicate
signature), so it remembers its last few results, and it drops combining marks by
finding the few distinct ones a body has instead of testing every character.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from functools import lru_cache
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import regex

TRACKING_PARAMS = frozenset(
    {
        "fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "twclid", "igshid",
        "mc_cid", "mc_eid", "ocid", "cmpid", "cmp", "ito", "ns_mchannel", "ns_source",
        "ns_campaign", "ns_linkname", "ns_fee", "at_medium", "at_campaign", "at_custom1",
        "icid", "ref", "ref_src", "referrer", "smid", "smtyp", "sr_share", "taid",
        "_ga", "_gl", "mkt_tok", "_hsenc", "_hsmi", "vero_id",
        "xtor", "s_cid", "ncid", "soc_src", "soc_trk", "guccounter", "guce_referrer",
    }
)  # fmt: skip
TRACKING_PREFIXES = ("utm_", "pk_", "mtm_", "at_", "hsa_", "oly_")
DEFAULT_PORTS = {"http": 80, "https": 443}
MOBILE_HOST_PREFIXES = ("amp.", "m.", "mobile.")
WORD_RE = re.compile(r"\w+")
MARK_RE = regex.compile(r"\p{M}")  # holds every combining character (a unit test checks all of them)


def canonical_url(url: str) -> str:
    """The URL with the differences that never change the article removed.

    Lower-cased scheme and host, no default port, no fragment, no tracking
    parameters, sorted query, no trailing slash, no AMP path. Still fetchable.
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower() or "http"
    host = (parts.hostname or "").lower().rstrip(".")
    port = parts.port if parts.port and parts.port != DEFAULT_PORTS.get(scheme) else None
    netloc = f"{host}:{port}" if port else host
    return urlunsplit((scheme, netloc, canonical_path(parts.path), canonical_query(parts.query), ""))


def url_key(url: str) -> str:
    """Identity of a canonical URL: also blind to http/https and www./m./amp. hosts."""
    parts = urlsplit(canonical_url(url))
    host = site_host(parts.netloc)
    return urlunsplit(("", host, parts.path, parts.query, ""))


def site_host(netloc: str) -> str:
    host = netloc.lower().rstrip(".")
    for prefix in ("www.", *MOBILE_HOST_PREFIXES):
        if host.startswith(prefix) and host.count(".") >= 2:
            return host[len(prefix) :]
    return host


def canonical_path(path: str) -> str:
    path = re.sub(r"/{2,}", "/", path or "/")
    path = re.sub(r"(/amp)+/?$", "", path) or "/"
    path = re.sub(r"\.amp(\.html?)?$", r"\1", path)
    if len(path) > 1 and path.endswith("/"):
        path = path.rstrip("/") or "/"
    return path


def canonical_query(query: str) -> str:
    pairs = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if not is_tracking(k)]
    pairs = [(k, v) for k, v in pairs if not (k.lower() in {"amp", "outputtype"} and v in {"", "1", "amp"})]
    return urlencode(sorted(pairs))


def is_tracking(name: str) -> bool:
    lowered = name.lower()
    return lowered in TRACKING_PARAMS or lowered.startswith(TRACKING_PREFIXES)


def same_site(a: str, b: str) -> bool:
    """True when two URLs are on the same host (www., m. and amp. ignored)."""
    return site_host(urlsplit(a).hostname or "") == site_host(urlsplit(b).hostname or "")


def article_id(url: str) -> str:
    """Stable article id: derived from the canonical URL only."""
    return hashlib.sha256(url_key(url).encode()).hexdigest()[:24]


def article_ref(doc_id: str) -> bytes:
    """8 bytes naming an article inside the shared indexes (near-duplicates, stories)."""
    return hashlib.blake2b(doc_id.encode(), digest_size=8).digest()


def normalize_text(text: str) -> str:
    """Case-, accent- and punctuation-insensitive form of a body, for exact-copy hashing."""
    return _normalized(text)


@lru_cache(maxsize=32)  # the body hash and the near-duplicate signature of a batch's articles meet here
def _normalized(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text.casefold())
    return " ".join(WORD_RE.findall(strip_combining(folded)))


def strip_combining(text: str) -> str:
    """The text without its combining characters (the accents NFKD split off)."""
    if text.isascii():
        return text
    for mark in {c for c in MARK_RE.findall(text) if unicodedata.combining(c)}:
        text = text.replace(mark, "")
    return text


def content_hash(text: str) -> str:
    return hashlib.sha256(normalize_text(text).encode()).hexdigest()[:32]


def word_count(text: str) -> int:
    return len(WORD_RE.findall(text))
