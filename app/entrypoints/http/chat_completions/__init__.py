"""`POST /v1/chat/completions` (and `/chat/completions`): OpenAI chat completions."""
