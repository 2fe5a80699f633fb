"""Idempotent submit: one key and one photo make one generation, per user, while the key lives."""

from __future__ import annotations

import threading

import pytest
from facade_support import Harness, make_harness

from plushify_core.aio import AsyncPlushify
from plushify_core.errors import IdempotencyConflict, InsufficientCredits, InvalidIdempotencyKey
from plushify_core.generations import Generation
from plushify_core.storage import staging_key
from plushify_core.testing.images import photo


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def h(database_url: str) -> Harness:
    return make_harness(database_url, idempotency_ttl=3600)


def test_same_key_and_photo_returns_the_first_generation_reserving_nothing(h: Harness) -> None:
    h.app.ledger.grant("ann", 1, key="g")
    data = photo(seed=1)
    first = h.app.submit("ann", data, idempotency_key="upload-1")
    # The only credit is in use: a second submit would be refused, a replay is not.
    again = h.app.submit("ann", data, idempotency_key="upload-1")
    assert again.replayed and not first.replayed
    assert again.model_dump(exclude={"replayed"}) == first.model_dump(exclude={"replayed"})
    assert [g.id for g in h.app.list("ann")] == [first.id]
    assert h.app.storage.keys() == [staging_key("ann", first.id)]
    assert h.app.balance("ann").in_use == 1
    h.drain()
    # The replay answers what the first submit answered, even after completion.
    later = h.app.submit("ann", data, idempotency_key="upload-1")
    assert (later.id, later.status) == (first.id, "processing")
    assert h.app.get("ann", first.id).status == "completed"
    assert h.app.balance("ann").credits == 0


def test_same_key_with_another_photo_is_a_conflict_leaving_nothing(h: Harness) -> None:
    h.app.ledger.grant("bob", 3, key="g")
    h.app.submit("bob", photo(seed=1), idempotency_key="k")
    with pytest.raises(IdempotencyConflict) as info:
        h.app.submit("bob", photo(seed=2), idempotency_key="k")
    assert info.value.code == "idempotency_key_reused"
    assert len(h.app.list("bob")) == 1 and len(h.app.storage.keys()) == 1
    assert h.app.balance("bob").in_use == 1
    with pytest.raises(IdempotencyConflict):
        h.app.replay("bob", "k", photo(seed=2))


def test_keys_are_per_user_and_expire(h: Harness) -> None:
    for user in ("cy", "di"):
        h.app.ledger.grant(user, 3, key=f"g-{user}")
    data = photo(seed=3)
    mine = h.app.submit("cy", data, idempotency_key="shared")
    theirs = h.app.submit("di", data, idempotency_key="shared")
    assert mine.id != theirs.id and not theirs.replayed
    h.clock.advance(3600)  # the key's lifetime (Settings.idempotency_ttl)
    assert h.app.replay("cy", "shared", data) is None
    fresh = h.app.submit("cy", photo(seed=4), idempotency_key="shared")
    assert fresh.id != mine.id and not fresh.replayed


def test_a_refused_submit_keeps_the_key_free(h: Harness) -> None:
    data = photo(seed=5)
    with pytest.raises(InsufficientCredits, match="credits"):
        h.app.submit("eve", data, idempotency_key="k")
    h.app.ledger.grant("eve", 1, key="g")
    gen = h.app.submit("eve", data, idempotency_key="k")
    assert not gen.replayed and h.app.balance("eve").in_use == 1


def test_deleting_the_generation_frees_its_key(h: Harness) -> None:
    h.app.ledger.grant("fay", 2, key="g")
    data = photo(seed=6)
    gen = h.app.submit("fay", data, idempotency_key="k")
    h.drain()
    h.app.delete("fay", gen.id)
    assert h.app.replay("fay", "k", data) is None


@pytest.mark.parametrize("key", ["", "a b", "x" * 256, "naïve"])
def test_malformed_keys_are_refused_before_anything_happens(h: Harness, key: str) -> None:
    h.app.ledger.grant("gus", 1, key="g")
    with pytest.raises(InvalidIdempotencyKey):
        h.app.submit("gus", photo(seed=7), idempotency_key=key)
    assert h.app.list("gus") == [] and h.app.balance("gus").in_use == 0


def test_concurrent_submits_with_one_key_make_one_generation(h: Harness) -> None:
    """Eight threads submit one photo under one key at once: one generation, one credit held."""
    h.app.ledger.grant("hal", 5, key="g")
    data = photo(seed=8)
    barrier = threading.Barrier(8)
    results: list[Generation] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def submit() -> None:
        barrier.wait()
        try:
            gen = h.app.submit("hal", data, idempotency_key="race")
        except BaseException as exc:  # reported below
            with lock:
                errors.append(exc)
        else:
            with lock:
                results.append(gen)

    threads = [threading.Thread(target=submit) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len({g.id for g in results}) == 1
    assert sum(not g.replayed for g in results) == 1
    assert len(h.app.list("hal")) == 1 and len(h.app.storage.keys()) == 1
    assert h.app.balance("hal").in_use == 1


@pytest.mark.anyio
async def test_async_submit_takes_the_key(database_url: str) -> None:
    h = make_harness(database_url)
    h.app.ledger.grant("ivy", 2, key="g")
    aio = AsyncPlushify(h.app)
    data = photo(seed=9)
    first = await aio.submit("ivy", data, idempotency_key="a")
    again = await aio.submit("ivy", data, idempotency_key="a")
    assert again.replayed and again.id == first.id
    assert (await aio.replay("ivy", "a", data)) is not None
