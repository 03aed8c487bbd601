"""Entry points: the HTTP API (FastAPI) that drives the domain services."""
