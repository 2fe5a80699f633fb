"""Clients take turns for waitress's threads (``plushify serve``'s dispatcher), on a real server."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from waitress.server import create_server  # type: ignore[import-untyped]

from plushify_flask.fair_dispatch import FairDispatcher, FairQueue


def test_the_queue_serves_clients_in_turn_and_caps_each() -> None:
    """A's five tasks and B's one: B runs second, and A never holds more than its cap."""
    queue = FairQueue(per_client=2)
    for i in range(5):
        queue.append(f"a{i}", key="A")
    queue.append("b0", key="B")
    order = [queue.take()[1] for _ in range(3)]
    assert order == ["a0", "b0", "a1"]
    assert not queue.ready() and len(queue) == 3  # A is at its cap, B has nothing left
    queue.done("A")
    assert queue.ready() and queue.take() == ("A", "a2")
    assert [queue.popleft() for _ in range(len(queue))] == ["a3", "a4"] and not queue


@contextmanager
def serving(app: Any, per_client: int, threads: int) -> Iterator[tuple[int, FairDispatcher]]:
    dispatcher = FairDispatcher(per_client)
    dispatcher.set_thread_count(threads)
    server = create_server(app, host="127.0.0.1", port=0, threads=threads, _dispatcher=dispatcher)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield int(server.effective_port), dispatcher
    finally:
        server.close()
        dispatcher.shutdown()


def test_a_busy_client_cannot_take_every_thread() -> None:
    """Client A has one request stuck and three more queued; client B is answered meanwhile,
    and A's queued requests run once its first one finishes."""
    release = threading.Event()
    started: list[str] = []

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        who = environ.get("HTTP_AUTHORIZATION", "")
        started.append(who)
        if who == "A":
            release.wait(timeout=60)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [who.encode()]

    def get(port: int, who: str, out: list[str]) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("GET", "/", headers={"Authorization": who})
        out.append(conn.getresponse().read().decode())
        conn.close()

    answers: list[str] = []
    with serving(app, per_client=1, threads=4) as (port, dispatcher):
        first = threading.Thread(target=get, args=(port, "A", answers))
        first.start()
        while "A" not in started:  # A's first request holds a thread
            first.join(timeout=0.01)
        more = [threading.Thread(target=get, args=(port, "A", answers)) for _ in range(3)]
        for t in more:
            t.start()
        for _ in range(6000):  # until all three wait in the queue (each poll is 10 ms at most)
            with dispatcher.lock:
                if len(dispatcher.queue) == 3:
                    break
            first.join(timeout=0.01)
        assert len(dispatcher.queue) == 3 and started.count("A") == 1
        get(port, "B", answers)  # three threads are free and A may use only one
        assert answers == ["B"] and started.count("A") == 1
        release.set()
        for t in [first, *more]:
            t.join(timeout=60)
    assert sorted(answers) == ["A", "A", "A", "A", "B"]
