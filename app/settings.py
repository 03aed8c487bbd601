"""Server settings, read from the environment and an optional `.env` file."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every option of the server; README's table lists the same variables."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    groq_api_key: SecretStr | None = Field(
        default=None, description="Groq API key. Unset: every request is served by the local model.")
    groq_base_url: str = Field(
        default="https://api.groq.com/openai/v1", description="Groq's OpenAI-compatible base URL.")
    groq_model: str = Field(
        default="llama-3.3-70b-versatile", description="Default Groq model.")
    groq_models: str = Field(
        default="", description="Comma-separated Groq models tried in order after GROQ_MODEL "
                                "when a model is retired or unknown (e.g. openai/gpt-oss-120b).")
    groq_timeout_seconds: float = Field(
        default=30.0, gt=0, description="Timeout of one Groq request (connect, read, write).")
    fallback_to_local: bool = Field(
        default=True, description="Serve a request with the local model when Groq is unavailable, "
                                  "even if the client named a Groq model.")
    admin_secret: SecretStr | None = Field(
        default=None, description="Secret for the `admin-secret` header of admin endpoints. "
                                  "Unset: admin endpoints answer 403.")
    key_file: str = Field(
        default="current_key.json", description="Where the current client key is kept (mode 0600).")
    key_rotation_days: float = Field(
        default=7, gt=0, description="Lifetime of a client key in days.")
    local_model: str = Field(
        default="", description="Local model: empty for the embedded SmolLM2-135M-Instruct, a "
                                "Hugging Face id (TinyLlama/TinyLlama-1.1B-Chat-v1.0), a directory "
                                "or a .gguf file.")
    local_max_tokens: int = Field(
        default=256, gt=0, description="Default and cap of tokens the local model generates per request.")
    local_threads: int | None = Field(
        default=None, gt=0, description="CPU threads for local generation (default: torch's choice).")
    local_preload: bool = Field(
        default=False, description="Load the local model at start-up instead of on first use.")
    local_runner: Literal["transformers", "llamacpp"] = Field(
        default="transformers", description="Engine of the local model: `transformers` (torch) or "
                                            "`llamacpp` (GGUF only; needs the `llamacpp` extra).")
    local_model_cache: str = Field(
        default="~/.cache/ai-api-server/models",
        description="Where the transformers runner keeps the converted copy of a GGUF model, so only "
                    "the first start converts it. Empty: convert at every start.")
    local_max_queue: int = Field(
        default=8, ge=0, description="Local requests that may wait while the runner is busy; beyond "
                                     "that the server answers 503 with Retry-After.")
    local_weights: Literal["float16", "bfloat16", "float32"] = Field(
        default="float16", description="Precision of the transformers runner's linear weights: "
                                       "float16 is fastest for one client with float32's greedy text; "
                                       "bfloat16 is slower alone but batches concurrent clients better.")
    local_batch_size: int = Field(
        default=4, ge=1, description="Concurrent local requests the transformers runner generates "
                                     "together as one batch.")
    local_context_tokens: int = Field(
        default=0, ge=0, description="Context window of the local model in tokens, capped at the "
                                     "model's own (0: the model's own). Smaller saves memory.")
    host: str = Field(default="127.0.0.1", description="Address `make serve` binds.")
    port: int = Field(default=8000, description="Port the server listens on.")
    log_level: str = Field(default="info", description="Log level: debug, info, warning, error.")

    def groq_model_list(self) -> list[str]:
        """GROQ_MODEL then GROQ_MODELS, without duplicates, in order."""
        extra = [m.strip() for m in self.groq_models.split(",") if m.strip()]
        return list(dict.fromkeys([self.groq_model, *extra]))
