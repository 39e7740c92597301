import os
from pathlib import Path

import pytest

from config.settings import KNOWN, SettingsError, load_settings, markdown_table, mask_url, settings_env


def test_defaults_need_no_environment() -> None:
    settings = load_settings({})
    assert settings.redis_url is None
    assert settings.prefix == "newswire"
    assert settings.feeds_path == Path.cwd() / "config" / "feeds.toml"
    assert settings.flower_port == 5555
    assert settings.allowed_networks == ()


def test_values_are_parsed_and_typed() -> None:
    settings = load_settings(
        {
            "NEWSWIRE_REDIS_URL": "redis://localhost:7000/2",
            "NEWSWIRE_BROKER_URL": "amqp://guest:guest@localhost:5673//",
            "NEWSWIRE_ALLOWED_NETWORKS": "127.0.0.0/24, ::1/128",
            "NEWSWIRE_FLOWER_PORT": "5600",
            "NEWSWIRE_CONCURRENCY": "3",
            "NEWSWIRE_STREAM_PREFIX": "news-eu",
        }
    )
    assert settings.effective_broker_url.startswith("amqp://")
    assert [str(n) for n in settings.allowed_networks] == ["127.0.0.0/24", "::1/128"]
    assert (settings.flower_port, settings.concurrency, settings.prefix) == (5600, 3, "news-eu")


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("NEWSWIRE_REDIS_URLL", "redis://x", "unknown setting NEWSWIRE_REDIS_URLL"),
        ("NEWSWIRE_FLOWER_PORT", "http", "not an integer"),
        ("NEWSWIRE_FLOWER_PORT", "70000", "outside"),
        ("NEWSWIRE_ALLOWED_NETWORKS", "10.0.0.0/33", "not a CIDR"),
        ("NEWSWIRE_REDIS_URL", "http://localhost", "scheme 'http' not supported"),
        ("NEWSWIRE_STREAM_PREFIX", "bad prefix!", "must be"),
        ("NEWSWIRE_LOG_LEVEL", "LOUD", "not DEBUG"),
    ],
)
def test_bad_values_fail_loudly_with_the_variable_name(name: str, value: str, words: str) -> None:
    with pytest.raises(SettingsError, match=words):
        load_settings({name: value})


def test_passwords_are_masked() -> None:
    assert mask_url("redis://:s3cret@cache:7379/0") == "redis://:***@cache:7379/0"
    assert mask_url("amqp://user:pw@mq/vhost") == "amqp://user:***@mq/vhost"
    assert mask_url("redis://cache:7379/0") == "redis://cache:7379/0"


def test_default_user_agent_is_a_string() -> None:
    assert load_settings({}).user_agent.startswith("newswire/")


def test_settings_survive_the_trip_to_a_child_process() -> None:
    settings = load_settings(
        {
            "NEWSWIRE_ALLOWED_NETWORKS": "127.0.0.0/8,::1/128",
            "NEWSWIRE_HOST_SPACING": "0.05",
            "NEWSWIRE_FEEDS": "x.opml",
        }
    )
    assert load_settings(settings_env(settings)) == settings


def test_the_readme_lists_every_setting_as_the_table_says() -> None:
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    assert markdown_table() in readme


def test_test_only_variables_are_not_settings() -> None:
    assert not any("TEST" in name for name in KNOWN)


PATH_SETTINGS = [
    ("NEWSWIRE_DATA_DIR", "data_dir", "var", "state/here"),
    ("NEWSWIRE_FEEDS", "feeds_path", "config/feeds.toml", "mine/feeds.opml"),
    ("NEWSWIRE_TOPICS", "topics_path", "config/topics.toml", "../elsewhere/topics.toml"),
    ("NEWSWIRE_WEBHOOKS", "webhooks_path", "config/webhooks.toml", "./hooks.toml"),
]


@pytest.mark.parametrize(("env", "field", "default", "relative"), PATH_SETTINGS)
def test_a_relative_path_is_resolved_once_against_the_working_directory(
    env: str, field: str, default: str, relative: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    monkeypatch.chdir(first)
    given = load_settings({env: relative})
    defaulted = load_settings({})
    monkeypatch.chdir(second)  # a later change of directory moves nothing: resolved at load
    assert getattr(given, field) == Path(os.path.normpath(first / relative))
    assert getattr(defaulted, field) == first / default
    assert getattr(given, field).is_absolute()
    assert load_settings(settings_env(given)) == given  # a child in another directory sees the same file


def test_an_absolute_path_and_a_home_path_stay_where_they_point(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/someone")
    assert load_settings({"NEWSWIRE_FEEDS": "/etc/newswire/feeds.toml"}).feeds_path == Path(
        "/etc/newswire/feeds.toml"
    )
    assert load_settings({"NEWSWIRE_DATA_DIR": "~/nw"}).data_dir == Path("/home/someone/nw")


@pytest.mark.parametrize(
    ("raw", "value"), [("1", True), ("true", True), ("On", True), ("0", False), ("no", False)]
)
def test_task_events_is_a_flag(raw: str, value: bool) -> None:
    assert load_settings({"NEWSWIRE_TASK_EVENTS": raw}).task_events is value
    assert load_settings({}).task_events is False
    with pytest.raises(SettingsError, match="NEWSWIRE_TASK_EVENTS"):
        load_settings({"NEWSWIRE_TASK_EVENTS": "maybe"})
