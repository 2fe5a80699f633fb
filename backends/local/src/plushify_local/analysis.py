"""Analysis: person / pet / other from the detectors, plus short, honest, deterministic text."""

from __future__ import annotations

from plushify_core.model import Analysis, SubjectType

from .colours import brightness_word, colour_name, dominant_colours
from .decode import Bgr
from .detection import Box, Detections, detect

__all__ = ["analyze_image", "classify", "describe"]


def classify(found: Detections) -> SubjectType:
    """A confirmed human face makes a person, else a cat face a pet, else other."""
    if found.faces:
        return "person"
    if found.cat_faces:
        return "pet"
    return "other"


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


def describe(image: Bgr, found: Detections) -> tuple[str, list[str]]:
    """A one- or two-sentence description and a few key features, all measured, none invented."""
    h, w = image.shape[:2]
    colours = ["shades of grey"] if found.grayscale else dominant_colours(image)
    light = brightness_word(image)
    palette = ", ".join(colours)
    subject = classify(found)
    features: list[str] = []
    if subject == "person":
        n = len(found.faces)
        main = max(found.faces, key=lambda b: (b.area, -b.x, -b.y))
        what = "a human face" if n == 1 else f"{n} human faces"
        first = f"A photo of {what}; the {'' if n == 1 else 'largest '}face is {_size(main, w, h)}"
        text = f"{first} and {_position(main, w, h)}."
        features.append("one face" if n == 1 else f"{n} faces")
        features.append(f"face {_position(main, w, h)}")
        skin = image[main.y + main.h // 3 : main.y + 2 * main.h // 3, main.x : main.x + main.w]
        if skin.size and not found.grayscale:
            b, g, r = (int(v) for v in skin.reshape(-1, 3).mean(axis=0))
            features.append(f"{colour_name((b, g, r))} face tones")
    elif subject == "pet":
        main = max(found.cat_faces, key=lambda b: (b.area, -b.x, -b.y))
        text = (
            f"A photo of an animal whose face is {_size(main, w, h)} and {_position(main, w, h)}."
        )
        features.append(f"animal face {_position(main, w, h)}")
    else:
        text = "A photo with no face the detectors recognise."
    text += f" Mostly {palette}; {light}{' black-and-white' if found.grayscale else ''} image."
    features.extend(colours if not found.grayscale else ["black-and-white"])
    features.append({"dark": "dim light", "bright": "bright light"}.get(light, "even light"))
    return text, features


def analyze_image(image: Bgr) -> Analysis:
    """Run the detectors on ``image`` and build the :class:`Analysis`."""
    found = detect(image)
    description, features = describe(image, found)
    return Analysis(subject_type=classify(found), description=description, key_features=features)
