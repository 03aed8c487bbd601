"""Rate limits seen, not hit: once Groq's headers say a limit is used up, requests skip that model until the
reset (time from the Clock), instead of paying a 429 each. The real app and adapter against the fake Groq."""

from __future__ import annotations

from pathlib import Path

from tests.support.fake_groq import FakeGroq, rate_limited
from tests.support.gateway_rig import Rig

ONLY = "openai/gpt-oss-120b"
NEXT = "openai/gpt-oss-20b"


def test_a_used_up_request_limit_sends_requests_to_the_fallback_until_the_reset(
        fake_groq: FakeGroq, tmp_path: Path) -> None:
    fake_groq.limits(ONLY).remaining_requests = 1  # this answer says: 0 left, reset in 2m59.56s
    with Rig(fake_groq.base_url, tmp_path, groq_models=ONLY, circuit_failure_threshold=1) as rig:
        first = rig.chat()
        during = [rig.chat(), rig.stream()[0], rig.chat()]
        calls_during = len(fake_groq.requests)
        rig.clock.advance(seconds=170)
        still = rig.chat()  # 9.56 s left: longer than GROQ_MAX_RETRY_AFTER_SECONDS is worth waiting
        fake_groq.limits(ONLY).remaining_requests = 100  # Groq's window turned over
        rig.clock.advance(seconds=10)
        after = rig.chat()

    assert first.headers["x-provider"] == "groq"
    assert [r.headers["x-provider"] for r in during] == ["local"] * 3
    assert calls_during == 1  # no 429 paid
    assert still.headers["x-provider"] == "local"
    assert after.headers["x-provider"] == "groq"  # the circuit did not open: Groq was never down
    assert len(fake_groq.requests) == 2


def test_a_429_blocks_its_model_for_its_retry_after(fake_groq: FakeGroq, tmp_path: Path) -> None:
    fake_groq.script(rate_limited(kind="requests", retry_after="120"))
    with Rig(fake_groq.base_url, tmp_path, groq_models=ONLY) as rig:
        first, second = rig.chat(), rig.chat()
        rig.clock.advance(seconds=120)
        third = rig.chat()

    assert [r.headers["x-provider"] for r in (first, second, third)] == ["local", "local", "groq"]
    assert len(fake_groq.requests) == 2  # the 429, then the answer after the reset


def test_a_used_up_model_is_skipped_for_the_next_live_one(fake_groq: FakeGroq, tmp_path: Path) -> None:
    fake_groq.limits(ONLY).remaining_tokens = 20  # this answer spends the last tokens of the minute
    with Rig(fake_groq.base_url, tmp_path) as rig:
        first, second = rig.chat(), rig.chat()

    assert [r.json()["model"] for r in (first, second)] == [ONLY, NEXT]
    assert fake_groq.chat_models() == [ONLY, NEXT]  # Groq's limits are per model: the next one is fine


def test_a_reset_within_the_longest_wait_is_waited_for(fake_groq: FakeGroq, tmp_path: Path) -> None:
    limits = fake_groq.limits(ONLY)
    limits.remaining_tokens, limits.reset_tokens = 20, "2s"
    with Rig(fake_groq.base_url, tmp_path, groq_models=ONLY, groq_max_retry_after_seconds=5) as rig:
        rig.chat()
        limits.remaining_tokens = 1000  # by the time the wait is over
        second = rig.chat()

    assert second.headers["x-provider"] == "groq"
    assert rig.sleep.delays == [2.0]
    assert len(fake_groq.requests) == 2
