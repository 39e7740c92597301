"""Extraction benchmark: ingest.extract.article against plain trafilatura, same run, same pages.

    python bench/extraction.py [--corpus PATH] [--check-floor]

The corpus has the article-extraction-benchmark layout: html/<id>.html.gz and
ground-truth.json ({id: {"articleBody": ..., "url": ...}}). Each page goes through every
extractor in turn (so machine noise hits them alike), after one warm-up page. Prints
precision, recall, F1 and median/p95 milliseconds per page, and newswire's ratios to
trafilatura's defaults. "trafilatura +metadata" is the speed reference the pipeline is
held to: bare_extraction with metadata, as trafilatura users run it.
With --check-floor, exits 1 when newswire's F1 is under bench/extraction_floor.txt.
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import trafilatura  # noqa: E402

from bench.scoring import Score, score_corpus  # noqa: E402
from ingest.extract.article import ExtractionError, extract_article, warm_up  # noqa: E402

DEFAULT_CORPUS = Path("/work/shared/corpus/article-extraction-benchmark")
FLOOR_FILE = ROOT / "bench" / "extraction_floor.txt"

Extractor = Callable[[bytes, str], str]


@dataclass(frozen=True, slots=True)
class Page:
    id: str
    url: str
    html: bytes
    expected: str


@dataclass(frozen=True, slots=True)
class Result:
    name: str
    score: Score
    times_ms: list[float]

    @property
    def median_ms(self) -> float:
        return statistics.median(self.times_ms)

    @property
    def p95_ms(self) -> float:
        ordered = sorted(self.times_ms)
        return ordered[round(0.95 * (len(ordered) - 1))]


def newswire(html: bytes, url: str) -> str:
    try:
        return extract_article(html, url).text
    except ExtractionError:
        return ""


def trafilatura_defaults(html: bytes, url: str) -> str:
    return trafilatura.extract(html) or ""


def trafilatura_metadata(html: bytes, url: str) -> str:
    doc = trafilatura.bare_extraction(html, url=url, with_metadata=True)
    return doc.text or "" if isinstance(doc, trafilatura.settings.Document) else ""


EXTRACTORS: dict[str, Extractor] = {
    "newswire": newswire,
    "trafilatura defaults": trafilatura_defaults,
    "trafilatura +metadata": trafilatura_metadata,
}


def load_corpus(corpus: Path) -> list[Page]:
    truth = json.loads((corpus / "ground-truth.json").read_text(encoding="utf-8"))
    return [load_page(corpus, key, item) for key, item in sorted(truth.items())]


def load_page(corpus: Path, key: str, item: dict[str, str]) -> Page:
    html = gzip.decompress((corpus / "html" / f"{key}.html.gz").read_bytes())
    return Page(key, item["url"], html, item["articleBody"])


def run_all(pages: list[Page]) -> list[Result]:
    """Every page through every extractor in turn, after warming them up on the first page."""
    warm_up()
    for extractor in EXTRACTORS.values():
        extractor(pages[0].html, pages[0].url)
    predicted: dict[str, list[str]] = {name: [] for name in EXTRACTORS}
    times: dict[str, list[float]] = {name: [] for name in EXTRACTORS}
    for page in pages:
        for name, extractor in EXTRACTORS.items():
            start = time.perf_counter()
            predicted[name].append(extractor(page.html, page.url))
            times[name].append((time.perf_counter() - start) * 1000)
    expected = [page.expected for page in pages]
    return [
        Result(name, score_corpus(zip(predicted[name], expected, strict=True)), times[name])
        for name in EXTRACTORS
    ]


def print_table(results: list[Result], pages: int) -> None:
    print(f"{pages} pages")
    print(f"{'extractor':<24}{'P':>8}{'R':>8}{'F1':>8}{'med ms':>9}{'p95 ms':>9}")
    for r in results:
        s = r.score
        print(
            f"{r.name:<24}{s.precision:>8.4f}{s.recall:>8.4f}{s.f1:>8.4f}{r.median_ms:>9.1f}{r.p95_ms:>9.1f}"
        )
    ours, base = results[0], results[1]
    print(
        f"{'newswire / defaults':<24}{ours.score.precision / base.score.precision:>8.3f}"
        f"{ours.score.recall / base.score.recall:>8.3f}{ours.score.f1 / base.score.f1:>8.3f}"
        f"{ours.median_ms / base.median_ms:>9.2f}{ours.p95_ms / base.p95_ms:>9.2f}"
    )


def check_floor(result: Result) -> int:
    floor = float(FLOOR_FILE.read_text(encoding="utf-8").strip())
    ok = result.score.f1 >= floor
    verdict = "ok" if ok else "BELOW FLOOR"
    print(f"floor {floor:.3f}: newswire F1 {result.score.f1:.4f} -> {verdict}")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--check-floor", action="store_true")
    args = parser.parse_args(argv)
    if not (args.corpus / "ground-truth.json").is_file():
        print(f"corpus not found at {args.corpus} (no ground-truth.json); skipping the benchmark")
        return 0
    pages = load_corpus(args.corpus)
    results = run_all(pages)
    print_table(results, len(pages))
    return check_floor(results[0]) if args.check_floor else 0


if __name__ == "__main__":
    sys.exit(main())
