"""``LocalModel``: the offline, deterministic Plushify model (analysis + plush stylizer)."""

from __future__ import annotations

from plushify_core.errors import ModelError, PlushifyError
from plushify_core.model import Analysis
from plushify_core.settings import Settings

from .analysis import analyze_image
from .cues import subject_cues
from .decode import Bgr, decode_image, encode_png
from .stylizer import stylize

__all__ = ["LocalModel"]


class LocalModel:
    """Recognises photos with small neural nets on cv2.dnn and renders them as plush toys, offline.

    Stateless and thread-safe; the same input always gives the same answer and the same bytes.
    """

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> LocalModel:
        """The entry-point factory (``plushify.models`` → ``local``); needs no settings."""
        return cls()

    def analyze(self, image: bytes, content_type: str) -> Analysis:
        """Say whether the photo shows a person, a pet or something else, and describe it."""
        try:
            return analyze_image(decode_image(image, content_type))
        except PlushifyError:
            raise
        except Exception as exc:
            raise _internal("analysis") from exc

    def generate(self, image: bytes, content_type: str, prompt: str) -> bytes:
        """Return PNG bytes of the plush picture (longest side at most 1024 px).

        ``prompt`` is accepted for the protocol; the offline stylizer follows the photo itself.
        """
        try:
            return encode_png(self._render(decode_image(image, content_type)))
        except PlushifyError:
            raise
        except Exception as exc:
            raise _internal("generation") from exc

    @staticmethod
    def _render(pixels: Bgr) -> Bgr:
        cues = subject_cues(pixels)
        return stylize(pixels, cues.faces, cues.cats, eyes=cues.eyes, pet=cues.pet)


def _internal(step: str) -> ModelError:
    """An unexpected failure (an OpenCV assertion, a bug): retryable, and worded for users.

    The library's own text (C++ file names, assertions) stays on ``__cause__`` for the run's
    admin detail; it never becomes the message.
    """
    return ModelError(
        f"the offline model hit an internal error during {step}; trying again may help",
        retryable=True,
        code="model_internal_error",
    )
