"""The parts of `aiapi` that need no server: URLs, stream events, error lines, Continue's file."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import yaml

from app.entrypoints.cli.config import ClientConfig
from app.entrypoints.cli.continue_config import gateway_entries, render_models_block, write_config
from app.entrypoints.cli.errors import CliError, error_from_response
from app.entrypoints.cli.sse import sse_payloads


@pytest.mark.parametrize("url", ["http://h:8000", "http://h:8000/", "http://h:8000/v1", "http://h:8000/v1/",
                                 "h:8000", " http://h:8000 "])
def test_base_url_is_the_bare_server(url: str) -> None:
    config = ClientConfig(url=url)

    assert config.base_url == "http://h:8000"
    assert config.openai_base_url == "http://h:8000/v1"


def test_stream_payloads_end_at_done_and_skip_comments() -> None:
    lines = [": keep-alive", "", 'data: {"choices": [{"delta": {"content": "a"}}]}', "", "event: x",
             "data: [DONE]", 'data: {"never": "read"}']

    assert list(sse_payloads(lines)) == [{"choices": [{"delta": {"content": "a"}}]}]


def test_an_error_event_in_the_stream_is_a_cli_error() -> None:
    lines = ['data: {"choices": []}', 'data: {"error": {"message": "Groq went away"}}', "data: [DONE]"]

    with pytest.raises(CliError, match="the answer broke off: Groq went away"):
        list(sse_payloads(lines))


def answer(status: int, body: object = None, headers: dict[str, str] | None = None,
           text: str | None = None) -> httpx.Response:
    if text is not None:
        return httpx.Response(status, text=text, headers=headers)
    return httpx.Response(status, json=body, headers=headers)


@pytest.mark.parametrize(("response", "line"), [
    (answer(429, {"error": {"message": "Too many\nfailed attempts."}}, {"retry-after": "41"}),
     "too many requests (429): Too many failed attempts.; retry in 41 s"),
    (answer(503, {"error": {"message": "Busy."}}, {"retry-after": "2.2"}),
     "service unavailable (503): Busy.; retry in 3 s"),
    (answer(503, {"error": {"message": "Busy."}}), "service unavailable (503): Busy."),
    (answer(403, {"error": {"message": "Admin is off."}}), "forbidden (403): Admin is off."),
    (answer(502, text="<html>\n<b>Bad gateway</b>\n</html>"), "HTTP 502: <html> <b>Bad gateway</b> </html>"),
])
def test_http_errors_become_one_line(response: httpx.Response, line: str) -> None:
    error = error_from_response(response)

    assert error.message == line
    assert "\n" not in error.message


def entries() -> list:
    return gateway_entries(openai_base_url="http://h:8000/v1", key="sk-new", chat_model="m",
                           autocomplete_model="local/x")


def test_printed_block_is_the_entries() -> None:
    block = yaml.safe_load(render_models_block(entries()))

    assert block == {"models": [
        {"name": "Gateway chat", "provider": "openai", "model": "m", "apiBase": "http://h:8000/v1",
         "apiKey": "sk-new", "roles": ["chat", "edit", "apply"]},
        {"name": "Gateway autocomplete", "provider": "openai", "model": "local/x",
         "apiBase": "http://h:8000/v1", "apiKey": "sk-new", "roles": ["autocomplete"]}]}


def test_entries_of_other_servers_are_left_alone(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("models:\n  - name: Elsewhere\n    provider: openai\n    apiBase: http://other/v1\n"
                      "    apiKey: sk-theirs\n")

    result = write_config(config, base_url="http://h:8000", key="sk-new", entries=entries())

    models = yaml.safe_load(config.read_text())["models"]
    assert (result.updated, result.added) == (0, 2)
    assert models[0]["apiKey"] == "sk-theirs"
    assert [m["apiKey"] for m in models[1:]] == ["sk-new", "sk-new"]


def test_a_file_without_models_gets_them(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("name: Mine  # keep\n")

    write_config(config, base_url="http://h:8000", key="sk-new", entries=entries())

    text = config.read_text()
    assert text.startswith("name: Mine  # keep\n")
    assert len(yaml.safe_load(text)["models"]) == 2


@pytest.mark.parametrize("content", ["- a list\n- not a mapping\n", "models: 3\n", "key: [unclosed\n"])
def test_a_file_that_is_not_a_continue_config_is_refused_untouched(tmp_path: Path, content: str) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(content)

    with pytest.raises(ValueError):
        write_config(config, base_url="http://h:8000", key="sk-new", entries=entries())
    assert config.read_text() == content
