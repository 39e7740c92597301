"""Imports flow one way: workers -> ingest, config. Third-party shapes stop at their one adapter.

- `ingest` (every stage package) never imports Celery, kombu, workers, config or the CLI;
- `config` imports nothing of ours; `config` and `workers` never import the CLI;
- only the feed parser imports feedparser; only the extractor imports trafilatura and htmldate;
- only the fetch package speaks HTTP;
- nothing imports `bench` or `tests`.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CODE = ("ingest", "workers", "config", "newswire")
OURS = {"ingest", "workers", "config", "newswire", "bench", "tests"}
HTTP_CLIENTS = {"httpx", "httpcore", "requests", "urllib3", "aiohttp", "urllib.request", "http.client"}


def modules_of(path: Path) -> set[str]:
    """Every module a file imports, by full dotted name."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def tops(path: Path) -> set[str]:
    return {name.split(".")[0] for name in modules_of(path)}


def files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def where(paths: list[Path]) -> list[str]:
    return sorted(str(p.relative_to(ROOT)) for p in paths)


def test_every_stage_package_is_walked() -> None:
    stages = {p.parent.name for p in files("ingest") if p.parent != ROOT / "ingest"}
    assert {"fetch", "feeds", "extract", "dedup", "tag", "streams", "ops"} <= stages


def test_ingest_is_unaware_of_celery_workers_and_settings() -> None:
    forbidden = {"celery", "kombu", "workers", "config", "newswire"}
    offenders = {str(p.relative_to(ROOT)): sorted(tops(p) & forbidden) for p in files("ingest")}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_config_imports_nothing_of_ours() -> None:
    assert where([p for p in files("config") if tops(p) & OURS]) == []


@pytest.mark.parametrize("package", ["config", "workers"])
def test_config_and_workers_never_import_the_cli(package: str) -> None:
    assert where([p for p in files(package) if "newswire" in tops(p)]) == []


@pytest.mark.parametrize(
    ("library", "allowed"),
    [
        ("feedparser", {"ingest/feeds/parse.py"}),
        ("trafilatura", {"ingest/extract/article.py"}),
        ("htmldate", {"ingest/extract/article.py"}),
    ],
)
def test_third_party_shapes_stop_at_their_adapter(library: str, allowed: set[str]) -> None:
    users = [p for package in CODE for p in files(package) if library in tops(p)]
    assert set(where(users)) <= allowed


def test_only_the_fetch_package_speaks_http() -> None:
    def speaks_http(path: Path) -> bool:
        return any(name.split(".")[0] in HTTP_CLIENTS or name in HTTP_CLIENTS for name in modules_of(path))

    users = [p for package in CODE for p in files(package) if speaks_http(p)]
    outside = [p for p in users if not p.is_relative_to(ROOT / "ingest/fetch")]
    assert where(outside) == []


def test_nothing_imports_bench_or_tests() -> None:
    users = [p for package in CODE for p in files(package) if tops(p) & {"bench", "tests"}]
    assert where(users) == []
