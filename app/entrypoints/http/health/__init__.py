"""`GET /healthz` (liveness) and `GET /readyz` (readiness); no key needed."""
