"""Entry point for the Celery command line: `celery -A workers.main worker|beat|flower`."""

from workers.app import app_from_environment

app = app_from_environment()
