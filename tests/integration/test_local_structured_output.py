"""Structured output on the local tier: JSON answers decoded under a grammar (llguidance), on both engines.

First the constraints module over the embedded model's real vocabulary; then constrained and free
requests in one transformers batch; then the whole app under a real uvicorn per engine, driven by
the official `openai` SDK: answers that parse and validate against their schema, streaming and not."""

from __future__ import annotations

import asyncio
import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import openai
import pytest
from llguidance import LLTokenizer

from app.adapters.local.constraints import Grammar, GrammarMatcher
from app.adapters.local.provider import LocalProvider
from app.domain.errors import InvalidRequest
from app.domain.models import ChatRequest
from tests.integration.local_fixtures import (
    ask,
    local_cache_dir,  # noqa: F401  (a fixture)
    new_transformers,
    transformers,  # noqa: F401  (a fixture)
    transformers_of,
)
from tests.support.server import AppServer

pytestmark = pytest.mark.model

ADMIN = "structured-admin-secret-0123456789"
LOCAL_MODEL = "local/SmolLM2-135M-Instruct"
# A string, an integer, an enum and an array, all required; bounded so the small model's answer
# fits a few dozen tokens.
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 20},
        "age": {"type": "integer", "minimum": 0, "maximum": 150},
        "colour": {"enum": ["red", "green", "blue"]},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 12}, "maxItems": 3},
    },
    "required": ["name", "age", "colour", "tags"],
    "additionalProperties": False,
}
PERSON_FORMAT = {"type": "json_schema", "json_schema": {"name": "person", "schema": SCHEMA, "strict": True}}
PERSON = "Describe a person in JSON."
# A prompt whose JSON object the embedded model closes within a dozen tokens, on both engines.
CAPITAL = "What is the capital of France? Answer in JSON."
MAX_TOKENS = 48


def person(**fields: Any) -> ChatRequest:
    return ask(PERSON, max_tokens=MAX_TOKENS, response_format=PERSON_FORMAT, **fields)


# --- the constraints module over the real vocabulary ----------------------------------------------

@pytest.fixture
def vocabulary(transformers: LocalProvider) -> LLTokenizer:  # noqa: F811  (a fixture)
    return transformers_of(transformers).vocabulary()


@pytest.fixture
def encode(transformers: LocalProvider) -> Any:  # noqa: F811  (a fixture)
    tokenizer = transformers_of(transformers).tokenizer
    assert tokenizer is not None
    return lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]


def matcher_for(response_format: dict[str, Any], vocabulary: LLTokenizer) -> GrammarMatcher:
    grammar = Grammar.of(ChatRequest(response_format=response_format))
    assert grammar is not None
    return grammar.matcher(vocabulary)


def walk(matcher: GrammarMatcher, tokens: list[int], width: int) -> int:
    """How many of `tokens` the matcher allows in a row (taking each one it allows)."""
    for index, token in enumerate(tokens):
        if not matcher.allowed(width)[token]:
            return index
        matcher.advance(token)
    return len(tokens)


def test_an_answer_in_the_schema_is_allowed_token_by_token_and_completes(
        vocabulary: LLTokenizer, encode: Any) -> None:
    matcher = matcher_for(PERSON_FORMAT, vocabulary)
    tokens = encode('{"name":"Ada","age":36,"colour":"green","tags":["maths","code"]}')

    assert not matcher.complete
    assert walk(matcher, tokens, vocabulary.vocab_size) == len(tokens)
    assert matcher.complete


def test_an_answer_outside_the_schema_is_refused_where_it_leaves_it(
        vocabulary: LLTokenizer, encode: Any) -> None:
    matcher = matcher_for(PERSON_FORMAT, vocabulary)
    inside = encode('{"name":"Ada","age":36,"colour":"')
    purple = encode('purple"')

    assert walk(matcher, inside, vocabulary.vocab_size) == len(inside)
    assert walk(matcher, purple, vocabulary.vocab_size) == 0  # not an enum value: its first token is masked
    assert not matcher.complete


def test_whitespace_and_keys_out_of_order_are_refused(vocabulary: LLTokenizer, encode: Any) -> None:
    spaced = encode('{"name": "Ada"')
    reordered = encode('{"age":36')

    assert walk(matcher_for(PERSON_FORMAT, vocabulary), spaced, vocabulary.vocab_size) < len(spaced)
    assert walk(matcher_for(PERSON_FORMAT, vocabulary), reordered, vocabulary.vocab_size) < len(reordered)


def test_json_object_allows_only_an_object(vocabulary: LLTokenizer, encode: Any) -> None:
    allowed = matcher_for({"type": "json_object"}, vocabulary).allowed(vocabulary.vocab_size)

    assert allowed[encode("{")[0]]
    assert not allowed[encode("[")[0]] and not allowed[encode('"')[0]] and not allowed[encode("Sure")[0]]
    assert not any(allowed[token] for token in vocabulary.eos_tokens)  # an empty answer is not JSON


def test_the_end_of_sequence_is_allowed_once_the_json_is_complete_and_not_before(
        vocabulary: LLTokenizer, encode: Any) -> None:
    matcher = matcher_for({"type": "json_object"}, vocabulary)
    walk(matcher, encode('{"a":1'), vocabulary.vocab_size)
    before = matcher.allowed(vocabulary.vocab_size)
    walk(matcher, encode("}"), vocabulary.vocab_size)

    assert not any(before[token] for token in vocabulary.eos_tokens)
    assert matcher.complete
    assert all(matcher.allowed(vocabulary.vocab_size)[token] for token in vocabulary.eos_tokens)


