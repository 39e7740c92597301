"""Which language's term lists to apply: the text's own, when the page declares another.

Page templates often declare the wrong `<html lang>` (a German article under `en`). The
tagger checks the declaration against the text with a cheap test: how many of the
article's words are frequent function words of each language it has lists for. The
words are already folded for matching, so this costs one set lookup per word (about
1/50 of what a character n-gram identifier costs; docs/decisions.md).

- The text clearly in one language: that language, whatever was declared.
- No clear winner (a short or mixed text) and the declared language's own function
  words are missing: no language, so the lists of every language apply.
- Otherwise the declared language stands.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from ingest.tag.terms import fold

# Frequent function words, written as in running text; a word listed for two languages
# says nothing and is dropped (`la`, `de`, `in`, ...).
_WORDS = {
    "en": "the and of to is was that with for on said it by from at has have are were which this will"
    " after but not its their would been who",
    "de": "der die das und ist nicht mit sich des dem den ein eine einer auch auf für von zu im wird"
    " wurde sind hat nach bei aus über sagte noch dass werden",
    "fr": "le les des du et est une dans pour qui que sur pas par au aux avec il elle ont été sont ce"
    " cette mais plus selon leur",
    "es": "el los las del y en que por con una para es se al su sus como más pero fue ha este esta lo"
    " según también entre sobre",
    "it": "il gli della delle dei degli del che e è per con una non sono alla al nel nella ha anche"
    " come più dalla dal questo secondo",
    "pl": "i w z na się nie do że to jest od po o za przez jak dla ale jego oraz co już tym które"
    " który także roku",
    "uk": "і та що це на до від як не з у в за його її які який також після щодо під був була було"
    " через між він вона але або коли якщо щоб вже ще із зі має буде цього тому",
    "ru": "и в на что это не с по к от для как из его её также после который которые при был была"
    " было через между он она года но или когда если чтобы уже ещё будет этого только",
}
MIN_HITS = 4  # function words needed before the text is said to be in a language
MARGIN = 2.0  # the winner needs this many times the runner-up's hits
MIN_DOUBT = 2  # function words of other languages that cast doubt on a declaration


def _table() -> dict[str, str]:
    folded = {lang: {fold(w) for w in words.split()} for lang, words in _WORDS.items()}
    counts = Counter(w for words in folded.values() for w in words)
    return {w: lang for lang, words in folded.items() for w in words if counts[w] == 1}


FUNCTION_WORDS = _table()
LANGUAGES = frozenset(_WORDS)


def detect(folded: Sequence[str]) -> tuple[str | None, Counter[str]]:
    """The language most of the function words belong to (None when no clear winner),
    and the hits per language."""
    hits = Counter(filter(None, map(FUNCTION_WORDS.get, folded)))
    ranked = hits.most_common(2)
    if not ranked or ranked[0][1] < MIN_HITS:
        return None, hits
    if len(ranked) == 2 and ranked[0][1] < MARGIN * ranked[1][1]:
        return None, hits
    return ranked[0][0], hits


def effective_language(declared: str | None, folded: Sequence[str]) -> str | None:
    """The language whose term lists apply to the article (None: every language's)."""
    code = declared.split("-")[0].lower() if declared else None
    detected, hits = detect(folded)
    if detected is not None:
        return detected
    if code in LANGUAGES and hits[code] == 0 and sum(hits.values()) >= MIN_DOUBT:
        return None  # the declared language's own words are missing: trust no declaration
    return code
