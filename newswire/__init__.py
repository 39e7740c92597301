"""The `newswire` command line: CLI, service supervision, embedded Redis, demo."""

__version__ = "0.1.0"
