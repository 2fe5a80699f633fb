"""Periodic: the background loop runners use for schedules and sweeps."""

from __future__ import annotations

import threading

import pytest

from plushify_core.periodic import Periodic


def test_a_failing_call_is_logged_and_the_loop_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    """The first call raises; the next one still comes; stop() ends the thread."""
    calls: list[int] = []
    second = threading.Event()

    def tick() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise OSError("database down")
        second.set()

    loop = Periodic(tick, 0.01, name="test-periodic")
    loop.start()
    loop.start()  # idempotent: still one thread
    assert second.wait(10)
    loop.stop()
    assert not [t for t in threading.enumerate() if t.name == "test-periodic"]
    assert "test-periodic failed" in caplog.text


def test_nothing_runs_before_the_first_delay_or_after_stop() -> None:
    """With a long first delay, stopping at once means the function never ran."""
    calls: list[int] = []
    loop = Periodic(lambda: calls.append(1), 0.01, name="test-delayed", first_delay=3600)
    loop.start()
    loop.stop()
    assert calls == []


def test_interval_must_be_positive() -> None:
    """A zero interval would spin."""
    with pytest.raises(ValueError):
        Periodic(lambda: None, 0, name="x")
