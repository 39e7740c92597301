"""Imports flow one way: workers -> ingest, config. `ingest` never imports Celery, workers or settings."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN_IN_INGEST = ("celery", "kombu", "workers", "config", "newswire")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_ingest_is_unaware_of_celery_workers_and_settings() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_modules(path) & set(FORBIDDEN_IN_INGEST))
        for path in (ROOT / "ingest").glob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_config_and_workers_never_import_the_cli() -> None:
    for package in ("config", "workers"):
        for path in (ROOT / package).glob("*.py"):
            assert "newswire" not in imported_modules(path), path


def test_only_fetch_speaks_http() -> None:
    http_clients = {"httpx", "httpcore", "requests", "urllib3", "aiohttp"}
    users = sorted(p.name for p in (ROOT / "ingest").glob("*.py") if imported_modules(p) & http_clients)
    assert set(users) <= {"fetch.py", "netguard.py"}
