"""Extraction benchmark: every corpus, newswire against today's code and plain trafilatura.

    python bench/extraction.py [--corpora DIR] [--jobs N] [--baseline REF] [--check-floor]
    python bench/extraction.py --cv            # rules chosen on some sites, scored on others

Every corpus under DIR (default ../shared/corpus beside the repository; a corpus is a
folder with html/<id>.html.gz and ground-truth.json {id: {"articleBody", "url"}}) in one
run. Each page goes through every extractor in turn inside one worker process (so machine
noise hits them alike); N workers (default: the cores) share the pages. Extractors:
newswire (`extract_article`, default rules), "baseline" (the same function as committed
at REF, default `BASELINE_REF`: the code before the recall safety net, loaded from
`git archive` into a temporary folder), trafilatura `extract()` defaults, and trafilatura
`bare_extraction(with_metadata=True)`. Prints per corpus precision, recall and F1
(bench/scoring.py), median/p95 ms per page, newswire's time against the baseline's, the
pages where newswire's recall is more than 0.2 below trafilatura's, and metadata checks
(bench/extraction_meta.py). With --check-floor, exits 1 when a corpus's newswire F1 is
under its line in bench/extraction_floor.txt. Timings are printed, never judged.
"""

from __future__ import annotations

import argparse
import gzip
import importlib
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import trafilatura  # noqa: E402

from bench import extraction_meta  # noqa: E402
from bench.scoring import Score, score_corpus, score_page  # noqa: E402
from ingest.extract.article import ExtractionError, extract_article, warm_up  # noqa: E402

CORPUS_DIRS = (ROOT.parent / "shared" / "corpus", Path("/work/shared/corpus"))
FLOOR_FILE = ROOT / "bench" / "extraction_floor.txt"
BASELINE_REF = "cba87b8"  # layout branch before issue 18: precision pass + balanced retry < 250
RECALL_GAP = 0.2
NEWSWIRE, BASELINE, DEFAULTS, METADATA = (
    "newswire",
    "baseline",
    "trafilatura defaults",
    "trafilatura +metadata",
)

Extractor = Callable[[bytes, str], Any]


@dataclass(frozen=True, slots=True)
class PageRef:
    corpus: str
    path: str
    id: str
    url: str


@dataclass(frozen=True, slots=True)
class PageResult:
    ref: PageRef
    texts: dict[str, str]
    times_ms: dict[str, float]
    meta: dict[str, Any]


# --- corpora ---------------------------------------------------------------------------


def default_corpora() -> Path:
    return next((d for d in CORPUS_DIRS if d.is_dir()), CORPUS_DIRS[0])


def find_corpora(root: Path) -> list[Path]:
    return sorted(d for d in root.iterdir() if (d / "ground-truth.json").is_file()) if root.is_dir() else []


def load_truth(corpus: Path) -> dict[str, dict[str, str]]:
    truth: dict[str, dict[str, str]] = json.loads((corpus / "ground-truth.json").read_text("utf-8"))
    return truth


def page_refs(corpus: Path) -> list[PageRef]:
    truth = load_truth(corpus)
    return [PageRef(corpus.name, str(corpus), key, truth[key]["url"]) for key in sorted(truth)]


def read_html(ref: PageRef) -> bytes:
    return gzip.decompress((Path(ref.path) / "html" / f"{ref.id}.html.gz").read_bytes())


# --- today's code, from git ------------------------------------------------------------


def export_baseline(ref: str) -> Path | None:
    """`ingest/` as committed at `ref`, in a temporary folder (None without git or ref)."""
    try:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", ref, "ingest"], capture_output=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    folder = Path(tempfile.mkdtemp(prefix="newswire-baseline-"))
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    return folder


def import_baseline(folder: Path) -> ModuleType:
    """The baseline's ingest.extract.article, imported beside today's `ingest` package: the
    current modules step aside while it loads (its functions keep their own globals)."""
    ours = {name: sys.modules.pop(name) for name in list(sys.modules) if is_ingest(name)}
    sys.path.insert(0, str(folder))
    try:
        return importlib.import_module("ingest.extract.article")
    finally:
        sys.path.remove(str(folder))
        for name in [name for name in sys.modules if is_ingest(name)]:
            del sys.modules[name]
        sys.modules.update(ours)


def is_ingest(name: str) -> bool:
    return name == "ingest" or name.startswith("ingest.")


# --- extractors, in each worker process --------------------------------------------------

EXTRACTORS: dict[str, Extractor] = {}


def newswire(html: bytes, url: str) -> Any:
    try:
        return extract_article(html, url)
    except ExtractionError:
        return None


def trafilatura_defaults(html: bytes, url: str) -> str:
    return trafilatura.extract(html) or ""


def trafilatura_metadata(html: bytes, url: str) -> str:
    doc = trafilatura.bare_extraction(html, url=url, with_metadata=True)
    return doc.text or "" if isinstance(doc, trafilatura.settings.Document) else ""


def start_worker(baseline: str | None) -> None:
    EXTRACTORS[NEWSWIRE] = newswire
    if baseline:
        module = import_baseline(Path(baseline))

        def run_baseline(html: bytes, url: str) -> Any:
            try:
                return module.extract_article(html, url)
            except module.ExtractionError:
                return None

        module.warm_up()
        EXTRACTORS[BASELINE] = run_baseline
    EXTRACTORS[DEFAULTS] = trafilatura_defaults
    EXTRACTORS[METADATA] = trafilatura_metadata
    warm_up()


