from collections import Counter

from ingest.progress import summarize_outcomes


def test_a_redelivered_item_that_was_published_counts_as_published_not_as_a_copy() -> None:
    outcomes = Counter({"f:ok": 2, "f:http_500": 1, "a:published": 7, "a:already": 1, "a:duplicate": 2})
    outcomes["a:error_dead_lettered"] = 1
    summary = summarize_outcomes(outcomes, pending=0)
    assert (summary["feeds"], summary["feeds_failed"]) == (3, 1)
    assert (summary["entries"], summary["articles"]) == (11, 10)
    assert (summary["published"], summary["duplicates"], summary["errors"]) == (8, 2, 1)
