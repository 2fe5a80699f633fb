"""One error tree: what the library raises is a PlushifyError with a code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from plushify_core.errors import (
    Contention,
    InvalidArgument,
    NotFound,
    PlushifyError,
    ReservationNotFound,
)
from plushify_core.ids import validate_id
from plushify_core.storage import check_key

ROOT = Path(__file__).resolve().parents[1]
# Test helpers may raise plain errors; everything shipped for applications may not.
LIBRARY = [ROOT / "src", *(ROOT / "backends").glob("*/src")]
BARE = re.compile(r"^\s*raise (ValueError|RuntimeError|TypeError|KeyError|Exception)\(", re.M)


def test_no_library_module_raises_a_bare_builtin_error() -> None:
    """Every ``raise`` in the library (test helpers aside) uses the Plushify error tree."""
    offenders = [
        f"{path.relative_to(ROOT)}:{source[: m.start()].count(chr(10)) + 1}"
        for base in LIBRARY
        for path in base.rglob("*.py")
        if "testing" not in path.parts and path.name != "testing.py"
        for source in [path.read_text(encoding="utf-8")]
        for m in BARE.finditer(source)
    ]
    assert offenders == []


@pytest.mark.parametrize(
    "call", [lambda: validate_id("not-an-id"), lambda: check_key("../etc/passwd")]
)
def test_bad_arguments_are_invalid_argument_and_still_value_errors(call: object) -> None:
    """Callers catching ValueError keep working; the error has a code like every other."""
    with pytest.raises(InvalidArgument) as caught:
        call()  # type: ignore[operator]
    assert isinstance(caught.value, ValueError)
    assert caught.value.code == "invalid_argument"


def test_reservation_not_found_is_a_not_found_that_users_never_read() -> None:
    """It is a NotFound (404 over HTTP), but its message names an internal id."""
    error = ReservationNotFound("No reservation r-123.")
    assert isinstance(error, NotFound)
    assert error.user_message is None


def test_contention_is_a_plushify_error() -> None:
    """A lost race is operational, coded, and still a RuntimeError for old callers."""
    assert issubclass(Contention, PlushifyError) and issubclass(Contention, RuntimeError)
    assert Contention("lost").code == "contention"
