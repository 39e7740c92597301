"""Topic tagging: the definition language, matching, scoring, evidence and hot reload."""

from __future__ import annotations

import logging
import os
import textwrap
from pathlib import Path

import pytest

from ingest.models import TopicMatch
from ingest.tag.topics import TopicError, TopicsFile, explain_article, load_topics, tag_article

DEFAULTS = Path(__file__).resolve().parents[3] / "config" / "topics.toml"


def write(tmp_path: Path, body: str, name: str = "topics.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body).lstrip(), encoding="utf-8")
    return path


def one_topic(tmp_path: Path, query: str, *, extra: str = "", min_score: float = 0) -> Path:
    return write(
        tmp_path,
        f"""
        {extra}
        [[topic]]
        slug = "t"
        name = "T"
        description = "test topic"
        query = '''{query}'''
        min_score = {min_score}
        """,
    )


def slugs(path: Path, title: str, text: str = "", language: str | None = None) -> set[str]:
    found = tag_article(load_topics(path), title=title, text=text, language=language)
    return {m.slug for m in found}


def matches(tmp_path: Path, query: str, text: str, *, title: str = "", **kw: object) -> bool:
    path = one_topic(tmp_path, query, **kw)  # type: ignore[arg-type]
    return "t" in slugs(path, title, text)


# --- the defaults --------------------------------------------------------------------


def test_default_topics_all_load_with_name_and_description() -> None:
    topics = load_topics(DEFAULTS)
    assert len(topics.topics) >= 8
    for slug in ("ukraine-ceasefire-talks", "russia-sanctions", "us-trade-tariffs"):
        assert slug in topics.slugs
    for topic in topics.topics:
        assert topic.name.strip()
        assert len(topic.description) > 40
        assert topic.min_score > 0


def test_default_tags_a_ceasefire_story_with_title_evidence() -> None:
    found = tag_article(
        load_topics(DEFAULTS),
        title="Zelensky says Ukraine ready for ceasefire talks",
        text="Ukraine's president said on Sunday Kyiv was ready for talks with Russia. "
        "The Kremlin did not respond.",
        language="en",
    )
    assert [m.slug for m in found] == ["ukraine-ceasefire-talks"]
    evidence = found[0].evidence
    assert evidence[0].field == "title"
    assert evidence[0].term == "ceasefire"
    assert evidence[0].snippet == "Zelensky says Ukraine ready for ceasefire talks"


def test_default_ignores_gaza_truce_and_kyiv_football() -> None:
    topics = load_topics(DEFAULTS)
    gaza = tag_article(topics, title="Hamas and Israel agree Gaza truce", text="Mediators in Doha said.")
    football = tag_article(
        topics, title="Dynamo Kyiv beat Shakhtar 2-1", text="The derby in Kyiv was briefly halted."
    )
    assert "ukraine-ceasefire-talks" not in {m.slug for m in gaza}
    assert "middle-east-ceasefire" in {m.slug for m in gaza}
    assert football == ()


# --- the language ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "text", "expected"),
    [
        ("truce AND ukraine", "A truce in Ukraine.", True),
        ("truce AND ukraine", "A truce in Gaza.", False),
        ("truce OR armistice", "The armistice held.", True),
        ("truce AND NOT gaza", "A truce in Gaza.", False),
        ("truce AND NOT gaza", "A truce in Ukraine.", True),
        ("(truce OR ceasefire) AND (kyiv OR ukraine)", "Ceasefire, says Kyiv.", True),
        ("truce OR ceasefire AND kyiv", "A truce.", True),  # AND binds tighter than OR
        ('"peace talks"', "Peace talks resumed.", True),
        ('"peace talks"', "Talks about peace resumed.", False),
        ("negotiat*", "Negotiators met.", True),
        ("negotiat*", "They will renegotiate.", False),
        ('"peace negotiat*"', "Peace negotiations began.", True),
        ("cease-fire", "A cease fire was agreed.", True),
        ("cease-fire", "A cease-fire was agreed.", True),
        ('"штучн* інтелект*"', "Закон про штучний інтелект ухвалили.", True),
    ],
)
def test_boolean_phrases_and_wildcards(tmp_path: Path, query: str, text: str, expected: bool) -> None:
    assert matches(tmp_path, query, text) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ceasefire in ukraine", True),  # 1 word between
        ("ukraine ceasefire", True),  # either order, adjacent
        ("ceasefire a b ukraine", True),  # exactly 2 between
        ("ceasefire a b c ukraine", False),  # 3 between: over the limit
        ("ukraine a b c ceasefire", False),
    ],
)
def test_near_limit_is_honoured(tmp_path: Path, text: str, expected: bool) -> None:
    assert matches(tmp_path, "ceasefire NEAR/2 ukraine", text) is expected


