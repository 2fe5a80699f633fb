"""Many threads at once: the same answers and bytes as one thread, and no internal errors."""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

import cv2
import numpy as np
import pytest
from local_helpers import photo, shrink
from plushify_local import LocalModel, classifier, faces
from plushify_local.decode import decode_image
from plushify_local.recognition import Recognition, recognize

from plushify_core.errors import ModelError
from plushify_core.model import Analysis

NAMES = ("astronaut", "chelsea", "coffee", "rocket", "camera")
THREADS = 4
ROUNDS = 2


def test_analyze_from_many_threads_matches_one_thread(local_model: LocalModel) -> None:
    """Four threads analysing the photos over and over get exactly the single-thread analyses."""
    photos = {name: photo(name) for name in NAMES}
    expected = {name: local_model.analyze(data, "image/jpeg") for name, data in photos.items()}
    jobs = [name for _ in range(ROUNDS) for name in NAMES]

    def run(name: str) -> tuple[str, Analysis]:
        return name, local_model.analyze(photos[name], "image/jpeg")

    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(run, jobs))
    assert len(results) == len(jobs)
    for name, analysis in results:
        assert analysis == expected[name], name


def _recognize(data: bytes) -> Recognition:
    """Uncached recognition (analyze() may answer from the per-process cache)."""
    return recognize(decode_image(data))


def test_recognize_from_many_threads_matches_one_thread() -> None:
    """The networks themselves (no cache) give every thread the single-thread answer."""
    photos = {name: photo(name) for name in NAMES}
    expected = {name: _recognize(data) for name, data in photos.items()}
    jobs = [name for _ in range(ROUNDS) for name in NAMES]
    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(lambda name: (name, _recognize(photos[name])), jobs))
    for name, found in results:
        assert found == expected[name], name
    # Threads share a bounded pool of networks instead of one copy each.
    for nets in (classifier.NETS, faces.NETS):
        assert 1 <= nets.created <= (os.cpu_count() or 1)


def test_forked_workers_match_the_parent() -> None:
    """Processes forked after the parent loaded its networks (as worker pools do) agree with it."""
    photos = [photo("astronaut"), photo("chelsea"), photo("coffee")]
    expected = [_recognize(data) for data in photos]
    with multiprocessing.get_context("fork").Pool(2) as pool:
        results = pool.map(_recognize, photos * 2)
    assert results == expected * 2


def test_fork_while_every_network_is_borrowed() -> None:
    """A worker forked while the parent's threads hold all its networks still analyses."""
    data = photo("coffee")
    expected = _recognize(data)
    with ExitStack() as held:
        for pool in (classifier.NETS, faces.NETS):
            for _ in range(os.cpu_count() or 1):
                held.enter_context(pool.borrow())
        with multiprocessing.get_context("fork").Pool(1) as workers:
            assert workers.apply_async(_recognize, (data,)).get(timeout=120) == expected


def test_generate_from_many_threads_matches_one_thread() -> None:
    """Separate model instances in four threads render the same bytes as a single thread."""
    photos = {name: shrink(photo(name), 160) for name in NAMES}
    single = LocalModel()
    expected = {name: single.generate(data, "image/png", "") for name, data in photos.items()}
    jobs = [name for _ in range(2) for name in NAMES]

    def run(name: str) -> tuple[str, bytes]:
        return name, LocalModel().generate(photos[name], "image/png", "")

    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(run, jobs))
    assert [name for name, _ in results] == jobs
    for name, png in results:
        assert png == expected[name], name


class _BrokenInside(LocalModel):
    """A model whose rendering hits a real OpenCV assertion (empty input to cv2.resize)."""

    @staticmethod
    def _render(pixels: np.ndarray) -> np.ndarray:
        return np.asarray(cv2.resize(np.zeros((0, 0), np.uint8), (4, 4)))


def test_internal_opencv_error_is_retryable_without_its_text() -> None:
    """An OpenCV failure inside the model is a retryable ModelError whose message hides C++ text."""
    with pytest.raises(ModelError) as raised:
        _BrokenInside().generate(shrink(photo("coffee"), 64), "image/png", "")
    error = raised.value
    assert error.retryable is True
    assert error.code == "model_internal_error"
    assert isinstance(error.__cause__, cv2.error)
    assert "OpenCV" not in error.message and "Assertion" not in error.message
    assert "(-215" in str(error.__cause__)


def test_decode_error_hides_pillow_text(local_model: LocalModel) -> None:
    """An undecodable upload is a permanent error in plain words, not Pillow's internals."""
    with pytest.raises(ModelError) as raised:
        local_model.analyze(b"not an image", "image/png")
    assert raised.value.retryable is False
    assert "BytesIO" not in raised.value.message
    assert raised.value.message.startswith("cannot decode the image (image/png)")
