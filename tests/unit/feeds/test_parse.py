import pytest

from ingest.feeds.parse import MAX_ENTRIES, FeedParseError, cut_entries, entry_key, open_elements, parse_feed
from ingest.models import FeedEntry

RSS = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/"
     xmlns:sy="http://purl.org/rss/1.0/modules/syndication/">
<channel><title>Harbour Gazette</title><link>https://gazette.test/</link>
<sy:updatePeriod>hourly</sy:updatePeriod><sy:updateFrequency>2</sy:updateFrequency>
<item><title>Port strike ends</title><link>/port/strike-ends</link>
  <guid isPermaLink="false">gazette-101</guid><pubDate>Wed, 25 Nov 2026 10:15:00 +0100</pubDate>
  <description>Dock workers voted to return.</description>
  <content:encoded><![CDATA[<p>Dock workers voted on Tuesday to return.</p>]]></content:encoded></item>
<item><title>Ferry timetable</title><link>https://gazette.test/ferry</link>
  <description>Winter sailings change.</description></item>
</channel></rss>"""

ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Valley Wire</title><id>urn:valley</id>
<updated>2026-11-26T08:00:00Z</updated>
<entry><title>Bridge reopens</title><id>tag:valley.test,2026:1</id>
  <link rel="alternate" href="https://valley.test/bridge"/><updated>2026-11-26T08:00:00Z</updated>
  <author><name>Ana Ruiz</name></author><summary>The old bridge reopened.</summary></entry>
</feed>"""

JSON_FEED = b"""{"version": "https://jsonfeed.org/version/1.1", "title": "Plain Post",
 "items": [{"id": "p-1", "url": "https://plain.test/a", "title": "First item",
            "content_html": "<p>Hello</p>", "date_published": "2026-11-26T09:30:00+02:00",
            "authors": [{"name": "Lee Park"}]},
           {"id": "p-2", "url": "b", "content_text": "No title here"}]}"""


def test_rss_entries_are_normalized() -> None:
    page = parse_feed(RSS, "https://gazette.test/rss.xml")
    assert page.title == "Harbour Gazette"
    first = page.entries[0]
    assert first.link == "https://gazette.test/port/strike-ends"  # relative link resolved
    assert first.guid == "gazette-101"
    assert first.published_at == "2026-11-25T09:15:00Z"  # converted to UTC
    assert "Dock workers voted on Tuesday" in first.content_html
    assert first.summary == "Dock workers voted to return."
    assert page.ttl_s == 1800  # sy: hourly, twice


def test_atom_entries_carry_authors_and_dates() -> None:
    page = parse_feed(ATOM, "https://valley.test/atom.xml")
    entry = page.entries[0]
    assert (entry.title, entry.link, entry.authors) == (
        "Bridge reopens",
        "https://valley.test/bridge",
        ("Ana Ruiz",),
    )
    assert entry.published_at == "2026-11-26T08:00:00Z"


def test_json_feed_is_read_into_the_same_model() -> None:
    page = parse_feed(JSON_FEED, "https://plain.test/feed.json", "application/feed+json")
    assert page.title == "Plain Post"
    first, second = page.entries
    assert first.published_at == "2026-11-26T07:30:00Z"
    assert first.authors == ("Lee Park",)
    assert second.link == "https://plain.test/b"
    assert second.content_html == "No title here"


def test_recoverable_broken_xml_still_yields_entries() -> None:
    broken = RSS.replace(b"</channel></rss>", b"<item><title>Cut off & unescaped</title>")
    page = parse_feed(broken, "https://gazette.test/rss.xml")
    assert page.bozo
    assert [e.title for e in page.entries][:2] == ["Port strike ends", "Ferry timetable"]


@pytest.mark.parametrize(
    "body", [b"<html><body>Not a feed</body></html>", b"\x00\x01garbage", b'{"a": 1}', b"{"]
)
def test_documents_that_are_not_feeds_raise_a_clear_error(body: bytes) -> None:
    with pytest.raises(FeedParseError, match="not a feed"):
        parse_feed(body, "https://x.test/feed")


def test_entry_keys_are_stable_and_fall_back_in_order() -> None:
    counts = {"dup": 2}
    by_guid = entry_key("g1", "https://a/1", "T", "S", counts)
    assert by_guid == entry_key("g1", "https://a/other", "T2", "S2", counts)  # GUID wins
    assert entry_key("dup", "https://a/1", "T", "S", counts) != entry_key(
        "dup", "https://a/2", "T", "S", counts
    )
    assert entry_key(None, "https://a/1", "T", "S", {}) != entry_key(None, "https://a/2", "T", "S", {})
    assert entry_key(None, None, "T", "S", {}) != entry_key(None, None, "T", "S2", {})


