"""The offline demo: a loopback news-site server and the bundled sample site.

`newswire.demo.server.SiteServer` serves a directory tree on 127.0.0.1: the bundled
site at `SITE_ROOT` for `newswire demo`, `tests/fixtures/site/` for the test-suite.
"""

from pathlib import Path

SITE_ROOT = Path(__file__).resolve().parent / "site"
