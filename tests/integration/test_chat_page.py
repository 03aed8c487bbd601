"""The chat page at `/` in a real headless Chromium (Debian's, driven by Playwright) against the real app."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright

from tests.support.fake_groq import Answer, FakeGroq, SlowStream
from tests.support.client_gateway import ADMIN, current_key, gateway, local_model, served_models
from tests.support.server import AppServer

CHROMIUM = "/usr/bin/chromium"  # Debian's package (`make install` installs it); never `playwright install`
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
HOSTILE = ('Look: <script>window.pwned = 1</script> <img src=x onerror="window.pwned = 2"> '
           '[click](javascript:window.pwned=3) and **bold** text')


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, fake_groq_server: FakeGroq) -> Iterator[AppServer]:
    with gateway(tmp_path_factory.mktemp("page"), fake_groq_server) as app:
        yield app


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Chromium with a fresh profile: Playwright passes a new temporary --user-data-dir itself."""
    assert os.access(CHROMIUM, os.X_OK), "Debian's chromium is missing: run `make install`"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser, server: AppServer) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1100, "height": 760})
    page = context.new_page()
    page.console_problems = []  # type: ignore[attr-defined]

    def on_console(message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            page.console_problems.append(message.text)  # type: ignore[attr-defined]

    page.on("console", on_console)
    page.on("pageerror", lambda error: page.console_problems.append(str(error)))  # type: ignore[attr-defined]
    page.goto(server.base_url + "/")
    yield page
    context.close()


def enter_key(page: Page, key: str, *, remember: bool = False) -> None:
    page.fill("#key", key)
    if remember:
        page.check("#remember")
    page.click("#use-key-button")
    expect(page.locator("#model")).to_be_enabled()  # filled from /v1/models


def ask(page: Page, prompt: str) -> None:
    page.fill("#prompt", prompt)
    page.keyboard.press("Enter")


def test_page_headers_are_strict(server: AppServer) -> None:
    for path in ("/", "/static/app.js", "/static/markdown.js", "/static/style.css"):
        response = httpx.get(server.base_url + path)
        assert response.status_code == 200
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "default-src 'none'" in csp and "unsafe-inline" not in csp
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
    assert httpx.get(server.base_url + "/static/../main.py").status_code == 404
    assert httpx.get(server.base_url + "/static/index.py").status_code == 404


def test_chat_streams_with_badge_and_usage(page: Page, server: AppServer, fake_groq: FakeGroq,
                                           tmp_path: Path) -> None:
    slow = SlowStream(chunks=40, interval=0.05)
    fake_groq.script(slow, Answer("The capital of France is **Paris**.\n\n```python\nprint('hi')\n```"))
    enter_key(page, current_key(server))
    options = page.locator("#model option")
    assert options.evaluate_all("(all) => all.map((o) => o.value)") == [
        "", *(model for model, _ in served_models(server))]
    expect(page.locator("#model")).to_contain_text(local_model(server))

    ask(page, "Count slowly.")
    answer = page.locator(".message.assistant").last
    expect(answer.locator(".body")).to_contain_text("w3")
    partial = answer.locator(".body").inner_text()
    assert "w39" not in partial and not slow.completed  # text arrived while the stream went on
    expect(answer.locator(".badge")).to_have_text("groq")
    expect(answer.locator(".body")).to_contain_text("w39")

    ask(page, "And the capital of France?")
    second = page.locator(".message.assistant").last
    expect(second.locator(".body strong")).to_have_text("Paris")
    expect(second.locator(".body pre code")).to_have_text("print('hi')")
    expect(second.locator(".meta")).to_contain_text(fake_groq.requests[1]["model"])
    expect(second.locator(".meta")).to_contain_text(re.compile(r"\d+ prompt \+ \d+ completion = \d+ tokens"))
    prompt, completion, total = map(int, re.findall(r"(\d+) (?:prompt|completion|tokens)",
                                                    second.locator(".meta").inner_text()))
    assert completion > 0 and prompt + completion == total
    assert [m["role"] for m in fake_groq.requests[1]["messages"]] == ["user", "assistant", "user"]
    assert fake_groq.requests[1]["stream_options"] == {"include_usage": True}
    page.screenshot(path=str(tmp_path / "chat-page.png"), full_page=True)
    assert page.console_problems == []  # type: ignore[attr-defined]


def test_stop_button_ends_the_answer(page: Page, server: AppServer, fake_groq: FakeGroq) -> None:
    slow = SlowStream(chunks=400, interval=0.05)
    fake_groq.script(slow)
    enter_key(page, current_key(server))

    ask(page, "Count for a long time.")
    answer = page.locator(".message.assistant").last
    expect(answer.locator(".body")).to_contain_text("w3")
    page.click("#stop")

    expect(answer.locator(".meta")).to_contain_text("stopped")
    expect(page.locator("#send")).to_be_enabled()
    for _ in range(100):
        if slow.closed:
            break
        page.wait_for_timeout(50)
    assert slow.closed and not slow.completed


def test_model_output_never_becomes_html(page: Page, server: AppServer, fake_groq: FakeGroq) -> None:
    fake_groq.script(Answer(HOSTILE))
    enter_key(page, current_key(server))

    ask(page, "Say something nasty.")
    body = page.locator(".message.assistant").last.locator(".body")

    expect(body).to_contain_text("<script>window.pwned = 1</script>")
    expect(body).to_contain_text('<img src=x onerror="window.pwned = 2">')
    assert body.locator("script, img, a").count() == 0
    expect(body.locator("strong")).to_have_text("bold")
    page.wait_for_timeout(200)
    assert page.evaluate("window.pwned") is None


def test_admin_panel_shows_copies_and_rotates_the_key(page: Page, server: AppServer) -> None:
    key = current_key(server)
    enter_key(page, key, remember=True)
    assert page.evaluate("sessionStorage.getItem('aiapi.key')") == key

    page.click("#admin-toggle")
    page.fill("#admin-secret", ADMIN)
    page.click("#admin-form button[type=submit]")

    expect(page.locator("#admin-key")).to_have_text(key)
    expect(page.locator("#admin-countdown")).to_contain_text("in 6 d")
    page.click("#copy-key")
    expect(page.locator("#admin-status")).to_contain_text("Cop")  # "Copied." or the select-to-copy fallback

    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#rotate-key")
    expect(page.locator("#admin-key")).not_to_have_text(key)
    new_key = current_key(server)
    expect(page.locator("#admin-key")).to_have_text(new_key)
    assert page.input_value("#key") == new_key  # the page switched the chat to the new key
    assert page.evaluate("sessionStorage.getItem('aiapi.key')") == new_key


def test_the_key_is_not_kept_unless_remember_is_ticked(page: Page, server: AppServer) -> None:
    enter_key(page, current_key(server))

    assert page.evaluate("sessionStorage.length") == 0
    page.reload()
    assert page.input_value("#key") == ""


def test_a_wrong_key_is_reported_on_the_page(page: Page) -> None:
    page.fill("#key", "sk-wrong")
    page.click("#use-key-button")

    expect(page.locator("#status")).to_contain_text("401")
