import pytest

from ingest.parse import FeedParseError, entry_key, parse_feed

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
