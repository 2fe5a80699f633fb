"""The generation prompt: an :class:`~plushify_core.model.Analysis` turned into plushie wording.

Like the original app, the image model is asked for "a cute plush toy version" of the subject that
keeps its key features, with soft fabric, stitched seams and studio lighting; the wording differs
for a person, a pet or anything else. The analysis text comes from a model looking at a user's
photo, so it is treated as data: control characters removed, whitespace collapsed, lengths capped.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

from .model import Analysis, SubjectType

__all__ = ["build_prompt"]

MAX_DESCRIPTION: Final = 300
MAX_FEATURE: Final = 80
MAX_FEATURES: Final = 8

_SUBJECT: Final[dict[SubjectType, str]] = {
    "person": (
        "Transform the person in this photo into a cute plush toy version of them: a soft, "
        "huggable stuffed doll with a slightly oversized head, rounded limbs and a friendly "
        "embroidered face. Keep them recognisable: the same hairstyle and hair colour, skin "
        "tone, clothing colours and accessories, made of felt and yarn."
    ),
    "pet": (
        "Transform the animal in this photo into a cute plush toy version of it: a soft, "
        "huggable stuffed animal with rounded proportions, shiny button eyes and an embroidered "
        "nose. Keep it recognisable: the same species, fur colours and markings, ear shape and "
        "tail, with the fur rendered as soft minky fabric."
    ),
    "other": (
        "Transform the main subject of this photo into a cute plush toy version of it: a soft, "
        "huggable stuffed toy with rounded, simplified shapes. Keep it recognisable: the same "
        "overall shape, colours and distinctive details, rendered in fabric."
    ),
}

_STYLE: Final = (
    "Style: soft plush fabric texture, visible stitched seams, gentle studio lighting, a plain "
    "pastel background, the whole toy in frame, photographed like a product shot. "
    "No text, no watermark, no extra objects."
)

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _clean(text: str, limit: int) -> str:
    text = unicodedata.normalize("NFKC", text)
    text = _CONTROL.sub(" ", text)
    text = " ".join(text.replace('"', "'").split())
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


def build_prompt(analysis: Analysis) -> str:
    """The image-generation prompt for ``analysis`` (subject-aware, features kept, plush style)."""
    parts = [_SUBJECT.get(analysis.subject_type, _SUBJECT["other"])]
    description = _clean(analysis.description, MAX_DESCRIPTION)
    if description:
        parts.append(f'The photo shows: "{description}"')
    features = [_clean(f, MAX_FEATURE) for f in analysis.key_features]
    features = [f for f in dict.fromkeys(features) if f][:MAX_FEATURES]
    if features:
        parts.append("Keep these key features: " + "; ".join(features) + ".")
    parts.append(_STYLE)
    return "\n".join(parts)