def run_page(ref: PageRef) -> PageResult:
    html = read_html(ref)
    texts: dict[str, str] = {}
    times: dict[str, float] = {}
    article = None
    for name, extractor in EXTRACTORS.items():
        start = time.perf_counter()
        out = extractor(html, ref.url)
        times[name] = (time.perf_counter() - start) * 1000
        texts[name] = out if isinstance(out, str) else (out.text if out is not None else "")
        article = out if name == NEWSWIRE else article
    return PageResult(ref, texts, times, extraction_meta.page_facts(html, article))


def run_all(refs: list[PageRef], jobs: int, baseline: Path | None) -> list[PageResult]:
    """Every page through every extractor (first the warm-up, in each worker)."""
    args = (str(baseline) if baseline else None,)
    with ProcessPoolExecutor(jobs, initializer=start_worker, initargs=args) as pool:
        return list(pool.map(run_page, refs, chunksize=4))


# --- figures -----------------------------------------------------------------------------


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[round(share * (len(ordered) - 1))]


def print_corpus(name: str, results: list[PageResult], truth: dict[str, dict[str, str]]) -> Score:
    """One corpus's table; returns newswire's score."""
    names = list(results[0].texts)
    print(f"\n== {name}: {len(results)} pages")
    print(f"{'extractor':<24}{'P':>8}{'R':>8}{'F1':>8}{'med ms':>9}{'p95 ms':>9}")
    scores: dict[str, Score] = {}
    for extractor in names:
        pairs = ((r.texts[extractor], truth[r.ref.id]["articleBody"]) for r in results)
        s = scores[extractor] = score_corpus(pairs)
        times = [r.times_ms[extractor] for r in results]
        med, p95 = statistics.median(times), percentile(times, 0.95)
        print(f"{extractor:<24}{s.precision:>8.4f}{s.recall:>8.4f}{s.f1:>8.4f}{med:>9.1f}{p95:>9.1f}")
    print_time_ratio(results)
    return scores[NEWSWIRE]


def print_time_ratio(results: list[PageResult]) -> None:
    if BASELINE not in results[0].times_ms:
        print("(no baseline: git or the baseline commit is missing)")
        return
    ours = [r.times_ms[NEWSWIRE] for r in results]
    base = [r.times_ms[BASELINE] for r in results]
    med = statistics.median(ours) / statistics.median(base)
    p95 = percentile(ours, 0.95) / percentile(base, 0.95)
    print(f"newswire time / baseline's, same run: median {med:.3f}, p95 {p95:.3f}")


def recall_gaps(results: list[PageResult], truth: dict[str, dict[str, str]]) -> Iterator[str]:
    """Pages where newswire's recall is more than RECALL_GAP below trafilatura's (+metadata)."""
    for r in results:
        gold = truth[r.ref.id]["articleBody"]
        ours, theirs = score_page(r.texts[NEWSWIRE], gold)[1], score_page(r.texts[METADATA], gold)[1]
        if ours < theirs - RECALL_GAP:
            yield f"  {r.ref.id}  recall {ours:.2f} vs {theirs:.2f}  {r.ref.url[:90]}"


def print_gaps(results: list[PageResult], truth: dict[str, dict[str, str]]) -> None:
    gaps = list(recall_gaps(results, truth))
    print(f"pages where newswire's recall is > {RECALL_GAP} below trafilatura's: {len(gaps)}")
    print("\n".join(gaps))


def check_floors(scores: dict[str, Score]) -> int:
    """1 when a corpus listed in the floor file scores under its floor (or was not run)."""
    failed = 0
    for line in FLOOR_FILE.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        corpus, floor = line.split()
        score = scores.get(corpus)
        verdict = "NOT RUN" if score is None else "ok" if score.f1 >= float(floor) else "BELOW FLOOR"
        f1 = f"{score.f1:.4f}" if score else "-"
        print(f"floor {corpus} {float(floor):.3f}: newswire F1 {f1} -> {verdict}")
        failed |= verdict != "ok"
    return failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--corpora", type=Path, default=default_corpora())
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--baseline", default=BASELINE_REF, help="git ref of today's code ('' = none)")
    parser.add_argument("--check-floor", action="store_true")
    parser.add_argument("--cv", action="store_true", help="cross-validate the rules by site")
    args = parser.parse_args(argv)
    corpora = find_corpora(args.corpora)
    if not corpora:
        print(f"no corpus under {args.corpora}; skipping the benchmark")
        return 0
    if args.cv:
        from bench import extraction_cv  # noqa: PLC0415 (only this mode needs it)

        return extraction_cv.main(corpora, args.jobs)
    return run_benchmark(corpora, args.jobs, args.baseline, check=args.check_floor)


def run_benchmark(corpora: list[Path], jobs: int, ref: str, *, check: bool) -> int:
    baseline = export_baseline(ref) if ref else None
    refs = [ref for corpus in corpora for ref in page_refs(corpus)]
    started = time.perf_counter()
    results = run_all(refs, jobs, baseline)
    print(f"{len(refs)} pages, {jobs} workers, {time.perf_counter() - started:.0f} s; baseline {ref or '-'}")
    scores: dict[str, Score] = {}
    for corpus in corpora:
        mine = [r for r in results if r.ref.corpus == corpus.name]
        truth = load_truth(corpus)
        scores[corpus.name] = print_corpus(corpus.name, mine, truth)
        print_gaps(mine, truth)
        extraction_meta.print_checks(mine, truth)
    print("\n== all corpora")
    print_time_ratio(results)
    return check_floors(scores) if check else 0


if __name__ == "__main__":
    sys.exit(main())
