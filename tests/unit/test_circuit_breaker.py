"""CircuitBreaker with a settable clock."""

from __future__ import annotations

from app.domain.circuit_breaker import CircuitBreaker
from tests.unit.fakes import FakeClock


def breaker(clock: FakeClock, threshold: int = 3, cooldown: float = 30) -> CircuitBreaker:
    return CircuitBreaker(clock=clock, failure_threshold=threshold, cooldown_seconds=cooldown)


def test_a_new_circuit_is_closed_and_admits_calls() -> None:
    circuit = breaker(FakeClock())

    assert circuit.state == "closed"
    assert circuit.admit() == "closed"


def test_it_opens_after_the_threshold_of_consecutive_failures() -> None:
    circuit = breaker(FakeClock(), threshold=3)

    circuit.record_failure()
    circuit.record_failure()
    assert circuit.state == "closed"
    circuit.record_failure()

    assert circuit.state == "open"
    assert circuit.admit() is None


def test_a_success_resets_the_count_of_failures() -> None:
    circuit = breaker(FakeClock(), threshold=3)

    circuit.record_failure()
    circuit.record_failure()
    circuit.record_success()
    circuit.record_failure()
    circuit.record_failure()

    assert circuit.state == "closed"


def test_it_stays_open_for_the_cooldown_and_says_how_long() -> None:
    clock = FakeClock()
    circuit = breaker(clock, threshold=1, cooldown=30)
    circuit.record_failure()

    clock.advance(seconds=29)

    assert circuit.admit() is None
    assert circuit.retry_after() == 1


def test_after_the_cooldown_exactly_one_probe_is_let_through() -> None:
    clock = FakeClock()
    circuit = breaker(clock, threshold=1, cooldown=30)
    circuit.record_failure()
    clock.advance(seconds=30)

    assert circuit.state == "half_open"
    assert circuit.admit() == "probe"
    assert circuit.admit() is None


def test_a_successful_probe_closes_the_circuit() -> None:
    clock = FakeClock()
    circuit = breaker(clock, threshold=1, cooldown=30)
    circuit.record_failure()
    clock.advance(seconds=31)
    circuit.admit()

    circuit.record_success()

    assert circuit.state == "closed"
    assert circuit.admit() == "closed"


def test_a_failed_probe_reopens_it_for_a_new_cooldown() -> None:
    clock = FakeClock()
    circuit = breaker(clock, threshold=2, cooldown=30)
    circuit.record_failure()
    circuit.record_failure()
    clock.advance(seconds=31)
    circuit.admit()

    circuit.record_failure()

    assert circuit.state == "open"
    assert circuit.retry_after() == 30
    clock.advance(seconds=30)
    assert circuit.admit() == "probe"


def test_a_probe_without_verdict_lets_the_next_request_probe() -> None:
    clock = FakeClock()
    circuit = breaker(clock, threshold=1, cooldown=5)
    circuit.record_failure()
    clock.advance(seconds=5)
    assert circuit.admit() == "probe"

    circuit.release()

    assert circuit.admit() == "probe"


def test_late_failures_do_not_extend_an_open_circuit() -> None:
    clock = FakeClock()
    circuit = breaker(clock, threshold=1, cooldown=30)
    circuit.record_failure()
    clock.advance(seconds=20)

    circuit.record_failure()  # a call admitted before the circuit opened

    assert circuit.retry_after() == 10
