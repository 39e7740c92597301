"""Lua lives in `.lua` files beside its callers: documented, and in step with the Python constants."""

import ast
import re
from pathlib import Path

import pytest

from ingest.dedup import neardup, story

ROOT = Path(__file__).resolve().parents[2]
CODE = ("ingest", "workers", "newswire", "config")
LUA_WORDS = re.compile(r"redis\.call\(|\bKEYS\[\d|\bARGV\[\d|\blocal function\b")
LIBRARIES = {"neardup.lua", "story.lua"}  # functions only, prepended to the scripts that use them
SCRIPTS = sorted(p for d in ("ingest", "workers") for p in (ROOT / d).rglob("*.lua"))


def python_files() -> list[Path]:
    return sorted(p for d in CODE for p in (ROOT / d).rglob("*.py"))


def test_no_python_string_holds_lua() -> None:
    found = []
    for path in python_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and LUA_WORDS.search(node.value)
            ):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found == []


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_script_documents_its_keys_and_arguments(path: Path) -> None:
    text = path.read_text()
    header = "\n".join(line for line in text.splitlines() if line.startswith("--"))
    assert text.startswith("--")
    if path.name not in LIBRARIES:
        assert "KEYS" in header
        assert "ARGV" in header


def lua_constants(name: str) -> dict[str, float]:
    text = (ROOT / "ingest/dedup" / name).read_text()
    return {m[1]: float(m[2]) for m in re.finditer(r"^local ([A-Z_]+) = ([0-9.]+)$", text, re.M)}


def test_neardup_lua_constants_match_python() -> None:
    assert lua_constants("neardup.lua") == {
        "ND_ANCHORS": neardup.ANCHORS, "ND_MIN_ANCHORS": neardup.MIN_ANCHORS,
        "ND_MAX_CANDIDATES": neardup.MAX_CANDIDATES, "ND_SLOTS": neardup.NUM_PERM,
        "ND_SLICES": neardup.SLICES,
        "ND_MAX_REFS": neardup.MAX_REFS, "ND_FILL": neardup.BUCKET_FILL,
        "ND_MIN_BITS": neardup.MIN_BUCKET_BITS, "ND_MAX_BITS": neardup.MAX_BUCKET_BITS,
        "ND_CONTAINMENT_MIN": neardup.CONTAINMENT_MIN, "ND_CONTAINMENT_FLOOR": neardup.CONTAINMENT_FLOOR,
        "ND_LEAD_MAX_WORDS": neardup.LEAD_MAX_WORDS, "ND_LEAD_SMALL_MIN": neardup.LEAD_SMALL_MIN,
        "ND_LEAD_LARGE_MIN": neardup.LEAD_LARGE_MIN, "ND_SHINGLE_WORDS": neardup.SHINGLE_WORDS,
    }  # fmt: skip


def test_story_lua_constants_match_python() -> None:
    assert lua_constants("story.lua") == {
        "ST_COMMON": story.COMMON, "ST_RECENT": story.RECENT, "ST_TOP": story.TOP_CANDIDATES,
        "ST_MARK": story.MARK_WEIGHT, "ST_KEEP": story.KEEP_WINDOWS, "ST_KNEE": story.KNEE,
        "ST_FADE": story.FADE, "ST_FULL": story.FULL_TERMS,
        "ST_PROBE": story.PROBE,
    }  # fmt: skip
