"""Operator logs: run context on every record of a run, JSON lines, nothing secret printed."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from facade_support import Harness, make_harness

from plushify_core.logs import current_context, log_context, setup_logging
from plushify_core.testing.images import photo


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """JSON logging to a buffer, removed (and the root level restored) afterwards."""
    root = logging.getLogger()
    level = root.level
    stream = io.StringIO()
    handler = setup_logging("json", "DEBUG", stream=stream)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_every_record_of_a_run_carries_its_ids(database_url: str, captured: io.StringIO) -> None:
    """Records logged while a run executes carry run, generation, user, step and attempt."""
    h: Harness = make_harness(database_url)
    h.model.fail("generate", 1)
    h.app.ledger.grant("alice", 1, key="g:alice")
    gen = h.app.submit("alice", photo(64, 48))
    h.drain()
    records = [r for r in lines(captured) if r.get("run_id") == gen.id]
    steps = [r for r in records if r["message"] in ("step completed", "step failed")]
    assert len(steps) == 6  # five steps, one of them twice
    for record in steps:
        assert record["generation_id"] == gen.id and record["user_id"] == "alice"
        assert record["step"] and isinstance(record["attempt"], int)
    retried = [r for r in steps if r["step"] == "generate-plushie"]
    assert [r["attempt"] for r in retried] == [1, 2]
    started = [r for r in records if r["message"] == "run started"]
    assert started and all(r["user_id"] == "alice" for r in started)


def test_secrets_and_bytes_never_reach_the_output(captured: io.StringIO) -> None:
    """Secret-looking fields are redacted and bytes are replaced by their length."""
    logging.getLogger("plushify_core.test").info(
        "upload", extra={"api_key": "sk-123", "image": b"\x89PNG....", "password": "hunter2"}
    )
    (record,) = lines(captured)
    assert record["api_key"] == "[redacted]" and record["password"] == "[redacted]"
    assert record["image"] == "<8 bytes>"
    assert "sk-123" not in captured.getvalue() and "hunter2" not in captured.getvalue()


def test_log_context_nests_and_unwinds() -> None:
    """Inner bindings add to outer ones and vanish when their block ends."""
    with log_context(run_id="r1", attempt=1):
        with log_context(step="s", attempt=2):
            assert current_context() == {"run_id": "r1", "attempt": 2, "step": "s"}
        assert current_context() == {"run_id": "r1", "attempt": 1}
    assert current_context() == {}


def test_text_format_appends_the_context() -> None:
    """The default text format shows the bound fields as key=value after the message."""
    root = logging.getLogger()
    level = root.level
    stream = io.StringIO()
    handler = setup_logging("text", "INFO", stream=stream)
    try:
        with log_context(run_id="r9", step="finalize"):
            logging.getLogger("plushify_core.test").info("hello")
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    assert "hello [run_id=r9 step=finalize]" in stream.getvalue()


def test_an_unknown_format_is_refused() -> None:
    """PLUSHIFY_LOG_FORMAT accepts json or text only."""
    with pytest.raises(ValueError, match="json or text"):
        setup_logging("xml")