def test_valid_feed_without_items_is_not_an_error() -> None:
    empty = b'<?xml version="1.0"?><rss version="2.0"><channel><title>Quiet</title></channel></rss>'
    page = parse_feed(empty, "https://quiet.test/rss.xml", "application/rss+xml")
    assert (page.title, page.entries) == ("Quiet", ())


# --- hostile documents: entity expansion and oversized feeds ---------------------------------------

ONE_ITEM = b'<rss version="2.0"><channel><title>T</title><item><title>%s</title><link>https://h.test/1</link></item></channel></rss>'


def with_doctype(subset: bytes, title: bytes) -> bytes:
    return b'<?xml version="1.0"?>\n<!DOCTYPE rss [\n' + subset + b"\n]>\n" + ONE_ITEM % title


BILLION_LAUGHS = with_doctype(
    b'<!ENTITY lol "lol">\n'
    + b"\n".join(
        b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
        for i in range(1, 10)
    ),
    b"&lol9;",
)
# feedparser keeps a literal entity like this one and expands it in both of its parsers:
# unscreened, this 900 KB document took 47 s and 4.4 GB to parse
QUADRATIC_BLOWUP = with_doctype(b'<!ENTITY a "' + b"A" * 5000 + b'">', b"&a;" * 300_000)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (BILLION_LAUGHS, "entity 'lol1' refers to other entities"),
        (QUADRATIC_BLOWUP, "entity 'a' has a 5,000-byte value"),
        (with_doctype(b'<!ENTITY x SYSTEM "file:///etc/passwd">', b"&x;"), "external entity 'x'"),
        (with_doctype(b'<!ENTITY x PUBLIC "-//x//EN" "http://127.0.0.2/x.dtd">', b"&x;"), "external entity"),
        (with_doctype(b"<!ENTITY % p \"<!ENTITY a 'b'>\"> %p;", b"x"), "parameter entit"),
        (b"junk\n" + QUADRATIC_BLOWUP[22:], "entity 'a' has"),  # no prolog, still read by feedparser
        (QUADRATIC_BLOWUP.replace(b"<!DOCTYPE", b"<!-- <b> --><!DOCTYPE"), "entity 'a' has"),
    ],
)
def test_entity_declarations_that_could_expand_are_refused(body: bytes, reason: str) -> None:
    with pytest.raises(FeedParseError, match=f"unsafe XML: {reason}"):
        parse_feed(body, "https://h.test/rss.xml", "application/rss+xml")


@pytest.mark.parametrize("codec", ["utf-16", "utf-7", "cp037"])
def test_no_encoding_hides_an_entity_declaration(codec: str) -> None:
    text = QUADRATIC_BLOWUP.decode()
    if codec == "utf-7":
        text = text.replace('<?xml version="1.0"?>', '<?xml version="1.0" encoding="utf-7"?>')
    with pytest.raises(FeedParseError):  # refused, or unreadable: never expanded
        parse_feed(text.encode(codec), "https://h.test/rss.xml")


def test_harmless_entities_and_entity_text_in_content_still_parse() -> None:
    decls = b'<!ENTITY nbsp "&#160;">\n<!ENTITY copy "(c)">'
    page = parse_feed(with_doctype(decls, b"a&nbsp;b &copy;"), "https://h.test/rss.xml")
    assert page.entries[0].title == "a b (c)"  # expanded (then spaces normalised)
    netscape = b'<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN" "http://x/rss-0.91.dtd">'
    assert parse_feed(netscape + ONE_ITEM % b"N", "https://h.test/rss.xml").entries[0].title == "N"
    lesson = b"<![CDATA[<!DOCTYPE x [<!ENTITY lol '&lol;&lol;'>]>]]>"
    assert parse_feed(ONE_ITEM % lesson, "https://h.test/rss.xml").entries


def numbered(kind: bytes, n: int) -> bytes:
    return b"".join(
        b"<%s><title>E%d</title><link>https://h.test/%d</link></%s>" % (kind, i, i, kind) for i in range(n)
    )


@pytest.mark.parametrize(
    "body",
    [
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>Big</title>'
        + numbered(b"item", 3000)
        + b"<ttl>30</ttl></channel></rss>",
        b'<feed xmlns="http://www.w3.org/2005/Atom"><title>Big</title>'
        + numbered(b"entry", 3000)
        + b"</feed>",
        b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/">'
        b'<channel rdf:about="x"><title>Big</title></channel>' + numbered(b"item", 3000) + b"</rdf:RDF>",
    ],
)
def test_a_feed_is_cut_to_max_entries_before_parsing_and_stays_well_formed(body: bytes) -> None:
    page = parse_feed(body, "https://h.test/feed", "application/xml")
    assert [e.title for e in page.entries] == [f"E{i}" for i in range(MAX_ENTRIES)]
    assert page.bozo is None  # closed again: the strict parser read it
    assert page.title == "Big"


