"""Constrained decoding for the local engines: an answer that can only be JSON matching the request's schema.

A request's `response_format` becomes an llguidance grammar (`Grammar.of`), checked
before any work; each answer gets its own `GrammarMatcher` over the engine's
vocabulary, which says at every step which tokens may come next (the engine masks
the others out of the logits), takes the token picked, and says when the JSON is
complete. Both engines use it the same way; only their vocabulary differs.

llguidance (the engine behind llama.cpp's, vLLM's and SGLang's structured output)
is a 3 MB wheel with no dependencies, and builds its vocabulary from either
engine's tokenizer.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from llguidance import LLMatcher, LLParserLimits, LLTokenizer

from app.domain.errors import InvalidRequest
from app.domain.models import ChatRequest

log = logging.getLogger(__name__)

# A schema larger than this is refused: real ones are a few kB, and each request compiles its own
# (about 20 ms for a 32 kB schema of 60 alternatives here).
MAX_SCHEMA_BYTES = 32_768
# Bounds on the work one grammar may cost: llguidance's defaults (compiling a lexer at most 1,000,000
# "fuel", about 20 ms; each token's mask at most 200,000, about 15 ms), but for the lexer's states, at
# 1-2 kB each: 250,000 of them would not fit a 512 MB instance. Error messages never echo the schema
# or the parser's state.
LIMITS = LLParserLimits(max_lexer_states=20_000, verbose_errors=False)
# Compact JSON, as OpenAI's structured outputs write it: no whitespace between tokens, so a small
# model cannot spend its token budget on blank lines.
COMPACT = {"whitespace_flexible": False}


@dataclass(frozen=True, slots=True)
class Grammar:
    """What an answer must match: an llguidance grammar, checked to compile."""

    text: str

    @classmethod
    def of(cls, request: ChatRequest) -> Grammar | None:
        """The grammar `request.response_format` asks for (None for plain text).

        `json_object` is any JSON object; `json_schema` is its `schema` (any object when it has
        none). With `strict: true` a keyword llguidance does not implement is refused; without,
        it is ignored (and logged). Raises InvalidRequest (param `response_format`) for a schema
        that is malformed, too large, or that llguidance cannot follow.
        """
        if not request.requires_json:
            return None
        response_format = request.response_format or {}
        if response_format.get("type") == "json_object":
            return cls._compile({"type": "object"}, strict=True)
        spec = response_format.get("json_schema")
        if not isinstance(spec, dict):
            raise _invalid("`response_format.json_schema` must be an object with the schema under `schema`.")
        schema = spec.get("schema", {"type": "object"})
        if not isinstance(schema, dict):
            raise _invalid("`response_format.json_schema.schema` must be a JSON schema (an object).")
        return cls._compile(schema, strict=spec.get("strict") is True)

    @classmethod
    def _compile(cls, schema: dict[str, Any], *, strict: bool) -> Grammar:
        try:
            size = len(json.dumps(schema))
        except (TypeError, ValueError):
            raise _invalid("The JSON schema of `response_format` is not valid JSON.") from None
        if size > MAX_SCHEMA_BYTES:
            raise _invalid(f"The JSON schema of `response_format` is {size} bytes; the local model "
                           f"takes schemas of up to {MAX_SCHEMA_BYTES} bytes.")
        try:
            text = LLMatcher.grammar_from_json_schema(schema, overrides={**COMPACT, "lenient": not strict})
        except ValueError as exc:
            raise _invalid(f"The JSON schema of `response_format` is not valid: {exc}") from None
        failed, messages = LLMatcher.validate_grammar_with_warnings(text, None, limits=LIMITS)
        if failed:
            raise _invalid(f"The local model cannot follow the JSON schema of `response_format`: "
                           f"{messages[0]}")
        if messages:
            log.info("response_format schema: %s", "; ".join(messages))
        return cls(text)

    def matcher(self, vocabulary: LLTokenizer) -> GrammarMatcher:
        """A matcher for one answer over the engine's vocabulary; raises InvalidRequest if it cannot start."""
        matcher = LLMatcher(vocabulary, self.text, log_level=0, limits=LIMITS)
        if matcher.is_error():
            raise _invalid(f"The local model cannot follow the JSON schema of `response_format`: "
                           f"{matcher.get_error()}")
        return GrammarMatcher(matcher, vocabulary.vocab_size)


class GrammarBroken(RuntimeError):
    """The matcher failed mid-answer (a parser limit hit): the answer cannot be completed."""


class GrammarMatcher:
    """One answer's place in its grammar: which tokens may come next, and whether the answer is complete.

    Used on the generation thread only: `allowed` before each token is picked,
    `advance` with the token picked (end-of-sequence tokens are never passed: the
    engine ends the answer on them, and the grammar allows them only once complete).
    """

    def __init__(self, matcher: LLMatcher, vocab_size: int) -> None:
        self._matcher = matcher
        self._vocab_size = vocab_size

    def allowed(self, width: int) -> np.ndarray[Any, np.dtype[np.bool_]]:
        """Which of `width` token ids (the logits' width) may come next; ids past the vocabulary never."""
        bits = np.frombuffer(self._matcher.compute_bitmask(), dtype=np.uint8)
        allowed = np.zeros(width, dtype=np.bool_)
        known = min(width, self._vocab_size)
        allowed[:known] = np.unpackbits(bits, bitorder="little")[:known]
        if self._matcher.is_error():
            raise GrammarBroken(self._matcher.get_error())
        return allowed

    def advance(self, token: int) -> None:
        """Take the token picked (one `allowed` said may come); raises GrammarBroken if the matcher failed."""
        if not self._matcher.consume_token(token):
            raise GrammarBroken(self._matcher.get_error())

    @property
    def complete(self) -> bool:
        """True once the grammar takes no more text: the answer ends here."""
        return self._matcher.is_stopped()


def _invalid(message: str) -> InvalidRequest:
    return InvalidRequest(message, param="response_format")
