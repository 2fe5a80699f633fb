"""ImageNet-1k class names, which of them are pets, and how a caption names them."""

from __future__ import annotations

import functools
from importlib.resources import files

from plushify_core.errors import ConfigurationError

__all__ = ["PET_CLASSES", "caption_phrase", "imagenet_labels", "is_pet"]

# Domestic dogs (151-268), domestic cats (281-285), rabbits and hares (330-332), hamster (333),
# guinea pig (338). Wolves, foxes and big cats are animals, not pets.
PET_CLASSES: frozenset[int] = frozenset(
    [*range(151, 269), *range(281, 286), 330, 331, 332, 333, 338]
)

# Label -> noun phrase, where the class name alone reads oddly in a caption.
_PHRASES = {
    "espresso": "an espresso cup",
    "tiger cat": "a tabby cat",
    "Egyptian Mau": "a tabby cat",
    "hare": "a rabbit",
    "cottontail rabbit": "a rabbit",
}


@functools.cache
def imagenet_labels() -> tuple[str, ...]:
    """The 1000 class names in the classifier's output order."""
    text = files("plushify_local").joinpath("data/imagenet_labels.txt").read_text("utf-8")
    labels = tuple(line.strip() for line in text.splitlines() if line.strip())
    if len(labels) != 1000:  # pragma: no cover - guards a damaged package
        raise ConfigurationError("imagenet_labels.txt must list 1000 classes")
    return labels


def is_pet(index: int) -> bool:
    """True for a dog, cat, rabbit, hamster or guinea pig class."""
    return index in PET_CLASSES


# Class names that are plural nouns (no article; "a pair of" where one pair is meant).
_PLURAL = {
    "binoculars": "a pair of binoculars",
    "clogs": "a pair of clogs",
    "jeans": "a pair of jeans",
    "pajamas": "pajamas",
    "parallel bars": "parallel bars",
    "sunglasses": "a pair of sunglasses",
    "swim trunks": "swim trunks",
    "mashed potatoes": "mashed potatoes",
}


def caption_phrase(index: int) -> str:
    """ "a tabby cat", "an espresso cup", "a Golden Retriever": a class as a noun phrase.

    Asides and alternatives in class names are dropped ("handrail / baluster" -> "a handrail",
    "impala (antelope)" -> "an impala").
    """
    label = imagenet_labels()[index]
    if label in _PHRASES:
        return _PHRASES[label]
    label = label.split(" (")[0].split(" / ")[0].strip()
    if label in _PLURAL:
        return _PLURAL[label]
    if label.lower().startswith(("a ", "an ", "the ")):
        return label
    article = "an" if label[0].lower() in "aeiou" else "a"
    return f"{article} {label}"
