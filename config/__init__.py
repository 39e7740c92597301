"""Typed settings read once from the environment, plus the default data files."""
