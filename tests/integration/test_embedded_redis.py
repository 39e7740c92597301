"""The embedded Redis on a relative data directory (the default `var`), as `make run` starts it."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from newswire import redisd


def test_a_relative_data_dir_starts_is_found_again_and_keeps_its_data_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "my clone"  # a space in the path, too
    home.mkdir()
    monkeypatch.chdir(home)
    server = redisd.start(Path("var/redis"))
    try:
        client = redis.Redis.from_url(server.url)
        assert client.config_get("dir")["dir"] == str(home / "var" / "redis")
        assert client.config_get("appendonly")["appendonly"] == "yes"
        client.set("k", "v")
        found = redisd.find_running(Path("var/redis"))
        assert found is not None
        assert found.url == server.url
        assert redisd.start(Path("var") / "redis").url == server.url  # reused, not a second server
    finally:
        server.stop()
    assert (home / "var" / "redis" / "appendonlydir").is_dir()
    assert not (home / "var" / "redis" / "server.json").exists()


def test_a_server_that_cannot_start_says_why(tmp_path: Path) -> None:
    broken = tmp_path / "redis" / "appendonlydir"
    broken.mkdir(parents=True)
    (broken / "appendonly.aof.manifest").write_text("not a manifest\n")
    with pytest.raises(redisd.EmbeddedRedisError, match=r"Invalid AOF manifest .*server\.log"):
        redisd.start(tmp_path / "redis")
