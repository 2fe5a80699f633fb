"""DramatiqRunner passes core's runner conformance suite on a real broker (Redis or RabbitMQ),
with a Dramatiq worker consuming in this process so the suite can count side effects in memory."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from dramatiq import Worker
from dramatiq.broker import Broker
from plushify_dramatiq.runner import DramatiqRunner
from plushify_dramatiq.settings import DramatiqSettings

from plushify_core.engine import Engine
from plushify_core.runner import Runner
from plushify_core.testing.conformance_runner import RunnerConformance


class TestDramatiqConformance(RunnerConformance):
    """The conformance suite, executed by an in-process Dramatiq worker on a real broker."""

    @pytest.fixture
    def start_runner(
        self, options: DramatiqSettings, broker: Broker
    ) -> Iterator[Callable[[Engine], Runner]]:
        """A DramatiqRunner on the test's private queue plus an in-process Dramatiq worker."""
        workers: list[Worker] = []

        def start(engine: Engine) -> Runner:
            runner = DramatiqRunner(engine, options=options, broker=broker)
            runner.start()
            worker = Worker(broker, worker_threads=4, worker_timeout=100)
            worker.start()
            workers.append(worker)
            return runner

        yield start
        for worker in workers:
            worker.stop(timeout=30_000)


def test_the_runner_satisfies_the_protocol(options: DramatiqSettings, broker: Broker) -> None:
    """DramatiqRunner(engine, settings) is a Runner, as the entry point's factory must build."""
    from sqlalchemy import create_engine

    runner = DramatiqRunner(Engine(create_engine("sqlite://")), options=options, broker=broker)
    assert isinstance(runner, Runner)


def test_the_entry_point_names_the_runner_factory(
    monkeypatch: pytest.MonkeyPatch, options: DramatiqSettings
) -> None:
    """Group plushify.runners has ``dramatiq``; factory(engine, settings) reads PLUSHIFY_QUEUE."""
    from importlib.metadata import entry_points

    from sqlalchemy import create_engine

    from plushify_core.settings import Settings

    [entry] = [e for e in entry_points(group="plushify.runners") if e.name == "dramatiq"]
    factory = entry.load()
    assert factory is DramatiqRunner
    monkeypatch.setenv("PLUSHIFY_BROKER_URL", options.broker_url)
    monkeypatch.setenv("PLUSHIFY_QUEUE", "from_env")
    runner = factory(Engine(create_engine("sqlite://")), Settings(runner="dramatiq"))
    try:
        assert runner.queue == "from_env" and runner.options.broker_url == options.broker_url
    finally:
        runner.stop()
