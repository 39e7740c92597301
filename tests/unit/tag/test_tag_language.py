"""Which language's term lists apply: the text's own when the page declares another."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from ingest.tag.language import detect, effective_language
from ingest.tag.match import terms_language
from ingest.tag.terms import WORD_RE, fold_all
from ingest.tag.topics import load_topics, tag_article

GERMAN = "Die Regierung hat am Montag eine Waffenruhe für die Region angekündigt, sagte der Sprecher."
ENGLISH = "The government said on Monday that it was ready for a ceasefire with its neighbour."
SPANISH = "El Gobierno anunció el lunes un alto el fuego para la región, según el portavoz."
UKRAINIAN_SENTENCE = "Уряд оголосив, що перемир'я набуде чинності після того, як сторони підпишуть угоду."
UKRAINIAN = UKRAINIAN_SENTENCE + " Але це ще не кінець."
RUSSIAN = "Правительство заявило, что перемирие вступит в силу после того, как стороны подпишут его."


def folded(text: str) -> list[str]:
    return fold_all(WORD_RE.findall(text))


@pytest.mark.parametrize(
    ("text", "language"),
    [(GERMAN, "de"), (ENGLISH, "en"), (SPANISH, "es"), (UKRAINIAN, "uk"), (RUSSIAN, "ru")],
)
def test_detects_the_language_of_running_text(text: str, language: str) -> None:
    assert detect(folded(text))[0] == language


def test_a_headline_alone_is_too_short_to_say() -> None:
    assert detect(folded("Waffenruhe in Kiew"))[0] is None


def test_the_text_wins_over_a_wrong_declaration() -> None:
    assert effective_language("en", folded(GERMAN)) == "de"
    assert effective_language("en-GB", folded(ENGLISH)) == "en"
    assert effective_language("ru", folded(UKRAINIAN)) == "uk"
    # one sentence: three Ukrainian function words, no Russian one: every language's lists
    assert effective_language("ru", folded(UKRAINIAN_SENTENCE)) is None
    assert effective_language(None, folded(SPANISH)) == "es"


def test_without_a_clear_winner_the_declaration_stands_unless_its_words_are_missing() -> None:
    mixed = folded("der die und the and of")  # three German, three English function words
    assert detect(mixed)[0] is None
    assert effective_language("en", mixed) == "en"
    assert effective_language("fr", mixed) is None  # no French word at all: every list applies
    assert effective_language("pt", folded("Kyiv Moscow Putin")) == "pt"  # no evidence either way


def write_topics(tmp_path: Path) -> Path:
    path = tmp_path / "topics.toml"
    path.write_text(
        textwrap.dedent("""
        [aliases.truce]
        en = ["ceasefire", "truce"]
        de = ["Waffenruhe"]
        [aliases.council]
        en = ["council"]
        de = ["Rat"]
        [[topic]]
        slug = "truce"
        name = "Truce"
        description = "test topic"
        query = "@truce"
        min_score = 1
        [[topic]]
        slug = "council"
        name = "Council"
        description = "test topic"
        query = "@council"
        min_score = 1
        """),
        encoding="utf-8",
    )
    return path


def test_german_page_declared_english_still_gets_its_topic(tmp_path: Path) -> None:
    topics = load_topics(write_topics(tmp_path))
    found = tag_article(topics, title="Neue Lage", text=GERMAN, language="en")
    assert [m.slug for m in found] == ["truce"]
    assert found[0].evidence[0].term == "Waffenruhe"
    assert terms_language("Neue Lage", GERMAN, "en") == "de"


def test_false_friends_stay_apart_whatever_the_page_declares(tmp_path: Path) -> None:
    topics = load_topics(write_topics(tmp_path))
    text = "The rat ran across the square while the mayor was speaking, and it was seen by many."
    for declared in ("en", "de", None):
        assert tag_article(topics, title="", text=text, language=declared) == ()
    german = "Der Rat hat am Dienstag die neue Regel beschlossen, die auch für die Stadt gilt."
    assert [m.slug for m in tag_article(topics, title="", text=german, language="en")] == ["council"]


def test_a_folded_word_that_holds_a_space_is_no_match_and_no_error(tmp_path: Path) -> None:
    path = tmp_path / "topics.toml"
    topic = '[[topic]]\nslug = "t"\nname = "T"\ndescription = "d"\nquery = "الله"\nmin_score = 0\n'
    path.write_text(topic, encoding="utf-8")
    # U+FDFA folds (NFKD) to four words: a term must not match inside it
    assert tag_article(load_topics(path), title="", text="\ufdfa", language=None) == ()
    assert [m.slug for m in tag_article(load_topics(path), title="", text="الله", language=None)] == ["t"]
