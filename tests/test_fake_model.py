"""FakeModel: deterministic results, scripted faults, call log; and the model conformance suite."""

from __future__ import annotations

import io
import threading

import pytest
from PIL import Image

from plushify_core.errors import ConfigurationError, ModelError
from plushify_core.model import Analysis, Model
from plushify_core.settings import Settings
from plushify_core.testing.conformance import ModelConformance
from plushify_core.testing.fake_model import FakeModel, FakeSettings, Fault, parse_faults
from plushify_core.testing.images import photo

PROMPT = "a cute plush toy version"


class TestFakeModelConformance(ModelConformance):
    """FakeModel passes the contract every model backend must pass."""

    @pytest.fixture
    def model(self) -> Model:
        """A FakeModel with no faults."""
        return FakeModel()


def test_analysis_is_deterministic_per_photo() -> None:
    """The same photo always gets the same analysis, also from another FakeModel instance."""
    data = photo(seed=11)
    first = FakeModel().analyze(data, "image/jpeg")
    assert FakeModel().analyze(data, "image/jpeg") == first
    subjects = {FakeModel().analyze(photo(seed=s), "image/jpeg").subject_type for s in range(30)}
    assert subjects == {"person", "pet", "other"}


def test_scripted_analysis_is_returned() -> None:
    """An analysis given to the constructor is what analyze() returns."""
    fixed = Analysis(subject_type="pet", description="A cat.", key_features=["whiskers"])
    assert FakeModel(analysis=fixed).analyze(photo(), "image/jpeg") == fixed


def test_generate_derives_a_png_with_the_same_aspect() -> None:
    """generate() returns a real PNG from the input, keeping its aspect ratio."""
    png = FakeModel().generate(photo(400, 200), "image/jpeg", PROMPT)
    with Image.open(io.BytesIO(png)) as img:
        assert img.format == "PNG"
        assert img.size == (400, 200)
    big = FakeModel().generate(photo(1000, 500), "image/jpeg", PROMPT)
    with Image.open(io.BytesIO(big)) as img:
        assert img.size == (512, 256)


def test_repeated_photo_gets_the_same_outputs_and_faults_still_apply() -> None:
    """Outputs remembered per photo are the ones computed fresh; a fault scripted after a
    photo's outputs were remembered still fails its next call; a bad image is never remembered."""
    model = FakeModel()
    data = photo(seed=5)
    png = model.generate(data, "image/jpeg", PROMPT)
    analysis = model.analyze(data, "image/jpeg")
    assert model.generate(data, "image/jpeg", PROMPT) == png
    assert FakeModel().generate(data, "image/jpeg", PROMPT) == png
    assert model.analyze(data, "image/jpeg") == analysis
    model.fail("generate", 1)
    with pytest.raises(ModelError):
        model.generate(data, "image/jpeg", PROMPT)
    assert model.generate(data, "image/jpeg", PROMPT) == png
    model.analysis = Analysis(subject_type="pet", description="A cat.", key_features=["fur"])
    assert model.analyze(data, "image/jpeg") == model.analysis
    for _ in range(2):
        with pytest.raises(ModelError) as bad:
            model.analyze(b"not an image", "image/jpeg")
        assert bad.value.code == "model_bad_input"


def test_first_n_calls_per_image_fail_retryably() -> None:
    """generate:2 fails the first two calls for each photo, then succeeds; analyze is unaffected."""
    model = FakeModel(faults="generate:2")
    a, b = photo(seed=1), photo(seed=2)
    model.analyze(a, "image/jpeg")
    for data in (a, b):
        for _ in range(2):
            with pytest.raises(ModelError) as raised:
                model.generate(data, "image/jpeg", PROMPT)
            assert raised.value.retryable is True and raised.value.retry_after is None
        model.generate(data, "image/jpeg", PROMPT)
    assert [c.outcome for c in model.calls_to("generate")] == ["retryable"] * 2 + ["ok"] + [
        "retryable"
    ] * 2 + ["ok"]


def test_global_scope_counts_all_calls() -> None:
    """With scope='global' the first N calls fail whatever the image."""
    model = FakeModel(faults={"analyze": Fault(times=1)}, scope="global")
    with pytest.raises(ModelError):
        model.analyze(photo(seed=1), "image/jpeg")
    model.analyze(photo(seed=2), "image/jpeg")