def test_cut_entries_closes_what_was_open_and_leaves_small_feeds_alone() -> None:
    body = b"<rss><channel><title>x</title><item>1</item><item>2</item><item>3</item></channel></rss>"
    assert (
        cut_entries(body, 2) == b"<rss><channel><title>x</title><item>1</item><item>2</item></channel></rss>"
    )
    assert cut_entries(body, 3) == body
    assert open_elements(b'<?xml version="1.0"?><!-- <a> --><rss a=">"><channel><br/>') == [
        b"rss",
        b"channel",
    ]
    assert open_elements(b"<rss><channel></rss>") is None


@pytest.mark.parametrize(
    "body", [b"[" * 100_000 + b"]" * 100_000, b'{"version": "https://jsonfeed.org/version/1", ' * 3]
)
def test_json_bombs_fail_cleanly(body: bytes) -> None:
    with pytest.raises(FeedParseError, match="not a feed"):
        parse_feed(body, "https://h.test/feed.json", "application/feed+json")


def test_json_feed_is_capped_too() -> None:
    items = ",".join(f'{{"id": "{i}", "url": "https://h.test/{i}", "title": "E{i}"}}' for i in range(1200))
    body = f'{{"version": "https://jsonfeed.org/version/1.1", "items": [{items}]}}'.encode()
    assert len(parse_feed(body, "https://h.test/feed.json").entries) == MAX_ENTRIES


def test_enclosures_and_the_websub_hub_of_rss_atom_and_json_feed() -> None:
    rss = b"""<?xml version="1.0"?><rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom"
    xmlns:media="http://search.yahoo.com/mrss/"><channel><title>Cast</title>
    <atom:link rel="hub" href="https://hub.test/"/><atom:link rel="self" href="https://cast.test/rss"/>
    <item><title>Ep 1</title><link>https://cast.test/1</link>
      <enclosure url="/audio/1.mp3" type="audio/mpeg" length="123456"/>
      <media:content url="https://cast.test/1.jpg" type="image/jpeg"/>
      <enclosure url="https://cast.test/audio/1.mp3" type="audio/mpeg" length="junk"/></item>
    <item><title>Ep 2</title><link>https://cast.test/2</link></item></channel></rss>"""
    page = parse_feed(rss, "https://cast.test/rss")
    assert (page.hub, page.self_url) == ("https://hub.test/", "https://cast.test/rss")
    assert [e.to_dict() for e in page.entries[0].enclosures] == [
        {"url": "https://cast.test/audio/1.mp3", "type": "audio/mpeg", "length": 123456},
        {"url": "https://cast.test/1.jpg", "type": "image/jpeg", "length": None},
    ]
    assert page.entries[1].enclosures == ()
    assert "enclosures" not in page.entries[1].to_dict()  # messages of entries without any stay as they were
    assert FeedEntry.from_dict(page.entries[0].to_dict()) == page.entries[0]
    atom = b"""<feed xmlns="http://www.w3.org/2005/Atom"><title>A</title><link rel="hub" href="https://hub.test/a"/>
    <entry><id>x</id><title>X</title><link href="https://a.test/x"/>
    <link rel="enclosure" href="https://a.test/x.mp4" type="video/mp4" length="99"/></entry></feed>"""
    atom_page = parse_feed(atom, "https://a.test/atom")
    assert atom_page.hub == "https://hub.test/a"
    assert atom_page.self_url is None
    assert [e.url for e in atom_page.entries[0].enclosures] == ["https://a.test/x.mp4"]
    json_feed = b"""{"version": "https://jsonfeed.org/version/1.1", "title": "J", "feed_url": "https://j.test/f.json",
    "hubs": [{"type": "rssCloud", "url": "https://cloud.test/"}, {"type": "WebSub", "url": "https://hub.test/j"}],
    "items": [{"id": "1", "url": "https://j.test/1", "title": "One",
      "attachments": [{"url": "https://j.test/1.m4a", "mime_type": "audio/x-m4a",
                       "size_in_bytes": 2048}]}]}"""
    json_page = parse_feed(json_feed, "https://j.test/f.json")
    assert (json_page.hub, json_page.self_url) == ("https://hub.test/j", "https://j.test/f.json")
    assert [e.to_dict() for e in json_page.entries[0].enclosures] == [
        {"url": "https://j.test/1.m4a", "type": "audio/x-m4a", "length": 2048}
    ]
