"""Model protocols: what an image-analysis and image-generation backend must provide."""

from __future__ import annotations

from typing import Literal, Protocol, runtime_checkable

from pydantic import BaseModel, Field

__all__ = ["Analysis", "Analyzer", "ImageGenerator", "Model", "SubjectType"]

SubjectType = Literal["person", "pet", "other"]


class Analysis(BaseModel):
    """What the analyser saw in a photo; drives the generation prompt."""

    subject_type: SubjectType = Field(description="person, pet or other")
    description: str = Field(description="One or two honest sentences about the photo.")
    key_features: list[str] = Field(
        default_factory=list, description="Short phrases worth keeping in the plushie."
    )


@runtime_checkable
class Analyzer(Protocol):
    """Looks at a photo and says what is in it."""

    def analyze(self, image: bytes, content_type: str) -> Analysis:
        """Analyse ``image`` (encoded bytes of ``content_type``). Raises ``ModelError``."""
        ...


@runtime_checkable
class ImageGenerator(Protocol):
    """Makes the plushie picture from the original and a prompt."""

    def generate(self, image: bytes, content_type: str, prompt: str) -> bytes:
        """Return PNG bytes of the plushie. Raises ``ModelError``."""
        ...


@runtime_checkable
class Model(Analyzer, ImageGenerator, Protocol):
    """A backend that both analyses and generates (what ``load_model`` returns)."""
