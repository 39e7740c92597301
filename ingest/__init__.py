"""The ingestion pipeline as plain Python: one module per stage.

Nothing here imports Celery, the workers or the settings; callers pass in
clients and options explicitly.
"""
