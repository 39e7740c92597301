"""Copies of an article, made programmatically: the kinds of copy newswire must recognise.

Each kind takes a base text and a seeded `random.Random` and returns the copy's text: a wire
reprint (dateline and sign-off), a bottom trim, a grown version, a copy-edit of a given share of
the words (substitutions, insertions and deletions spread over the body), a rewritten lead, and
pairs of them. New words come from a vocabulary of our own, never from another story, so a copy
shares text with its own original only. `site_page` wraps a body in a site's boilerplate and
byline, as extraction leaks them. Used by tests/unit/dedup/test_dedup.py, tests/unit/streams/test_publish.py
and bench/dedup.py.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable

FRESH_TEXT = (
    "meanwhile residents gathered outside the town hall where volunteers handed out leaflets about the "
    "new timetable and several shop owners complained that deliveries had been delayed for a second "
    "morning while a spokesperson for the regional office promised a fuller update by the weekend "
    "analysts cautioned that the figures were provisional and could be revised once the remaining "
    "districts reported their numbers to the ministry later in the afternoon commuters described long "
    "queues at the main station and a school head said pupils would be allowed to leave early"
)
FRESH = FRESH_TEXT.split()
CITIES = ["ALDHAM", "LONDON", "GENEVA", "NAIROBI", "LIMA", "OSLO"]
AGENCIES = ["(Meridian Wire)", "(Wire)", "(Reuters)", "(AP)"]
SIGN_OFF = (
    "Reporting by Ana Lima and Tom Berg; additional reporting by Clare Dunn; editing by Piet Vos.\n"
    "This story was published from a syndicated feed and has not been edited by our staff."
)

Kind = Callable[[str, random.Random], str]


def fresh_words(n: int, rng: random.Random) -> list[str]:
    """n words of new text (a run of our own vocabulary from a random start)."""
    start = rng.randrange(len(FRESH))
    return [FRESH[(start + i) % len(FRESH)] for i in range(n)]


def reprint(text: str, rng: random.Random) -> str:
    """A wire reprint: dateline and agency before, credits and a syndication note after."""
    return f"{rng.choice(CITIES)} {rng.choice(AGENCIES)} — {text}\n{SIGN_OFF}"


def trim(keep: float) -> Kind:
    """The first `keep` of the words (cut mid-paragraph, as a bottom trim can be)."""

    def kind(text: str, rng: random.Random) -> str:
        words = text.split(" ")
        return " ".join(words[: max(1, round(len(words) * keep))])

    return kind


def grown(share: float) -> Kind:
    """`share` more words of new text: half as new posts on top, half as paragraphs below."""

    def kind(text: str, rng: random.Random) -> str:
        need = round(len(text.split()) * share)
        top, bottom = fresh_words(need // 2, rng), fresh_words(need - need // 2, rng)
        return f"Update: {' '.join(top)}.\n\n{text}\n\n{' '.join(bottom).capitalize()}."

    return kind


def copy_edit(rate: float) -> Kind:
    """`rate` of the words edited at random places: a third substituted, a third deleted, a third
    with a word inserted before them."""

    def kind(text: str, rng: random.Random) -> str:
        return edit_words(text, rate, rng)

    return kind


def edit_words(text: str, rate: float, rng: random.Random) -> str:
    tokens = text.split(" ")
    chosen = rng.sample(range(len(tokens)), round(rate * len(tokens)))
    for i in sorted(chosen, reverse=True):
        action = rng.randrange(3)
        if action == 0:
            tokens[i] = rng.choice(FRESH)
        elif action == 1 and len(tokens) > 3:
            del tokens[i]
        else:
            tokens.insert(i, rng.choice(FRESH))
    return " ".join(tokens)


def rewritten_lead(text: str, rng: random.Random) -> str:
    """The lead rewritten: the first paragraph, or its first sentence when that paragraph is
    longer than a news lead (60 words), replaced by as many new words."""
    paragraph = next(p for p in text.split("\n") if p.strip())
    lead = paragraph
    if len(paragraph.split()) > 60:
        lead = re.split(r"(?<=[.!?])\s+", paragraph)[0]
    fresh = " ".join(fresh_words(len(lead.split()), rng)).capitalize() + "."
    return text.replace(lead, fresh, 1)


def combined(*kinds: Kind) -> Kind:
    def kind(text: str, rng: random.Random) -> str:
        for each in kinds:
            text = each(text, rng)
        return text

    return kind


KINDS: dict[str, Kind] = {
    "reprint": reprint,
    "trim 70%": trim(0.7),
    "grown +1/3": grown(1 / 3),
    "copy-edit 2%": copy_edit(0.02),
    "copy-edit 6%": copy_edit(0.06),
    "copy-edit 10%": copy_edit(0.10),
    "rewritten lead": rewritten_lead,
    "trim + copy-edit 6%": combined(copy_edit(0.06), trim(0.7)),
    "rewritten lead + trim": combined(rewritten_lead, trim(0.7)),
    "reprint + copy-edit 6%": combined(copy_edit(0.06), reprint),
}
URL_KINDS = ("AMP URL", "tracking parameters")  # same body, another URL of the same article


def edited_title(title: str, rng: random.Random) -> str:
    return rng.choice(["UPDATE 1-", "Analysis: ", ""]) + title + rng.choice([" (updated)", " - report", ""])


SITES = {
    "a": ("Listen to this article. Sign up for the morning briefing.", "By {author}, staff reporter",
          "Thank you for reading. Our journalism depends on subscribers: join today for full access to "
          "every story, the puzzles and the weekend magazine. Comments are moderated. All rights reserved."),
    "b": ("Advertisement. Share this story on social media.", "{author} | News desk",
          "Have a tip for our reporters? Write to the newsroom through the contact page; we read every "
          "message. Follow us for breaking news alerts. Copyright, all rights reserved."),
}  # fmt: skip


def site_page(text: str, site: str, author: str) -> str:
    """The body as a site's extraction may leak it: a header line, a byline, a footer."""
    header, byline, footer = SITES[site]
    return f"{header}\n{byline.format(author=author)}\n{text}\n{footer}"
