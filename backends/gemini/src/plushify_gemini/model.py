"""``GeminiModel``: photo analysis and plushie generation with Google's Gemini via google-genai.

One ``genai.Client`` lives as long as the model. The SDK's own retries are off and automatic
continuation is disabled, so each call is exactly one HTTP request: the engine owns retries and
counts every attempt. Every failure leaves as ``plushify_core.errors.ModelError``.
"""

from __future__ import annotations

import logging
from types import TracebackType

import pydantic
from google import genai
from google.genai import types

from plushify_core.errors import ConfigurationError, ModelError
from plushify_core.model import Analysis
from plushify_core.settings import Settings

from .failures import model_error_from, safety_block
from .images import as_png, image_size, nearest_aspect_ratio
from .settings import API_KEY_ENV, GeminiSettings

__all__ = ["ANALYSIS_PROMPT", "GeminiModel"]

logger = logging.getLogger(__name__)

ANALYSIS_PROMPT = (
    "Look at this photo, which will be turned into a cute plush toy. Say whether its main "
    "subject is a person, a pet (any animal) or something else; describe the subject honestly "
    "in one or two sentences; and list a few short phrases naming the features worth keeping "
    "in the plushie (colours, markings, hair, clothes, accessories, expression)."
)
"""The instruction sent with the photo to the analysis model."""

# Finish / block reasons that are policy decisions: asking again gives the same answer.
_BLOCKING_FINISH = frozenset(
    {
        types.FinishReason.SAFETY,
        types.FinishReason.IMAGE_SAFETY,
        types.FinishReason.PROHIBITED_CONTENT,
        types.FinishReason.IMAGE_PROHIBITED_CONTENT,
        types.FinishReason.BLOCKLIST,
        types.FinishReason.SPII,
    }
)


class GeminiModel:
    """A Plushify ``Model`` backed by Gemini: ``analyze`` with structured output, ``generate``
    with the image model and the photo as reference."""

    def __init__(self, settings: GeminiSettings | None = None) -> None:
        """Build the client now, so a missing key fails at start-up rather than mid-request."""
        self.settings = settings if settings is not None else _load_settings()
        key = self.settings.api_key.get_secret_value().strip() if self.settings.api_key else ""
        if not key:
            raise ConfigurationError(
                f"Gemini API key missing: set {API_KEY_ENV[0]} (or {' / '.join(API_KEY_ENV[1:])})"
            )
        http_options = types.HttpOptions(
            base_url=self.settings.base_url,
            timeout=max(1, round(self.settings.timeout * 1000)),  # the SDK wants milliseconds
            retry_options=types.HttpRetryOptions(attempts=1),  # the engine retries, not the SDK
        )
        # vertexai=False: an API key means the Gemini Developer API, whatever GOOGLE_GENAI_* says.
        self._client = genai.Client(vertexai=False, api_key=key, http_options=http_options)

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> GeminiModel:
        """Entry-point factory (``plushify.models`` → ``gemini``); reads ``PLUSHIFY_GEMINI_*``."""
        del settings  # the core settings hold nothing Gemini-specific
        return cls(_load_settings())

    def analyze(self, image: bytes, content_type: str) -> Analysis:
        """Ask the analysis model what the photo shows, as an ``Analysis`` (structured output)."""
        model = self.settings.analysis_model
        _check_photo(image)
        config = types.GenerateContentConfig(
            response_mime_type="application/json",
            response_schema=Analysis,
            automatic_continuation=False,
        )
        response = self._call(model, image, content_type, ANALYSIS_PROMPT, config)
        candidate = _first_candidate(response, model)
        parsed = response.parsed
        if isinstance(parsed, Analysis):
            return parsed
        if parsed is not None:  # a dict when the SDK could not build the class itself
            try:
                return Analysis.model_validate(parsed)
            except pydantic.ValidationError:
                pass
        reason = _reason_name(candidate.finish_reason)
        # Never an empty analysis: truncation or a schema mismatch is worth another attempt.
        raise ModelError(
            f"Gemini ({model}) returned no usable analysis (finish reason {reason})",
            retryable=True,
        )

    def generate(self, image: bytes, content_type: str, prompt: str) -> bytes:
        """Draw the plushie from ``prompt`` with the photo as reference; return PNG bytes."""
        model = self.settings.image_model
        width, height = _check_photo(image)
        config = types.GenerateContentConfig(
            response_modalities=["IMAGE"],
            image_config=types.ImageConfig(aspect_ratio=nearest_aspect_ratio(width, height)),
            automatic_continuation=False,
        )
        response = self._call(model, image, content_type, prompt, config)
        candidate = _first_candidate(response, model)
        parts = candidate.content.parts if candidate.content and candidate.content.parts else []
        data = next(
            (p.inline_data.data for p in parts if p.inline_data and p.inline_data.data), None
        )
        if data is None:
            reason = _reason_name(candidate.finish_reason)
            raise ModelError(
                f"Gemini ({model}) returned no image (finish reason {reason})", retryable=True
            )
        try:
            return as_png(data)
        except ValueError as e:
            raise ModelError(
                f"Gemini ({model}) returned an image that could not be decoded", retryable=True
            ) from e

    def close(self) -> None:
        """Close the HTTP connections of the client."""
        self._client.close()

    def __enter__(self) -> GeminiModel:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        s = self.settings
        return f"GeminiModel(analysis={s.analysis_model!r}, image={s.image_model!r})"

    def _call(
        self,
        model: str,
        image: bytes,
        content_type: str,
        text: str,
        config: types.GenerateContentConfig,
    ) -> types.GenerateContentResponse:
        """One ``generate_content`` request; vendor failures become ``ModelError``."""
        contents: list[types.PartUnionDict] = [
            types.Part.from_bytes(data=image, mime_type=content_type),
            text,
        ]
        try:
            response = self._client.models.generate_content(
                model=model, contents=contents, config=config
            )
        except Exception as e:
            error = model_error_from(e, model=model, timeout=self.settings.timeout)
            if error is None:
                raise
            logger.warning(
                "gemini %s failed (%s, retryable=%s)", model, type(e).__name__, error.retryable
            )
            raise error from e
        feedback = response.prompt_feedback
        if feedback is not None and feedback.block_reason is not None:
            raise safety_block(f"prompt blocked: {_reason_name(feedback.block_reason)}")
        return response


def _check_photo(image: bytes) -> tuple[int, int]:
    """The photo's size; a photo that does not decode is refused before any request is sent
    (Gemini would answer 400, and no retry can help)."""
    try:
        return image_size(image)
    except ValueError as e:
        raise ModelError("The photo could not be decoded", retryable=False) from e


def _first_candidate(response: types.GenerateContentResponse, model: str) -> types.Candidate:
    """The first candidate, after turning a safety finish reason into the readable error."""
    if not response.candidates:
        raise ModelError(f"Gemini ({model}) returned no candidates", retryable=True)
    candidate = response.candidates[0]
    if candidate.finish_reason in _BLOCKING_FINISH:
        raise safety_block(f"finish reason {_reason_name(candidate.finish_reason)}")
    return candidate


def _reason_name(reason: object) -> str:
    if reason is None:
        return "none"
    return str(getattr(reason, "value", reason))


def _load_settings() -> GeminiSettings:
    try:
        return GeminiSettings()
    except pydantic.ValidationError as e:
        problems = "; ".join(
            f"PLUSHIFY_GEMINI_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            for err in e.errors()
        )
        raise ConfigurationError(f"Invalid Gemini settings: {problems}") from e
