"""Self-hosted OpenAI-compatible chat gateway: Groq upstream, local CPU fallback."""