def test_near_does_not_cross_from_title_to_text(tmp_path: Path) -> None:
    assert not matches(tmp_path, "ceasefire NEAR/5 ukraine", "Ukraine said no.", title="Ceasefire")


def test_near_with_or_groups_and_phrases(tmp_path: Path) -> None:
    query = '(truce OR "peace plan") NEAR/3 (kyiv OR moscow)'
    assert matches(tmp_path, query, "Moscow rejected the peace plan.")
    assert not matches(tmp_path, query, "Moscow, it was said on Monday, rejected the peace plan.")


def test_field_scope(tmp_path: Path) -> None:
    assert matches(tmp_path, "title:truce AND kyiv", "Kyiv agreed.", title="Truce agreed")
    assert not matches(tmp_path, "title:truce AND kyiv", "Kyiv agreed a truce.", title="News")
    assert matches(tmp_path, "text:(truce OR ceasefire)", "A truce.", title="News")
    assert not matches(tmp_path, "text:truce", "Nothing.", title="Truce")


def test_case_sensitive_terms(tmp_path: Path) -> None:
    assert matches(tmp_path, "case:US AND tariffs", "US tariffs rose.")
    assert not matches(tmp_path, "case:US AND tariffs", "Tariffs hurt us.")
    assert matches(tmp_path, "case:NATO*", "NATOs allies.")


@pytest.mark.parametrize(
    ("term", "text"),
    [
        ("Zelenskyy", "ZELENSKYY spoke."),
        ("trêve", "La TREVE tient."),
        ("Straße", "Die Strasse war gesperrt."),
        ("Selenskyj", "Selenskýj sprach."),
        ("перемир'я", "Кремль відкинув перемирʼя."),  # U+02BC modifier apostrophe
        ("перемир'я", "Кремль відкинув перемир’я."),  # U+2019
        ("Зеленський", "ЗЕЛЕНСЬКИЙ заявив."),
        ("Łódź", "in Lodz today"),
    ],
)
def test_casefold_and_diacritics(tmp_path: Path, term: str, text: str) -> None:
    assert matches(tmp_path, f'"{term}"', text)


ALIASES = """
[aliases.council]
en = ["council"]
de = ["Rat"]
any = ["Zelensk*", "Selenskyj"]
"""


def test_language_lists_apply_to_their_language(tmp_path: Path) -> None:
    path = one_topic(tmp_path, "@council", extra=ALIASES)
    assert slugs(path, "", "Der Rat tagte.", "de") == {"t"}
    assert slugs(path, "", "A rat ran past the council.", "en") == {"t"}  # via "council"
    assert slugs(path, "", "A rat ran past.", "en") == set()  # German "Rat" is not English
    assert slugs(path, "", "A rat ran past.", None) == {"t"}  # unknown language: all lists
    assert slugs(path, "", "Selenskyj said.", "en") == {"t"}  # `any` always applies
    assert slugs(path, "", "Der Rat tagte.", "de-AT") == {"t"}
    assert slugs(path, "", "El Rat.", "es") == {"t"}  # no Spanish list: all lists apply


