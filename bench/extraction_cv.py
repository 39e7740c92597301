"""Rules chosen on some sites, scored on others: `python bench/extraction.py --cv`.

Each corpus is split into FOLDS folds by site (the host of the ground-truth URL, without
"www."), so that no site is both chosen on and scored on. Every page is extracted once per
rule variant (`ingest.extract.body.Rules`); variants that share a repaired tree share its
trafilatura passes, so the whole grid costs a few passes per page.

Two kinds of decision are cross-validated:
- the safety-net thresholds (page_share x switch_ratio x fill_gaps, and the net switched
  off): for each fold, the variant with the best mean F1 over the corpora on the *other*
  folds is chosen and scores the fold's pages; the pooled held-out pages give the
  cross-validated figure, printed beside the in-sample figure of the defaults;
- each rule that can be switched off (tree repairs, text clean-up, the second pass's
  focus): on or off, chosen the same way; its in-sample effect per corpus (defaults minus
  the rule off) and its cross-validated effect (held-out F1 minus the rule off) are printed.

The objective weighs the corpora equally, so a rule that helps one and hurts the other must
pay for itself across both.
"""

from __future__ import annotations

import dataclasses
import itertools
import zlib
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

from bench.extraction import PageRef, load_truth, page_refs, read_html
from bench.scoring import Score, score_page
from ingest.extract import pagemeta
from ingest.extract.article import (
    LIBRARY_FAILURES,
    ExtractionError,
    Passes,
    guess_authors,
    is_usable_text,
    parse_html,
    warm_up,
)
from ingest.extract.body import RULES, Rules, choose_body, page_chars
from ingest.extract.cleanup import repair_tree

FOLDS = 5
PAGE_SHARES = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
SWITCH_RATIOS = (0.3, 0.4, 0.5, 0.6)
SWITCHES = (
    "join_split_body",
    "lift_embedded_posts",
    "drop_link_lists",
    "drop_lead",
    "drop_boilerplate",
    "fill_gaps",
    "safety_net",
)
TREE_FIELDS = ("join_split_body", "lift_embedded_posts", "drop_link_lists")


def net_variants() -> dict[str, Rules]:
    """The safety-net grid, plus the net switched off (with either second-pass focus)."""
    grid = itertools.product(PAGE_SHARES, SWITCH_RATIOS, (True, False))
    variants = {
        f"share {share} switch {ratio} fill {'on' if fill else 'off'}": dataclasses.replace(
            RULES, page_share=share, switch_ratio=ratio, fill_gaps=fill
        )
        for share, ratio, fill in grid
    }
    for focus in ("recall", "balanced"):
        variants[f"no net, {focus} under 250"] = dataclasses.replace(
            RULES, safety_net=False, retry_focus=focus
        )
    return variants


def switch_variants() -> dict[str, Rules]:
    """Each switch flipped from its default (a rule that is off by default is tried on)."""
    off = {
        f"{name} {'off' if getattr(RULES, name) else 'on'}": dataclasses.replace(
            RULES, **{name: not getattr(RULES, name)}
        )
        for name in SWITCHES
    }
    return off | {"second pass balanced": dataclasses.replace(RULES, retry_focus="balanced")}


VARIANTS: dict[str, Rules] = {"defaults": RULES} | net_variants() | switch_variants()


# --- extraction of every variant, per page (in the workers) ------------------------------


TRUTH: dict[str, dict[str, dict[str, str]]] = {}


def score_variants(ref: PageRef) -> Scored:
    """Every variant's (precision, recall) on one page."""
    if ref.path not in TRUTH:
        TRUTH[ref.path] = load_truth(Path(ref.path))
    gold = TRUTH[ref.path][ref.id]["articleBody"]
    texts = variant_texts(ref)
    return Scored(ref.corpus, fold_of(ref.url), {v: score_page(t, gold) for v, t in texts.items()})


def variant_texts(ref: PageRef) -> dict[str, str]:
    html = read_html(ref)
    try:
        tree = parse_html(html)
        meta = pagemeta.read_meta(tree)
        title = pagemeta.find_title(tree, meta, ref.url)
        authors = pagemeta.find_authors(meta) or guess_authors(tree)
    except (ExtractionError, *LIBRARY_FAILURES):
        return dict.fromkeys(VARIANTS, "")
    texts: dict[str, str] = {}
    for tree_rules, names in tree_groups().items():
        texts |= group_texts(html, ref.url, title, authors, tree_rules, names)
    return texts


def tree_groups() -> dict[tuple[bool, ...], list[str]]:
    groups: dict[tuple[bool, ...], list[str]] = {}
    for name, rules in VARIANTS.items():
        groups.setdefault(tuple(getattr(rules, f) for f in TREE_FIELDS), []).append(name)
    return groups


