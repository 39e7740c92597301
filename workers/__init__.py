"""Celery wiring: the app, thin tasks and the beat tick."""