def test_logits_past_the_vocabulary_are_never_allowed(vocabulary: LLTokenizer) -> None:
    allowed = matcher_for({"type": "json_object"}, vocabulary).allowed(vocabulary.vocab_size + 64)

    assert len(allowed) == vocabulary.vocab_size + 64
    assert allowed.any() and not allowed[vocabulary.vocab_size:].any()


def test_strict_refuses_a_keyword_it_cannot_honour_and_non_strict_ignores_it() -> None:
    schema = {"type": "array", "items": {"type": "integer"}, "uniqueItems": True}

    def request(strict: bool) -> ChatRequest:
        return ChatRequest(response_format={"type": "json_schema", "json_schema": {
            "name": "numbers", "schema": schema, "strict": strict}})

    with pytest.raises(InvalidRequest) as refused:
        Grammar.of(request(strict=True))
    assert refused.value.param == "response_format" and "uniqueItems" in refused.value.message
    assert Grammar.of(request(strict=False)) is not None


def test_plain_text_formats_have_no_grammar() -> None:
    assert Grammar.of(ChatRequest()) is None
    assert Grammar.of(ChatRequest(response_format={"type": "text"})) is None


# --- constrained and free rows in one batch -------------------------------------------------------

async def test_a_json_answer_an_object_and_a_free_answer_share_a_batch(
        local_cache_dir: Path) -> None:  # noqa: F811  (a fixture)
    provider = new_transformers(local_cache_dir, batch_window=0.3)
    await provider.load()
    free = ask("Name three colours.", max_tokens=12)
    an_object = ask(CAPITAL, max_tokens=MAX_TOKENS, response_format={"type": "json_object"})
    try:
        alone_free = await provider.complete(free)
        await provider.complete(an_object)  # builds the vocabulary, so the three arrive together
        together = await asyncio.gather(provider.complete(person()), provider.complete(an_object),
                                        provider.complete(free))
    finally:
        provider.close()

    assert provider.largest_batch == 3
    jsonschema.validate(json.loads(together[0].text or ""), SCHEMA)
    assert isinstance(json.loads(together[1].text or ""), dict)
    assert together[2].text == alone_free.text  # the free row was not masked
    assert together[2].text and not together[2].text.startswith("{")


# --- through the app, with the official SDK, on each engine ---------------------------------------

@pytest.fixture(scope="module", params=["transformers", "llamacpp"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
           local_cache_dir: Path) -> Iterator[AppServer]:  # noqa: F811  (a fixture)
    """The app with its local tier on each engine (llama.cpp skipped without llama-cpp-python)."""
    if request.param == "llamacpp" and importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python is not installed")
    env = {"ADMIN_SECRET": ADMIN, "LOCAL_RUNNER": str(request.param),
           "LOCAL_MAX_TOKENS": str(MAX_TOKENS), "LOCAL_MODEL_CACHE": str(local_cache_dir), "LOCAL_WEIGHTS": "int4", "LOCAL_CONTEXT_TOKENS": "1024"}
    with AppServer(tmp_path_factory.mktemp(f"structured-{request.param}"), env) as app:
        yield app


@pytest.fixture
def client(server: AppServer) -> Iterator[openai.OpenAI]:
    key = httpx.get(f"{server.base_url}/current-key", headers={"admin-secret": ADMIN}, timeout=10).json()
    with openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=key["api_key"], max_retries=0,
                       timeout=120) as c:
        yield c


def chat(client: openai.OpenAI, prompt: str, response_format: dict[str, Any], *, max_tokens: int = MAX_TOKENS,
         stream: bool = False) -> tuple[str, str | None]:
    """The answer's content and finish reason, whole or streamed."""
    messages: Any = [{"role": "user", "content": prompt}]
    if not stream:
        completion = client.chat.completions.create(model=LOCAL_MODEL, messages=messages, max_tokens=max_tokens,
                                                    response_format=response_format)  # type: ignore[arg-type]
        assert completion.model == LOCAL_MODEL
        return completion.choices[0].message.content or "", completion.choices[0].finish_reason
    chunks = list(client.chat.completions.create(model=LOCAL_MODEL, messages=messages, max_tokens=max_tokens,
                                                 response_format=response_format,  # type: ignore[arg-type]
                                                 stream=True))
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    return content, finishes[-1] if finishes else None


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_json_schema_answer_parses_and_validates(client: openai.OpenAI, stream: bool) -> None:
    content, finish = chat(client, PERSON, PERSON_FORMAT, stream=stream)

    assert finish == "stop", content
    jsonschema.validate(json.loads(content), SCHEMA)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_json_object_gives_a_json_object(client: openai.OpenAI, stream: bool) -> None:
    content, finish = chat(client, CAPITAL, {"type": "json_object"}, stream=stream)

    assert finish == "stop", content
    assert isinstance(json.loads(content), dict)


def test_max_tokens_cuts_the_json_with_finish_reason_length(client: openai.OpenAI) -> None:
    whole, _ = chat(client, PERSON, PERSON_FORMAT)
    cut, finish = chat(client, PERSON, PERSON_FORMAT, max_tokens=5)

    assert finish == "length"
    assert whole.startswith(cut) and len(cut) < len(whole)  # the same answer, cut short: not valid JSON
    with pytest.raises(json.JSONDecodeError):
        json.loads(cut)


def test_a_schema_the_model_cannot_follow_is_a_bad_request_naming_response_format(
        client: openai.OpenAI) -> None:
    bad = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"$ref": "#/$defs/nowhere"}}}

    with pytest.raises(openai.BadRequestError) as refused:
        chat(client, PERSON, bad)

    assert refused.value.param == "response_format"
    assert refused.value.type == "invalid_request_error"
