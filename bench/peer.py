"""The peer of bench/pipeline.py: newspaper4k downloading and parsing article URLs.

    var/bench-peer-venv/bin/python bench/peer.py URLS_FILE [--procs N] [--threads T]

Runs in its own venv (newspaper4k's dependencies stay out of newswire's) and imports
nothing from newswire. N processes (one per core by default) each take every N-th URL
and run it through `Article.download()` + `Article.parse()` on a thread pool of T, as
`newspaper.mthreading.fetch_news` does; a page it fails on counts, unparsed (a few corpus pages
in Korean or Japanese need nltk, not installed). Image fetching is off and tldextract uses its
bundled suffix list (the caller sets TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS empty), so
nothing leaves loopback. All processes start together after their imports; prints one
JSON line: articles, parsed (with text), start and end (Unix time), newspaper's version.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import newspaper
from newspaper.article import ArticleDownloadState


def config() -> Any:
    conf = newspaper.Config()
    conf.fetch_images = False
    conf.memorize_articles = False
    conf.request_timeout = 30
    return conf


def fetch_one(url: str, conf: Any) -> int:
    article = newspaper.Article(url, config=conf)
    article.download()
    if article.download_state != ArticleDownloadState.SUCCESS:
        return 0
    try:
        article.parse()
    except Exception:  # noqa: BLE001 - e.g. ImportError: Korean needs nltk, which is not installed
        return 0
    return 1 if article.text else 0


def work(urls: list[str], threads: int, barrier: Barrier, out: Any) -> None:
    conf = config()
    barrier.wait()
    start, cpu = time.time(), time.process_time()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        parsed = sum(pool.map(lambda u: fetch_one(u, conf), urls))
    cpu = time.process_time() - cpu
    out.put({"start": start, "end": time.time(), "articles": len(urls), "parsed": parsed, "cpu_s": cpu})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("urls", type=Path)
    parser.add_argument("--procs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--threads", type=int, default=10)
    args = parser.parse_args(argv)
    urls = args.urls.read_text().split()
    ctx = mp.get_context("fork")
    barrier, out = ctx.Barrier(args.procs), ctx.Queue()
    procs = [
        ctx.Process(target=work, args=(urls[i :: args.procs], args.threads, barrier, out))
        for i in range(args.procs)
    ]
    for p in procs:
        p.start()
    parts = [out.get() for _ in procs]
    for p in procs:
        p.join()
    print(json.dumps({
        "articles": sum(p["articles"] for p in parts), "parsed": sum(p["parsed"] for p in parts),
        "cpu_s": sum(p["cpu_s"] for p in parts),
        "start": min(p["start"] for p in parts), "end": max(p["end"] for p in parts),
        "version": newspaper.__version__, "procs": args.procs, "threads": args.threads,
    }))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
