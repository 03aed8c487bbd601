"""Server settings, read from the environment and an optional `.env` file."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


MIN_KEY_SECRET_LENGTH = 32


class Settings(BaseSettings):
    """Every option of the server; README's table lists the same variables."""

    # hide_input_in_errors: a validation error must not print the secrets it was given.
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore",
                                      hide_input_in_errors=True)

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
    groq_max_retries: int = Field(
        default=2, ge=0, description="Retries of a Groq request that failed with a connection error, "
                                     "5xx or 429, before failing over (timeouts are not retried).")
    groq_retry_base_seconds: float = Field(
        default=0.5, ge=0, description="First retry delay; doubles each retry, with jitter.")
    groq_max_retry_after_seconds: float = Field(
        default=5.0, ge=0, description="Longest Groq `retry-after` (and retry delay) waited for; "
                                       "a longer one fails over at once.")
    circuit_failure_threshold: int = Field(
        default=3, ge=1, description="Consecutive failed Groq requests that open the circuit breaker "
                                     "(then requests go straight to the local model).")
    circuit_cooldown_seconds: float = Field(
        default=30.0, gt=0, description="How long the circuit stays open before one probe request "
                                        "tries Groq again.")
    admin_secret: SecretStr | None = Field(
        default=None, description="Secret for the `admin-secret` header of admin endpoints. "
                                  "Unset: admin endpoints answer 403.")
    key_file: str = Field(
        default="current_key.json", description="Where the current client key is kept (mode 0600).")
    key_rotation_days: float = Field(
        default=7, gt=0, description="Lifetime of a client key in days.")
    key_store: Literal["file", "derived"] = Field(
        default="file", description="Where the client key comes from: `file` keeps a random key in "
                                    "KEY_FILE (rotatable on demand, lost with the disk); `derived` "
                                    "computes each period's key from KEY_SECRET (no storage, same key "
                                    "on every restart and replica).")
    key_secret: SecretStr | None = Field(
        default=None, description="Server secret the `derived` key store derives keys from (at least "
                                  f"{MIN_KEY_SECRET_LENGTH} characters). Required when KEY_STORE=derived; "
                                  "changing it replaces the key at once.")
    key_grace_seconds: float = Field(
        default=0, ge=0, description="After a rotation, how long the previous key keeps working (seconds).")
    auth_max_failures: int = Field(
        default=10, gt=0, description="Wrong API keys or admin secrets one client address may send "
                                      "within AUTH_FAILURE_WINDOW_SECONDS before it is answered 429.")
    auth_failure_window_seconds: float = Field(
        default=60, gt=0, description="Window in which failures are counted, and length of the "
                                      "lockout that follows (seconds).")
    trust_proxy_headers: bool = Field(
        default=False, description="Take the client address from X-Forwarded-For (set it behind a "
                                   "reverse proxy such as Render's); off: the TCP peer address.")
    trusted_proxy_hops: int = Field(
        default=1, ge=1, description="With TRUST_PROXY_HEADERS, how many proxies append to "
                                     "X-Forwarded-For; the client is that many entries from the right "
                                     "(entries further left can be forged by the client).")
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
    local_weights: Literal["auto", "int4", "float16", "bfloat16", "float32"] = Field(
        default="auto", description="Precision of the transformers runner's linear weights: auto is "
                                    "int4 on a CPU with native bfloat16 (avx512_bf16/amx_bf16), "
                                    "float16 elsewhere; int4 "
                                    "decodes with 4-bit copies of the layers that 4 bits reproduce "
                                    "(a Q4_1 GGUF model's, like the embedded one; others stay "
                                    "float16): fastest alone and in batches, greedy text as float32's "
                                    "on the tests' prompts; float16 for 16-bit models; bfloat16 is "
                                    "slower alone; float32 is exact and slowest.")
    local_batch_size: int = Field(
        default=4, ge=1, description="Concurrent local requests the transformers runner generates "
                                     "together as one batch.")
    local_context_tokens: int = Field(
        default=0, ge=0, description="Context window of the local model in tokens, capped at the "
                                     "model's own (0: the model's own). Smaller saves memory.")
    host: str = Field(default="127.0.0.1", description="Address `make serve` binds.")
    port: int = Field(default=8000, description="Port the server listens on.")
    log_level: str = Field(default="info", description="Log level: debug, info, warning, error.")

    # Operations: log format, metrics, traces.
    log_format: Literal["text", "json"] = Field(
        default="text", description="`text`: the app's and uvicorn's usual lines. `json`: one JSON object per "
                                    "line, and one line per request (id, route, status, provider, model, "
                                    "latency, upstream latency, tokens, fallback reason).")
    log_prompts: bool = Field(
        default=False, description="Put prompt text in the per-request log line. Off: no prompt text is "
                                   "ever logged.")
    metrics_require_admin: bool = Field(
        default=False, description="Serve GET /metrics only with the admin secret (`admin-secret` header "
                                   "or `Authorization: Bearer`); off: /metrics is open.")
    otel_exporter_otlp_endpoint: str = Field(
        default="", description="OpenTelemetry collector base URL (OTLP over HTTP, e.g. "
                                "http://collector:4318): set, request spans are exported there; empty: "
                                "no tracing. The other standard OTEL_* variables apply.")

    @model_validator(mode="after")
    def _derived_keys_need_a_secret(self) -> Settings:
        secret = self.key_secret.get_secret_value() if self.key_secret else ""
        if self.key_store == "derived" and len(secret) < MIN_KEY_SECRET_LENGTH:
            raise ValueError(f"KEY_STORE=derived needs KEY_SECRET set to a random string of at least "
                             f"{MIN_KEY_SECRET_LENGTH} characters (the client key is only as secret as it); "
                             "refusing to start with a guessable key")
        return self

    def groq_model_list(self) -> list[str]:
        """GROQ_MODEL then GROQ_MODELS, without duplicates, in order."""
        extra = [m.strip() for m in self.groq_models.split(",") if m.strip()]
        return list(dict.fromkeys([self.groq_model, *extra]))
