"""Settings from the environment, the entry point, and failing fast on a missing key."""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest
from plushify_gemini import GeminiModel, GeminiSettings
from plushify_gemini.testing import FakeGeminiServer

from plushify_core.errors import ConfigurationError
from plushify_core.settings import Settings


def test_environment_names_and_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fixed PLUSHIFY_GEMINI_* names are read; unset ones take the documented defaults."""
    monkeypatch.setenv("PLUSHIFY_GEMINI_API_KEY", "k1")
    defaults = GeminiSettings()
    assert defaults.api_key is not None and defaults.api_key.get_secret_value() == "k1"
    assert (defaults.analysis_model, defaults.image_model) == (
        "gemini-2.5-flash",
        "gemini-2.5-flash-image",
    )
    assert defaults.timeout == 120.0
    assert defaults.base_url is None

    monkeypatch.setenv("PLUSHIFY_GEMINI_ANALYSIS_MODEL", "gemini-x")
    monkeypatch.setenv("PLUSHIFY_GEMINI_IMAGE_MODEL", "gemini-x-image")
    monkeypatch.setenv("PLUSHIFY_GEMINI_TIMEOUT", "7.5")
    monkeypatch.setenv("PLUSHIFY_GEMINI_BASE_URL", "http://127.0.0.1:9")
    custom = GeminiSettings()
    assert (custom.analysis_model, custom.image_model) == ("gemini-x", "gemini-x-image")
    assert (custom.timeout, custom.base_url) == (7.5, "http://127.0.0.1:9")


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"GOOGLE_API_KEY": "g"}, "g"),
        ({"GOOGLE_API_KEY": "g", "GEMINI_API_KEY": "m"}, "m"),
        ({"GOOGLE_API_KEY": "g", "GEMINI_API_KEY": "m", "PLUSHIFY_GEMINI_API_KEY": "p"}, "p"),
    ],
    ids=["google", "gemini-over-google", "plushify-over-all"],
)
def test_api_key_fallbacks(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str
) -> None:
    """PLUSHIFY_GEMINI_API_KEY wins, then GEMINI_API_KEY, then GOOGLE_API_KEY."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    key = GeminiSettings().api_key

    assert key is not None and key.get_secret_value() == expected


def test_missing_key_fails_at_construction_with_one_line(fake_gemini: FakeGeminiServer) -> None:
    """Without a key the factory raises one clear line at start-up and sends nothing."""
    with pytest.raises(ConfigurationError) as caught:
        GeminiModel.from_settings(Settings())

    message = str(caught.value)
    assert "\n" not in message
    assert "PLUSHIFY_GEMINI_API_KEY" in message
    assert fake_gemini.requests == []


def test_blank_key_counts_as_missing() -> None:
    """A key of only whitespace is treated as no key."""
    with pytest.raises(ConfigurationError):
        GeminiModel(GeminiSettings(api_key="   "))


def test_invalid_setting_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """A malformed PLUSHIFY_GEMINI_TIMEOUT fails at start-up naming the variable."""
    monkeypatch.setenv("PLUSHIFY_GEMINI_API_KEY", "k")
    monkeypatch.setenv("PLUSHIFY_GEMINI_TIMEOUT", "soon")

    with pytest.raises(ConfigurationError) as caught:
        GeminiModel.from_settings(Settings())

    assert "PLUSHIFY_GEMINI_TIMEOUT" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_entry_point_builds_a_working_model(
    monkeypatch: pytest.MonkeyPatch, fake_gemini: FakeGeminiServer, photo: bytes
) -> None:
    """`gemini` in plushify.models resolves to the factory, which reads the environment."""
    monkeypatch.setenv("GEMINI_API_KEY", "from-env")
    monkeypatch.setenv("PLUSHIFY_GEMINI_BASE_URL", fake_gemini.base_url)
    (entry,) = entry_points(group="plushify.models", name="gemini")

    with entry.load()(Settings()) as model:
        assert isinstance(model, GeminiModel)
        analysis = model.analyze(photo, "image/jpeg")

    assert analysis.subject_type == "pet"
    assert fake_gemini.requests[0].api_key == "from-env"


def test_key_is_never_shown() -> None:
    """Neither the settings nor the model print the key in their repr."""
    settings = GeminiSettings(api_key="sk-secret-value", base_url="http://127.0.0.1:9")

    with GeminiModel(settings) as model:
        assert "sk-secret-value" not in repr(settings)
        assert "sk-secret-value" not in repr(model)


def test_dotenv_file_is_read() -> None:
    """A .env file in the working directory (a fresh tmp dir) provides the settings."""
    with open(".env", "w") as env_file:
        env_file.write("PLUSHIFY_GEMINI_API_KEY=from-dotenv\nPLUSHIFY_GEMINI_TIMEOUT=30\n")

    settings = GeminiSettings()

    assert settings.api_key is not None and settings.api_key.get_secret_value() == "from-dotenv"
    assert settings.timeout == 30.0


def test_vertex_environment_does_not_divert_the_client(
    monkeypatch: pytest.MonkeyPatch,
    fake_gemini: FakeGeminiServer,
    gemini_settings: GeminiSettings,
    photo: bytes,
) -> None:
    """GOOGLE_GENAI_USE_VERTEXAI in the environment does not switch the API-key client to Vertex."""
    monkeypatch.setenv("GOOGLE_GENAI_USE_VERTEXAI", "true")

    with GeminiModel(gemini_settings) as model:
        model.analyze(photo, "image/jpeg")

    (request,) = fake_gemini.requests
    assert request.path.endswith("/models/gemini-2.5-flash:generateContent")
    assert "projects/" not in request.path
