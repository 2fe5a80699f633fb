"""The async facade on asyncio and trio: real in-process workers, real database, fake model."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator

import anyio
import pytest

from plushify_core.aio import AsyncPlushify
from plushify_core.database import open_database
from plushify_core.errors import NotFound
from plushify_core.facade import Plushify
from plushify_core.ids import new_id
from plushify_core.ledger import Balance
from plushify_core.settings import Settings
from plushify_core.storage import BlobStore
from plushify_core.testing.fake_model import FakeModel
from plushify_core.testing.images import photo

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _facade(database_url: str, *, delay: float = 0.0) -> Plushify:
    config = Settings(
        database_url=database_url,
        storage_url=f"memory://plushify-aio-{new_id()[:10]}",
        model="fake",
        workers=2,
    )
    return Plushify(
        database=open_database(config.database_url),
        storage=BlobStore(config.storage_url),
        model=FakeModel(delay=delay),
        settings=config,
    )


@pytest.fixture
async def app(database_url: str) -> AsyncIterator[AsyncPlushify]:
    """A started async facade whose generations run in in-process worker threads."""
    async with AsyncPlushify(_facade(database_url), threads=4) as started:
        yield started


async def test_submit_wait_and_read_back(app: AsyncPlushify) -> None:
    """Submit, await the end, then read the images and the balance, all through awaits."""
    app.sync.ledger.grant("ada", 2, key="g")
    gen = await app.submit("ada", photo(seed=1))
    assert gen.status == "processing"
    done = await app.wait("ada", gen.id, timeout=60, interval=0.02)
    assert done.status == "completed"
    data, content_type = await app.image("ada", gen.id, "plushie")
    assert content_type == "image/png" and data.startswith(b"\x89PNG")
    balance = await app.balance("ada")
    assert (balance.credits, balance.in_use) == (1, 0)
    assert [g.id for g in await app.list("ada")] == [gen.id]
    assert await app.processing_count("ada") == 0
    await app.delete("ada", gen.id)
    with pytest.raises(NotFound):
        await app.get("ada", gen.id)


async def test_calls_run_off_the_event_loop(app: AsyncPlushify) -> None:
    """The sync facade runs in a worker thread, never in the event loop's own thread."""
    loop_thread = threading.get_ident()
    seen: list[int] = []
    original = app.sync.balance

    def balance(user_id: str) -> Balance:
        seen.append(threading.get_ident())
        return original(user_id)

    app.sync.balance = balance  # type: ignore[method-assign]
    await app.balance("ada")
    assert seen and seen[0] != loop_thread


async def test_errors_pass_through(app: AsyncPlushify) -> None:
    """Someone else's (or no) generation is NotFound, as with the sync facade."""
    with pytest.raises(NotFound):
        await app.wait("ada", "0" * 32, timeout=5)


async def test_wait_times_out_on_a_generation_still_running(database_url: str) -> None:
    """A generation that outlives the timeout raises TimeoutError and is still processing."""
    sync = _facade(database_url, delay=0.5)
    async with AsyncPlushify(sync) as app:
        sync.ledger.grant("bo", 1, key="g")
        gen = await app.submit("bo", photo(seed=2))
        with pytest.raises(TimeoutError):
            await app.wait("bo", gen.id, timeout=0.05, interval=0.01)
        assert (await app.get("bo", gen.id)).status == "processing"
        assert (await app.wait("bo", gen.id, timeout=60, interval=0.05)).status == "completed"


async def test_cancelling_the_waiter_leaves_the_generation_running(database_url: str) -> None:
    """Cancelling the awaiting task stops the waiting only: the generation still completes."""
    sync = _facade(database_url, delay=0.2)
    async with AsyncPlushify(sync) as app:
        sync.ledger.grant("cy", 1, key="g")
        gen = await app.submit("cy", photo(seed=3))
        waited: list[str] = []

        async def waiter() -> None:
            waited.append((await app.wait("cy", gen.id, interval=0.01)).status)

        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            await anyio.sleep(0.05)
            tg.cancel_scope.cancel()
        assert waited == []
        assert (await app.get("cy", gen.id)).status == "processing"
        done = await app.wait("cy", gen.id, timeout=60, interval=0.05)
        assert done.status == "completed"
        assert (await app.balance("cy")).credits == 0