def group_texts(
    html: bytes,
    url: str,
    title: str | None,
    authors: tuple[str, ...],
    key: tuple[bool, ...],
    names: list[str],
) -> dict[str, str]:
    """The variants that share one repaired tree, sharing its trafilatura passes."""
    tree = parse_html(html)
    repair_tree(tree, VARIANTS[names[0]])
    chars, raw = page_chars(tree), {}
    texts = {}
    for name in names:
        passes = Passes(tree, url, title, authors, VARIANTS[name], raw)
        try:
            text = choose_body(passes.text("precision"), passes.second, chars, VARIANTS[name])
        except LIBRARY_FAILURES:
            text = ""
        texts[name] = text if is_usable_text(text) else ""
    return texts


# --- folds and choices (in the parent) ---------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Scored:
    corpus: str
    fold: int
    scores: dict[str, tuple[float, float]]  # variant -> (precision, recall) of the page


def fold_of(url: str) -> int:
    host = (urlsplit(url).hostname or "").removeprefix("www.")
    return zlib.crc32(host.encode()) % FOLDS


def f1_of(pages: Iterable[Scored], variant: str) -> float:
    pairs = [page.scores[variant] for page in pages]
    if not pairs:
        return 0.0
    return Score(sum(p for p, _ in pairs) / len(pairs), sum(r for _, r in pairs) / len(pairs)).f1


def objective(pages: list[Scored], variant: str, corpora: list[str]) -> float:
    """Mean F1 over the corpora: each corpus weighs the same, whatever its size."""
    return sum(f1_of([p for p in pages if p.corpus == c], variant) for c in corpora) / len(corpora)


def cross_validate(
    pages: list[Scored], candidates: list[str], corpora: list[str]
) -> tuple[list[str], list[Scored]]:
    """Per fold: the candidate best on the other folds; the held-out pages scored with it
    (returned under the key "cv")."""
    chosen, held_out = [], []
    for fold in range(FOLDS):
        train = [p for p in pages if p.fold != fold]
        best = max(candidates, key=lambda v: objective(train, v, corpora))
        chosen.append(best)
        held_out += [dataclasses.replace(p, scores={"cv": p.scores[best]}) for p in pages if p.fold == fold]
    return chosen, held_out


def print_net(pages: list[Scored], corpora: list[str]) -> None:
    candidates = list(net_variants())
    chosen, held_out = cross_validate(pages, candidates, corpora)
    print("\n== safety-net thresholds, chosen per fold on the other folds:")
    for fold, name in enumerate(chosen):
        print(f"  fold {fold}: {name}")
    print(f"{'corpus':<32}{'in-sample (defaults)':>22}{'cross-validated':>17}{'no net (today)':>16}")
    for c in corpora:
        mine = [p for p in pages if p.corpus == c]
        cv = f1_of([p for p in held_out if p.corpus == c], "cv")
        today = f1_of(mine, "no net, balanced under 250")
        print(f"{c:<32}{f1_of(mine, 'defaults'):>22.4f}{cv:>17.4f}{today:>16.4f}")
    ranked = sorted(candidates, key=lambda v: -objective(pages, v, corpora))
    print("best in-sample variants (mean F1 over the corpora, then per corpus):")
    for name in ranked[:8]:
        per = "  ".join(f"{f1_of([p for p in pages if p.corpus == c], name):.4f}" for c in corpora)
        print(f"  {objective(pages, name, corpora):.4f}  {per}  {name}")


def print_switches(pages: list[Scored], corpora: list[str]) -> None:
    print("\n== each switch: F1 of the defaults minus F1 with it flipped; in-sample / cross-validated")
    print(f"{'rule':<36}" + "".join(f"{c[:20]:>24}" for c in corpora) + "  chosen per fold")
    for name in switch_variants():
        off = name
        chosen, held_out = cross_validate(pages, ["defaults", off], corpora)
        cells = []
        for c in corpora:
            mine = [p for p in pages if p.corpus == c]
            base = f1_of(mine, off)
            in_sample = f1_of(mine, "defaults") - base
            cv = f1_of([p for p in held_out if p.corpus == c], "cv") - base
            cells.append(f"{in_sample:+.4f} / {cv:+.4f}")
        votes = sum(v == "defaults" for v in chosen)
        print(f"{name:<36}" + "".join(f"{cell:>24}" for cell in cells) + f"  defaults in {votes}/{FOLDS}")


def main(corpora: list[Path], jobs: int) -> int:
    refs = [ref for corpus in corpora for ref in page_refs(corpus)]
    with ProcessPoolExecutor(jobs, initializer=warm_up) as pool:
        pages = list(pool.map(score_variants, refs, chunksize=4))
    names = [corpus.name for corpus in corpora]
    print(f"{len(pages)} pages, {FOLDS} folds by site, {len(VARIANTS)} rule variants")
    print_net(pages, names)
    print_switches(pages, names)
    return 0
