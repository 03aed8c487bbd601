"""`POST /v1/completions` (and `/completions`): legacy prompt completions (editor autocomplete)."""
