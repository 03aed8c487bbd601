"""The two upstreams the one adapter is configured for: Groq, and an inference server run by the operator."""

from __future__ import annotations

from app.adapters.openai_compatible.provider import Deadlines, Endpoint

GROQ_BASE_URL = "https://api.groq.com/openai/v1"
GROQ_MAX_STOP_SEQUENCES = 4  # Groq rejects more; Continue sends more


def groq_endpoint(*, api_key: str, base_url: str = GROQ_BASE_URL, total_seconds: float,
                  first_chunk_seconds: float, idle_seconds: float) -> Endpoint:
    """Groq: the model is always chosen per request (by the catalog), `max_completion_tokens`, 4 stops."""
    return Endpoint(name="groq", label="Groq", base_url=base_url, api_key=api_key, key_setting="GROQ_API_KEY",
                    deadlines=Deadlines(total=total_seconds, first_chunk=first_chunk_seconds,
                                        idle=idle_seconds),
                    max_stop_sequences=GROQ_MAX_STOP_SEQUENCES)


def local_server_endpoint(*, base_url: str, api_key: str = "", model: str = "",
                          timeout_seconds: float) -> Endpoint:
    """An OpenAI-compatible server as the local tier (llama.cpp's server, vLLM, Ollama, SGLang).

    Its model shows as `local/<model>`; `max_tokens` is the field every such
    server knows; one timeout serves as the whole-answer, first-chunk and idle deadline.
    """
    return Endpoint(name="local", label="the local inference server", base_url=base_url, api_key=api_key,
                    key_setting="LOCAL_SERVER_API_KEY", model=model or None, model_prefix="local/",
                    max_tokens_field="max_tokens",
                    deadlines=Deadlines(total=timeout_seconds, first_chunk=timeout_seconds,
                                        idle=timeout_seconds))