def test_exclusion_vetoes_and_explains(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [[topic]]
        slug = "truce"
        name = "Truce"
        description = "truces, but not football"
        query = "truce"
        exclude = "title:(football OR derby)"
        min_score = 0
        """,
    )
    topics = load_topics(path)
    assert tag_article(topics, title="Derby ends in truce", text="") == ()
    assert tag_article(topics, title="Truce", text="") != ()
    [row] = explain_article(topics, title="Derby ends in truce", text="")
    assert row["matched"] is False
    assert row["reason"].startswith("excluded")


def test_title_outweighs_a_deep_body_mention(tmp_path: Path) -> None:
    path = one_topic(tmp_path, "truce", min_score=3)
    filler = "word " * 400
    assert slugs(path, "Truce agreed", "Nothing else.") == {"t"}
    assert slugs(path, "News", f"{filler} A truce.") == set()
    [row] = explain_article(load_topics(path), title="News", text=f"{filler} A truce.")
    assert row["parts"]["deep"] == 0.5
    assert row["reason"] == "score 0.5 below min_score 3"


def test_one_term_counts_at_most_twice_and_boosts_scale(tmp_path: Path) -> None:
    path = one_topic(tmp_path, "truce AND kyiv^0", min_score=0)
    [match] = tag_article(load_topics(path), title="", text="Kyiv truce truce truce.")
    assert match.score == 4.0  # two lead hits of "truce" at 2.0; Kyiv boosted to 0
    assert isinstance(match, TopicMatch)


# --- evidence --------------------------------------------------------------------------


def test_evidence_has_term_as_written_field_and_sentence(tmp_path: Path) -> None:
    path = one_topic(tmp_path, '"peace talks" OR truce')
    text = "Fighting went on. Officials said Peace Talks would resume in Geneva! Nothing else."
    [match] = tag_article(load_topics(path), title="A truce?", text=text)
    assert [(e.term, e.field, e.snippet) for e in match.evidence] == [
        ("truce", "title", "A truce?"),
        ("Peace Talks", "text", "Officials said Peace Talks would resume in Geneva!"),
    ]


def test_evidence_keeps_typographic_apostrophes_as_written(tmp_path: Path) -> None:
    path = one_topic(tmp_path, '"перемир\'я" OR truce')
    text = "Київʼs envoy’s note came first. Кремль відкинув перемирʼя у вівторок. Then a truce."
    [match] = tag_article(load_topics(path), title="", text=text)
    assert [(e.term, e.snippet) for e in match.evidence] == [
        ("перемирʼя", "Кремль відкинув перемирʼя у вівторок."),
        ("truce", "Then a truce."),
    ]


def test_evidence_snippet_is_trimmed_around_the_term(tmp_path: Path) -> None:
    path = one_topic(tmp_path, "truce")
    sentence = "alpha " * 60 + "the truce held " + "omega " * 60
    [match] = tag_article(load_topics(path), title="", text=sentence + ".")
    snippet = match.evidence[0].snippet
    assert len(snippet) <= 202
    assert "the truce held" in snippet
    assert snippet.startswith("…")
    assert snippet.endswith("…")


def test_long_title_snippet_is_trimmed(tmp_path: Path) -> None:
    path = one_topic(tmp_path, "truce")
    [match] = tag_article(load_topics(path), title="Truce " + "word " * 80, text="")
    assert match.evidence[0].snippet.startswith("Truce word")
    assert len(match.evidence[0].snippet) <= 202


def test_results_are_sorted_by_score(tmp_path: Path) -> None:
    body = "\n".join(
        f'[[topic]]\nslug = "{slug}"\nname = "N"\ndescription = "D"\nquery = "{q}"\nmin_score = 0\n'
        for slug, q in (("low", "kyiv"), ("high", "truce"))
    )
    path = write(tmp_path, body)
    found = tag_article(load_topics(path), title="Truce", text="Kyiv said.")
    assert [m.slug for m in found] == ["high", "low"]


def test_shared_subqueries_are_evaluated_per_topic(tmp_path: Path) -> None:
    body = "\n".join(
        f'[[topic]]\nslug = "{slug}"\nname = "N"\ndescription = "D"\nquery = "{q}"\nmin_score = 0\n'
        for slug, q in (("a", "(kyiv OR moscow) AND truce"), ("b", "(kyiv OR moscow) AND NOT truce"))
    )
    path = write(tmp_path, body)
    assert slugs(path, "Kyiv", "A truce.") == {"a"}
    assert slugs(path, "Kyiv", "No deal.") == {"b"}


# --- explain ---------------------------------------------------------------------------


def test_explain_gives_one_row_per_topic_with_reasons() -> None:
    topics = load_topics(DEFAULTS)
    rows = explain_article(
        topics,
        title="Russian drones hit Kyiv",
        text="Russia launched 400 drones at Ukraine. Peace talks remain stalled.",
        language="en",
    )
    assert [r["slug"] for r in rows] == list(topics.slugs)
    by_slug = {r["slug"]: r for r in rows}
    talks = by_slug["ukraine-ceasefire-talks"]
    assert set(talks) >= {"slug", "matched", "score", "min_score", "parts", "evidence", "reason"}
    assert talks["matched"] is False
    assert "below min_score" in talks["reason"]
    assert talks["evidence"][0]["term"] == "Peace talks"
    assert by_slug["us-trade-tariffs"]["reason"] == "none of the topic's terms found"
    hit = explain_article(topics, title="Kyiv agrees truce", text="A truce in Kyiv.", language="en")
    assert hit[0]["matched"] is True
    assert hit[0]["reason"] is None


def test_explain_names_the_failing_clause(tmp_path: Path) -> None:
    path = one_topic(tmp_path, "truce AND (kyiv OR moscow)")
    [row] = explain_article(load_topics(path), title="", text="A truce in Gaza.")
    assert row["reason"] == "query not satisfied: no (kyiv OR moscow)"


# --- invalid definitions -------------------------------------------------------------

VALID_HEAD = """\
[[topic]]
slug = "ok"
name = "OK"
description = "fine"
query = "truce"

"""


TOPIC = '[[topic]]\nslug = "a"\nname = "A"\ndescription = "d"\nquery = {query}\n'


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ('"(truce OR kyiv"', "missing ')'"),
        ('"truce)"', "unbalanced ')'"),
        ('"@nope"', "unknown alias '@nope'"),
        ('"a NEAR b"', "NEAR needs a distance"),
        ('"(a AND b) NEAR/3 c"', "NEAR needs terms"),
        ('"ne*"', "stem too short"),
        ('"neg*tiate"', "must end a word"),
        ('"NOT truce"', "without any of its terms"),
        ('"truce talks"', "missing AND/OR before 'talks'"),
        ('"titel:truce"', "unknown field 'titel'"),
        ('"truce^x"', "bad boost"),
        ("'\"truce'", "unterminated quote"),
        ('"truce AND"', "ends too early"),
        ('""', "'query' is missing or empty"),
    ],
)
def test_invalid_queries_name_file_line_and_reason(tmp_path: Path, query: str, reason: str) -> None:
    path = write(tmp_path, VALID_HEAD + TOPIC.format(query=query))
    line = 7 if "missing or empty" in reason else 11  # the [[topic]] line, or the query line
    with pytest.raises(TopicError) as info:
        load_topics(path)
    assert str(info.value).startswith(f"{path}:{line}: "), str(info.value)
    assert reason in str(info.value)


@pytest.mark.parametrize(
    ("body", "line", "reason"),
    [
        (TOPIC.format(query='"t"') + "minscore = 2\n", 6, "unknown key 'minscore'"),
        (TOPIC.format(query='"t"') + 'min_score = "high"\n', 6, "min_score must be a number"),
        (TOPIC.format(query='"t"').replace('"a"', '"Bad Slug"'), 2, "bad slug"),
        (TOPIC.format(query='"t"').replace('name = "A"\n', ""), 1, "'name' is missing"),
        (TOPIC.format(query='"t"').replace('"a"', '"ok"'), 2, "duplicate slug 'ok'"),
        (TOPIC.format(query='= "t"'), 5, "invalid TOML"),
    ],
)
def test_invalid_topics_name_file_line_and_reason(tmp_path: Path, body: str, line: int, reason: str) -> None:
    path = write(tmp_path, VALID_HEAD + body)
    with pytest.raises(TopicError) as info:
        load_topics(path)
    assert str(info.value).startswith(f"{path}:{line + 6}: "), str(info.value)
    assert reason in str(info.value)


@pytest.mark.parametrize(
    ("body", "line", "reason"),
    [
        ('[aliases.x]\nen = ["fine", "ab*"]\n', 2, "alias 'x': wildcard stem too short"),
        ('[aliases.x]\nEnglish = ["fine"]\n', 1, "'English' must be a language code"),
        ("[scoring]\ntitle = 3\nlede = 2\n", 3, "unknown scoring key 'lede'"),
        ("topics = []\n", 1, "unknown key 'topics'"),
    ],
)
def test_invalid_tables_name_file_line_and_reason(tmp_path: Path, body: str, line: int, reason: str) -> None:
    path = write(tmp_path, body + "\n" + VALID_HEAD)
    with pytest.raises(TopicError) as info:
        load_topics(path)
    assert str(info.value).startswith(f"{path}:{line}: "), str(info.value)
    assert reason in str(info.value)


def test_error_line_inside_a_multiline_query(tmp_path: Path) -> None:
    path = one_topic(tmp_path, "\n  truce\n  OR (kyiv AND\n  @missing)\n")
    with pytest.raises(TopicError, match=r"topics\.toml:8: .*unknown alias '@missing'"):
        load_topics(path)


def test_missing_file_and_empty_file(tmp_path: Path) -> None:
    with pytest.raises(TopicError, match="cannot read"):
        load_topics(tmp_path / "absent.toml")
    with pytest.raises(TopicError, match="no topics"):
        load_topics(write(tmp_path, "[scoring]\ntitle = 3\n"))


# --- hot reload --------------------------------------------------------------------------


def bump_mtime(path: Path, seconds: int) -> None:
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + seconds * 1_000_000_000))


def test_topics_file_reloads_on_change_and_keeps_last_good(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = one_topic(tmp_path, "truce")
    source = TopicsFile(path)
    first = source.get()
    assert source.get() is first  # unchanged: no reload
    path.write_text(path.read_text().replace('slug = "t"', 'slug = "u"'), encoding="utf-8")
    bump_mtime(path, 1)
    assert source.get().slugs == ("u",)
    good = source.get()
    with caplog.at_level(logging.ERROR, logger="ingest.tag.topics"):
        path.write_text(path.read_text().replace("truce", "(truce"), encoding="utf-8")
        bump_mtime(path, 2)
        assert source.get() is good
    assert "topics reload failed" in caplog.text
    path.write_text(path.read_text().replace("(truce", "armistice"), encoding="utf-8")
    bump_mtime(path, 3)
    assert source.get() is not good
    assert slugs(path, "Armistice", "") == {"u"}


def test_topics_file_without_a_good_version_raises(tmp_path: Path) -> None:
    path = one_topic(tmp_path, "(broken")
    with pytest.raises(TopicError, match="missing"):
        TopicsFile(path).get()


def test_topics_file_survives_the_file_disappearing(tmp_path: Path) -> None:
    path = one_topic(tmp_path, "truce")
    source = TopicsFile(path)
    good = source.get()
    path.unlink()
    assert source.get() is good
