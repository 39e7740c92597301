import logging

import orjson

from config.logs import JsonFormatter, ReadableFormatter, mask_secrets


def record(msg: str, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("newswire.test", logging.WARNING, __file__, 1, msg, (), None)
    rec.__dict__.update(extra)
    return rec


def test_passwords_in_urls_are_masked_everywhere() -> None:
    line = "poll https://user:s3cret@feeds.test/x via redis://:pw@cache:7379/0, see http://plain.test/a"
    assert mask_secrets(line) == (
        "poll https://user:***@feeds.test/x via redis://:***@cache:7379/0, see http://plain.test/a"
    )


def test_both_formatters_keep_stable_fields_and_hide_secrets() -> None:
    rec = record("failed https://u:hunter2@f.test/rss", feed_url="https://u:hunter2@f.test/rss", stage="poll")
    data = orjson.loads(JsonFormatter().format(rec))
    assert (data["level"], data["stage"]) == ("warning", "poll")
    assert "hunter2" not in JsonFormatter().format(rec)
    readable = ReadableFormatter().format(rec)
    assert "stage=poll" in readable
    assert "hunter2" not in readable