def test_fatal_fault_is_not_retryable() -> None:
    """analyze:fatal fails every call with a non-retryable ModelError."""
    model = FakeModel(faults="analyze:fatal")
    for _ in range(3):
        with pytest.raises(ModelError) as raised:
            model.analyze(photo(), "image/jpeg")
        assert raised.value.retryable is False
    assert {c.outcome for c in model.calls} == {"fatal"}


def test_retry_after_fault_carries_the_delay() -> None:
    """generate:1@30 fails once asking the engine to wait 30 seconds."""
    model = FakeModel(faults="generate:1@30")
    with pytest.raises(ModelError) as raised:
        model.generate(photo(), "image/jpeg", PROMPT)
    assert raised.value.retryable is True and raised.value.retry_after == 30.0
    model.generate(photo(), "image/jpeg", PROMPT)


def test_faults_scripted_at_run_time_and_healed() -> None:
    """fail()/fail_always() script faults on a live model; heal() removes them."""
    model = FakeModel()
    model.fail("analyze", 1, retry_after=5)
    with pytest.raises(ModelError):
        model.analyze(photo(), "image/jpeg")
    model.analyze(photo(), "image/jpeg")
    model.fail_always("generate")
    with pytest.raises(ModelError):
        model.generate(photo(), "image/jpeg", PROMPT)
    model.heal()
    model.generate(photo(), "image/jpeg", PROMPT)


def test_settings_give_delay_and_faults(monkeypatch: pytest.MonkeyPatch) -> None:
    """from_settings reads PLUSHIFY_FAKE_*; the delay goes through the injected sleep."""
    monkeypatch.setenv("PLUSHIFY_FAKE_DELAY", "1.5")
    monkeypatch.setenv("PLUSHIFY_FAKE_FAIL", "generate:1,analyze:fatal")
    model = FakeModel.from_settings(Settings())
    assert model.delay == 1.5
    assert model.faults == {"generate": Fault(times=1), "analyze": Fault(fatal=True)}
    assert "fake_delay" not in Settings.model_fields  # a test knob, not a production setting
    slept: list[float] = []
    quick = FakeModel(FakeSettings(delay=1.5, fail=""), sleep=slept.append)
    quick.analyze(photo(), "image/jpeg")
    quick.generate(photo(), "image/jpeg", PROMPT)
    assert slept == [1.5, 1.5]


@pytest.mark.parametrize(
    "spec", ["render:1", "generate", "generate:x", "generate:-1", "analyze:1@soon"]
)
def test_bad_fault_specs_are_configuration_errors(spec: str) -> None:
    """A malformed PLUSHIFY_FAKE_FAIL fails at start-up with a ConfigurationError."""
    with pytest.raises(ConfigurationError, match="PLUSHIFY_FAKE_FAIL"):
        parse_faults(spec)


def test_empty_prompt_is_rejected() -> None:
    """generate() with a blank prompt is a non-retryable ModelError."""
    with pytest.raises(ModelError) as raised:
        FakeModel().generate(photo(), "image/jpeg", "  ")
    assert raised.value.retryable is False


def test_hold_parks_calls_until_release() -> None:
    """hold() keeps calls waiting until release(); a call held too long fails retryably."""
    model = FakeModel()
    model.hold()
    done = threading.Event()

    def call() -> None:
        model.analyze(photo(), "image/jpeg")
        done.set()

    worker = threading.Thread(target=call)
    worker.start()
    assert not done.wait(0.05)
    model.release()
    worker.join(5)
    assert done.is_set()
    impatient = FakeModel(hold_timeout=0.01)
    impatient.hold()
    with pytest.raises(ModelError) as raised:
        impatient.analyze(photo(), "image/jpeg")
    assert raised.value.retryable is True


def test_call_log_is_thread_safe() -> None:
    """Concurrent calls are all logged, and each photo's fault budget is spent exactly once."""
    model = FakeModel(faults="analyze:3")
    data = photo(32, 32)
    outcomes: list[str] = []
    lock = threading.Lock()

    def call() -> None:
        for _ in range(5):
            try:
                model.analyze(data, "image/jpeg")
                result = "ok"
            except ModelError:
                result = "failed"
            with lock:
                outcomes.append(result)

    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(model.calls) == 40
    assert outcomes.count("failed") == 3
