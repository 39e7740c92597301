"""Bytes to text for fetched feeds and pages: the one charset sniffer of the project.

Order: a byte-order mark; then valid UTF-8 (a declared charset is often wrong, and text that is
not UTF-8 is almost never valid UTF-8 by accident); then the declared charset (the Content-Type
header, then `<meta charset>` or the XML declaration); then detection. Labels for ISO-8859-1 and
ASCII mean windows-1252, as browsers take them (WHATWG encoding labels).
"""

from __future__ import annotations

import codecs
import re

import charset_normalizer

SNIFF_BYTES = 4096  # where <meta charset> or the XML declaration is looked for
DETECT_BYTES = 100_000  # what charset detection reads
LATIN1_LABELS = frozenset({"iso-8859-1", "iso8859-1", "latin1", "latin-1", "l1", "us-ascii", "ascii"})
BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
HEADER_CHARSET = re.compile(r"charset\s*=\s*[\"']?([\w.:-]+)", re.IGNORECASE)
DOCUMENT_CHARSET = re.compile(
    rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([a-z0-9_.:-]+)"""
    rb"""|^\s*<\?xml[^>]{0,100}?encoding\s*=\s*["']([a-z0-9_.:-]+)""",
    re.IGNORECASE,
)


def decode(body: bytes, content_type: str | None = None) -> str:
    """The text of `body`; undecodable bytes become U+FFFD. Never raises."""
    for bom, name in BOMS:
        if body.startswith(bom):
            return body.decode(name, "replace")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        pass
    codec = declared_codec(body, content_type) or detected_codec(body)
    return body.decode(codec, "replace")


def declared_codec(body: bytes, content_type: str | None = None) -> str | None:
    """The charset the server or the document declares, as a Python codec name (None: none known)."""
    match = HEADER_CHARSET.search(content_type or "")
    codec = known_codec(match.group(1)) if match else None
    if codec:
        return codec
    found = DOCUMENT_CHARSET.search(body[:SNIFF_BYTES])
    if found is None:
        return None
    return known_codec((found.group(1) or found.group(2)).decode("ascii", "ignore"))


def detected_codec(body: bytes) -> str:
    best = charset_normalizer.from_bytes(body[:DETECT_BYTES]).best()
    return known_codec(best.encoding if best else None) or "utf-8"


def known_codec(label: str | None) -> str | None:
    """A charset label as a Python codec name; None for a label Python does not know."""
    if not label:
        return None
    label = label.strip().lower()
    if label in LATIN1_LABELS:
        return "cp1252"
    try:
        return codecs.lookup(label).name
    except LookupError:
        return None
