"""Analysis: person / pet / other and a short, honest, deterministic description of the photo."""

from __future__ import annotations

from plushify_core.model import Analysis

from .colours import brightness_word, colour_name, dominant_colours
from .decode import Bgr, resize_long_side
from .detection import Box
from .labels import PET_CLASSES, caption_phrase
from .recognition import RECOGNITION_SIZE, Recognition, recognize_photo

__all__ = ["ANALYSIS_SIZE", "analyze_image", "describe", "subject_phrase"]

# The description is measured on the copy the recognition uses.
ANALYSIS_SIZE = RECOGNITION_SIZE


def _position(box: Box, width: int, height: int) -> str:
    cx = (box.x + box.w / 2) / width
    cy = (box.y + box.h / 2) / height
    col = "left" if cx < 0.36 else ("right" if cx > 0.64 else "centre")
    row = "upper" if cy < 0.36 else ("lower" if cy > 0.64 else "middle")
    if row == "middle" and col == "centre":
        return "in the centre"
    return f"in the {row} {col}" if col != "centre" else f"in the {row} centre"


def _size(box: Box, width: int, height: int) -> str:
    share = box.area / float(width * height)
    if share > 0.2:
        return "large"
    return "small" if share < 0.03 else "medium-sized"


def subject_phrase(found: Recognition) -> str | None:
    """What was seen as a noun phrase ("a tabby cat", "an espresso cup"), or None if unsure.

    For a pet this is the most likely pet class even when another class scored higher.
    """
    if found.subject_type == "pet" and found.label and found.label.index in PET_CLASSES:
        return found.label.phrase
    if found.subject_type == "pet" and found.pet_index is not None:
        return caption_phrase(found.pet_index)
    if found.subject_type == "other" and found.label is not None:
        return found.label.phrase
    return None


def describe(image: Bgr, found: Recognition) -> tuple[str, list[str]]:
    """A one- or two-sentence description and a few key features, all measured, none invented."""
    h, w = image.shape[:2]
    colours = ["shades of grey"] if found.grayscale else dominant_colours(image)
    light = brightness_word(image)
    palette = ", ".join(colours)
    phrase = subject_phrase(found)
    features: list[str] = []
    if phrase is not None:
        features.append(phrase)
    if found.subject_type == "person":
        n = len(found.faces)
        main = found.faces[0]
        what = "a person" if n == 1 else f"{n} people"
        size = "face is" if n == 1 else "largest face is"
        text = f"A photo of {what}; the {size} {_size(main, w, h)} and {_position(main, w, h)}."
        features.append("one face" if n == 1 else f"{n} faces")
        features.append(f"face {_position(main, w, h)}")
        skin = image[main.y + main.h // 3 : main.y + 2 * main.h // 3, main.x : main.x + main.w]
        if skin.size and not found.grayscale:
            b, g, r = (int(v) for v in skin.reshape(-1, 3).mean(axis=0))
            features.append(f"{colour_name((b, g, r))} face tones")
    elif found.subject_type == "pet":
        text = f"A photo of a pet: {phrase}." if phrase else "A photo of a pet."
        if found.cat_faces:
            main = max(found.cat_faces, key=lambda b: (b.area, -b.x, -b.y))
            text += f" Its face is {_size(main, w, h)} and {_position(main, w, h)}."
            features.append(f"animal face {_position(main, w, h)}")
    elif phrase is not None:
        text = f"A photo of {phrase}; no person or pet."
    else:
        text = "A photo with no person or pet that the model recognises."
    text += f" Mostly {palette}; {light}{' black-and-white' if found.grayscale else ''} image."
    features.extend(colours if not found.grayscale else ["black-and-white"])
    features.append({"dark": "dim light", "bright": "bright light"}.get(light, "even light"))
    return text, features


def analyze_image(image: Bgr) -> Analysis:
    """Recognise what is in ``image`` and build the :class:`Analysis`."""
    small = (
        resize_long_side(image, ANALYSIS_SIZE) if max(image.shape[:2]) > ANALYSIS_SIZE else image
    )
    found = recognize_photo(small)  # the renderer asking for the same pixels hits the cache
    description, features = describe(small, found)
    return Analysis(subject_type=found.subject_type, description=description, key_features=features)
