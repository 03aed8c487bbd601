"""Reading Groq's rate-limit headers, and the gate that skips a model until its limit resets."""

from __future__ import annotations

import pytest

from app.adapters.openai_compatible.rate_limit_headers import parse_duration, rate_limits_from_headers
from app.domain.rate_limits import RateLimitGate, RateLimits
from tests.unit.fakes import FakeClock


@pytest.mark.parametrize("text, seconds", [("2m59.56s", 179.56), ("7.66s", 7.66), ("1h2m3s", 3723.0),
                                           ("120ms", 0.12), ("0s", 0.0), ("7.5", 7.5), ("1e308", 86400.0),
                                           ("inf", None), ("nan", None), ("-3s", None), ("2x", None),
                                           ("", None), ("5m junk", None)])
def test_groq_durations_are_read_or_left_out(text: str, seconds: float | None) -> None:
    assert parse_duration(text) == (pytest.approx(seconds) if seconds is not None else None)


def test_headers_become_rate_limits() -> None:
    headers = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-remaining-tokens": "812",
               "x-ratelimit-reset-requests": "2m59.56s", "x-ratelimit-reset-tokens": "7.66s",
               "retry-after": "3"}

    limits = rate_limits_from_headers(headers, status=200)

    assert limits == RateLimits(remaining_requests=0, remaining_tokens=812, requests_reset_seconds=179.56,
                                tokens_reset_seconds=7.66)  # retry-after counts only on a 429
    assert rate_limits_from_headers({}, status=200) is None
    assert rate_limits_from_headers({"x-ratelimit-remaining-requests": "lots"}, status=200) is None


@pytest.mark.parametrize("limits, wait", [
    (RateLimits(remaining_requests=5, remaining_tokens=100, requests_reset_seconds=9), None),
    (RateLimits(remaining_requests=0, requests_reset_seconds=179.56), 179.56),
    (RateLimits(remaining_requests=0, remaining_tokens=0, requests_reset_seconds=20, tokens_reset_seconds=7),
     20),
    (RateLimits(remaining_tokens=0, tokens_reset_seconds=7.66, retry_after_seconds=3), 3),
    (RateLimits(remaining_tokens=0), None),  # no reset given: nothing to wait for
])
def test_a_limit_is_exhausted_until_its_reset(limits: RateLimits, wait: float | None) -> None:
    assert limits.exhausted_for() == wait


def test_the_gate_blocks_a_model_until_the_clock_reaches_its_reset() -> None:
    clock = FakeClock()
    gate = RateLimitGate(clock=clock)

    gate.observe("a", RateLimits(remaining_requests=0, requests_reset_seconds=10))
    gate.observe("a", RateLimits(remaining_requests=3))  # an older answer arriving late changes nothing

    assert gate.blocked_for("a") == 10
    assert gate.blocked_for("b") is None
    clock.advance(seconds=9)
    assert gate.blocked_for("a") == 1
    clock.advance(seconds=1)
    assert gate.blocked_for("a") is None
