"""One adapter for any OpenAI-compatible chat API (Groq, or a local inference server), on httpx."""
