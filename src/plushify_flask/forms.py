"""Form parsing that says *which* limit a refused body broke.

Werkzeug answers 413 for three different things: a body over ``MAX_CONTENT_LENGTH``, a multipart
form with more than ``max_form_parts`` parts, and a text field over ``max_form_memory_size``. Only
the first is "larger than the limit"; a 5000-part form of a few kilobytes is not. This request
class turns the other two into :class:`FormTooComplex` (still 413, code ``too_many_parts``).
"""

from __future__ import annotations

import typing as t

from flask import Request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.formparser import FormDataParser

__all__ = ["FormTooComplex", "PlushifyRequest"]


class FormTooComplex(RequestEntityTooLarge):
    """A form within the size limit but with too many parts or an oversized text field."""

    code_name = "too_many_parts"


class _FormParser(FormDataParser):
    def _parse_multipart(
        self,
        stream: t.IO[bytes],
        mimetype: str,
        content_length: int | None,
        options: dict[str, str],
    ) -> t.Any:
        try:
            return super()._parse_multipart(stream, mimetype, content_length, options)
        except RequestEntityTooLarge:
            over = (
                self.max_content_length is not None
                and content_length is not None
                and content_length > self.max_content_length
            )
            if over or self._stream_exhausted(stream):
                raise  # the body itself is too large
            parts = self.max_form_parts
            raise FormTooComplex(
                f"The form has too many parts (at most {parts} are accepted) or a text field "
                "that is too long. Send one photo in the field 'image'."
            ) from None

    @staticmethod
    def _stream_exhausted(stream: t.IO[bytes]) -> bool:
        # A body without Content-Length is read through a stream capped at the maximum: when
        # that cap was reached, the size broke the limit, not the form's shape.
        return bool(
            getattr(stream, "_limit_is_max", False) and getattr(stream, "is_exhausted", False)
        )


class PlushifyRequest(Request):
    """Flask's request with :class:`FormTooComplex` for forms too complex to parse."""

    form_data_parser_class = _FormParser
