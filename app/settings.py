"""Server settings, read from the environment and an optional `.env` file.

Grouped by concern as llama-cpp-python's server groups its own: one class per
concern (Groq and failover, client keys and auth, the local model, the server
process), and `Settings` composes them by inheritance. Every field keeps the
name of its environment variable, so the groups need no prefix, the composed
class reads the same flat variables, and README's table lists
`Settings.model_fields`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MIN_KEY_SECRET_LENGTH = 32


class _EnvSettings(BaseSettings):
    """Where every group reads from."""

    # hide_input_in_errors: a validation error must not print the secrets it was given.
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore",
                                      hide_input_in_errors=True)


def _blank_is_unset(value: object) -> object:
    """A blank secret is unset; others lose surrounding spaces, which no HTTP header can carry."""
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, str):
        return value.strip() or None
    return value


OptionalSecret = Annotated[SecretStr | None, BeforeValidator(_blank_is_unset)]


class GroqSettings(_EnvSettings):
    """The upstream (Groq), its retries and circuit breaker, and when to fall back to the local model."""

    groq_api_key: OptionalSecret = Field(
        default=None, description="Groq API key. Unset: every request is served by the local model.")
    groq_base_url: str = Field(
        default="https://api.groq.com/openai/v1", description="Groq's OpenAI-compatible base URL.")
    groq_model: str = Field(
        default="", description="Optional: a Groq model put first in the preference list "
                                "(before GROQ_MODELS); kept for older configurations.")
    groq_models: str = Field(
        default="llama-3.3-70b-versatile,openai/gpt-oss-120b,openai/gpt-oss-20b",
        description="Comma-separated Groq models in order of preference: a request naming no model "
                    "(or one not served) goes to the first one Groq serves now.")
    groq_timeout_seconds: float = Field(
        default=30.0, gt=0, description="Deadline of one whole Groq answer (connect, headers and body); "
                                        "streams use GROQ_FIRST_CHUNK_TIMEOUT_SECONDS and "
                                        "GROQ_STREAM_IDLE_TIMEOUT_SECONDS instead.")
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

    groq_models_refresh_seconds: float = Field(
        default=3600, gt=0, description="How old Groq's model list may get before it is read again "
                                        "(in the background, on the next request).")
    groq_first_chunk_timeout_seconds: float = Field(
        default=15.0, gt=0, description="A Groq stream: longest wait from sending the request to the "
                                        "answer's first chunk (then the request is retried or fails over).")
    groq_stream_idle_timeout_seconds: float = Field(
        default=15.0, gt=0, description="A Groq stream that has started: longest wait for its next "
                                        "chunk (then the stream ends with an error event).")
    groq_request_deadline_seconds: float = Field(
        default=60.0, gt=0, description="All Groq attempts of one request together (retries, model "
                                        "changes and waits), until the answer or until a stream opens; "
                                        "then the request fails over.")

    @model_validator(mode="after")
    def _some_groq_model(self) -> GroqSettings:
        if not self.groq_model_list():
            raise ValueError("GROQ_MODELS is empty: name at least one Groq model "
                             "(e.g. openai/gpt-oss-120b)")
        return self

    def groq_model_list(self) -> list[str]:
        """The preference list: GROQ_MODEL (when set) then GROQ_MODELS, without duplicates, in order."""
        listed = [m.strip() for m in f"{self.groq_model},{self.groq_models}".split(",") if m.strip()]
        return list(dict.fromkeys(listed))


class KeySettings(_EnvSettings):
    """The rotating client key, the admin secret, and brute-force damping."""

    admin_secret: OptionalSecret = Field(
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
    key_secret: OptionalSecret = Field(
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

    @model_validator(mode="after")
    def _derived_keys_need_a_secret(self) -> KeySettings:
        secret = self.key_secret.get_secret_value() if self.key_secret else ""
        if self.key_store == "derived" and len(secret) < MIN_KEY_SECRET_LENGTH:
            raise ValueError(f"KEY_STORE=derived needs KEY_SECRET set to a random string of at least "
                             f"{MIN_KEY_SECRET_LENGTH} characters (the client key is only as secret as it); "
                             "refusing to start with a guessable key")
        return self


class LocalSettings(_EnvSettings):
    """The local model and its runner."""

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
    local_runner: Literal["transformers", "llamacpp", "server"] = Field(
        default="transformers", description="Engine of the local model: `transformers` (torch), "
                                            "`llamacpp` (GGUF only; needs the `llamacpp` extra) or "
                                            "`server` (an OpenAI-compatible server at LOCAL_SERVER_URL).")
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
    local_server_url: str = Field(
        default="", description="LOCAL_RUNNER=server: base URL of the OpenAI-compatible server "
                                "(llama.cpp's server, vLLM, Ollama, SGLang), e.g. http://127.0.0.1:8080/v1.")
    local_server_api_key: OptionalSecret = Field(
        default=None, description="LOCAL_RUNNER=server: API key sent to that server, if it wants one.")
    local_server_model: str = Field(
        default="", description="LOCAL_RUNNER=server: model name sent to the server (clients see "
                                "local/<name>). Empty: the server's own default, listed as local/default.")
    local_server_timeout_seconds: float = Field(
        default=120.0, gt=0, description="LOCAL_RUNNER=server: deadline of one whole answer, and the "
                                         "longest wait for a stream's first and next chunks.")

    @model_validator(mode="after")
    def _server_needs_a_url(self) -> LocalSettings:
        if self.local_runner == "server" and not self.local_server_url.strip():
            raise ValueError("LOCAL_RUNNER=server needs LOCAL_SERVER_URL (the OpenAI-compatible server's "
                             "base URL, e.g. http://127.0.0.1:8080/v1)")
        return self


class ServerSettings(_EnvSettings):
    """The server process itself (HOST and PORT are uvicorn's, given on its command line)."""

    log_level: str = Field(default="info", description="Log level: debug, info, warning, error.")


class ObservabilitySettings(_EnvSettings):
    """What operators see: the log format, /metrics, and trace export (issue 13)."""

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


class LimitSettings(_EnvSettings):
    """What one client may ask of the server before any work is done for it."""

    max_body_bytes: int = Field(
        default=1024 * 1024, gt=0, description="Largest request body accepted (bytes); a larger one is "
                                               "answered 413 before it is read or parsed.")
    max_header_bytes: int = Field(
        default=64 * 1024, gt=0, description="Largest request head (request line and headers, bytes); "
                                             "a larger one is answered 431 and the connection closed.")
    header_read_timeout_seconds: float = Field(
        default=10, gt=0, description="Time a client has to send a request's head once the connection "
                                      "opens or the request begins; then the connection is closed (408).")
    body_read_timeout_seconds: float = Field(
        default=30, gt=0, description="Time a client has to send a request's body once its head has "
                                      "arrived; then it is answered 408 and the connection closed.")
    max_messages: int = Field(
        default=2048, gt=0, description="Most `messages` one chat request may carry (OpenAI's own limit).")
    max_prompt_chars: int = Field(
        default=500_000, gt=0, description="Most characters of prompt one request may carry (message "
                                           "contents plus `prompt`), checked before anything tokenizes it.")


class ResponsesSettings(_EnvSettings):
    """The Responses API's in-process store (`/v1/responses`)."""

    responses_max_stored: int = Field(
        default=500, ge=0, description="Responses kept in memory for `previous_response_id` follow-ups "
                                       "and GET/DELETE /v1/responses/{id} (oldest dropped first; per "
                                       "process, gone on restart). 0: keep none.")
    responses_ttl_seconds: float = Field(
        default=3600, gt=0, description="How long a stored response can be read or followed up (seconds).")


class Settings(GroqSettings, KeySettings, LocalSettings, LimitSettings, ResponsesSettings, ObservabilitySettings,
               ServerSettings):
    """Every option of the server; README's table lists the same variables."""
