"""One adapter for any OpenAI-compatible chat API (Groq, or a local inference server), on httpx."""

from app.adapters.openai_compatible.presets import GROQ_BASE_URL, groq_endpoint, local_server_endpoint
from app.adapters.openai_compatible.provider import Deadlines, Endpoint, OpenAICompatibleProvider

__all__ = ["GROQ_BASE_URL", "Deadlines", "Endpoint", "OpenAICompatibleProvider", "groq_endpoint",
           "local_server_endpoint"]
