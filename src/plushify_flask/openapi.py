"""``GET /api/openapi.json``: the JSON API described as OpenAPI 3.1, for client generators.

The prose reference is ``docs/api.md``; a test checks that this description, the app's routes
and that page name the same routes, so none of the three can drift from the others.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from .extensions import facade

__all__ = ["bp", "openapi_spec"]

bp = Blueprint("openapi", __name__)
"""Route: ``/api/openapi.json`` (public: it describes the API, it reveals no data)."""


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    words = {
        400: "Bad request (`invalid_image` with a `reason`, `csrf_failed`, `bad_request`)",
        401: "Not signed in, or a bad, expired or revoked bearer token (`unauthorized`)",
        402: "No credit available (`insufficient_credits`)",
        404: "No such object, or someone else's (`not_found`)",
        409: "Not allowed in its current state (`not_failed`, `not_processing`, `processing`, "
        "`too_many_tokens`)",
        413: "Upload over the limit (`too_large`, `too_many_parts`)",
        429: "Too many generations in progress (`too_many_in_progress`) or writes running at "
        "once (`too_many_requests`)",
        503: "A passing outage; see `Retry-After` (`storage_unavailable`, `database_unavailable`)",
    }
    return {str(s): _json(_ref("Error"), words[s]) for s in statuses}


_ID = {"name": "generation_id", "in": "path", "required": True, "schema": {"type": "string"}}
_TOKEN_ID = {"name": "token_id", "in": "path", "required": True, "schema": {"type": "string"}}
_ACCEPTED = {
    "description": "Accepted: the work runs in the background",
    "headers": {"Location": {"schema": {"type": "string"}, "description": "Where to poll"}},
    "content": {"application/json": {"schema": _ref("Accepted")}},
}


def _paths() -> dict[str, Any]:
    generation = {
        "get": {
            "summary": "One generation (poll it until it is no longer processing)",
            "parameters": [_ID],
            "responses": {"200": _json(_ref("Generation"), "The generation"), **_errors(401, 404)},
        },
        "delete": {
            "summary": "Delete a finished generation and its images",
            "parameters": [_ID],
            "responses": {"204": {"description": "Deleted"}, **_errors(401, 404, 409, 429)},
        },
    }
    return {
        "/api/generations": {
            "post": {
                "summary": "Upload a photo and start a generation",
                "parameters": [
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "description": "The same key and photo within 24 h: 200, the first answer",
                        "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "required": ["image"],
                                "properties": {"image": {"type": "string", "format": "binary"}},
                            }
                        }
                    },
                },
                "responses": {
                    "200": _ACCEPTED,
                    "202": _ACCEPTED,
                    **_errors(400, 401, 402, 409, 413, 429, 503),
                },
            },
            "get": {
                "summary": "The caller's generations, newest first",
                "parameters": [
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
                    }
                ],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "generations": {"type": "array", "items": _ref("Generation")}
                            },
                        },
                        "The generations",
                    ),
                    **_errors(401),
                },
            },
        },
        "/api/generations/{generation_id}": generation,
        "/api/generations/{generation_id}/retry": {
            "post": {
                "summary": "Run a failed generation again from the stored photo",
                "parameters": [_ID],
                "responses": {"202": _ACCEPTED, **_errors(401, 402, 404, 409, 429)},
            }
        },
        "/api/generations/{generation_id}/cancel": {
            "post": {
                "summary": "Stop a generation that is processing; its credit is released",
                "parameters": [_ID],
                "responses": {"202": _ACCEPTED, **_errors(401, 404, 409, 429)},
            }
        },
        "/api/credits": {
            "get": {
                "summary": "The caller's credits",
                "responses": {"200": _json(_ref("Credits"), "The balance"), **_errors(401)},
            }
        },
        "/api/tokens": {
            "get": {
                "summary": "The caller's live API tokens (never the tokens themselves)",
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {"tokens": {"type": "array", "items": _ref("Token")}},
                        },
                        "The tokens",
                    ),
                    **_errors(401),
                },
            },
            "post": {
                "summary": "Make a new API token; the answer shows it once",
                "requestBody": {
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "label": {"type": "string", "maxLength": 100},
                                    "expires_in_days": {
                                        "type": "integer",
                                        "minimum": 0,
                                        "maximum": 3650,
                                    },
                                },
                            }
                        }
                    }
                },
                "responses": {
                    "201": _json(_ref("NewToken"), "The new token"),
                    **_errors(400, 401, 409, 429),
                },
            },
        },
        "/api/tokens/{token_id}": {
            "delete": {
                "summary": "Revoke one of the caller's tokens",
                "parameters": [_TOKEN_ID],
                "responses": {"204": {"description": "Revoked"}, **_errors(401, 404, 429)},
            }
        },
    }


def _schemas() -> dict[str, Any]:
    when = {"type": "string", "format": "date-time"}
    text_or_null = {"type": ["string", "null"]}
    return {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {
                        "code": {"type": "string"},
                        "message": {"type": "string"},
                        "reason": {"type": "string"},
                    },
                }
            },
        },
        "Accepted": {
            "type": "object",
            "properties": {"generation_id": {"type": "string"}, "status": {"type": "string"}},
        },
        "Generation": {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "status": {
                    "type": "string",
                    "enum": ["processing", "completed", "failed", "cancelled"],
                },
                "step": text_or_null,
                "step_number": {"type": ["integer", "null"]},
                "step_count": {"type": "integer"},
                "original_image_url": text_or_null,
                "plushie_image_url": text_or_null,
                "subject_type": {"type": ["string", "null"], "enum": ["person", "pet", "other"]},
                "error": text_or_null,
                "waiting": {"type": ["string", "null"], "enum": ["model", None]},
                "created_at": when,
                "updated_at": when,
            },
        },
        "Credits": {
            "type": "object",
            "properties": {
                "credits": {"type": "integer"},
                "in_use": {"type": "integer"},
                "available": {"type": "integer"},
            },
        },
        "Token": {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "label": {"type": "string"},
                "created_at": when,
                "expires_at": {"type": ["string", "null"], "format": "date-time"},
            },
        },
        "NewToken": {
            "allOf": [
                _ref("Token"),
                {"type": "object", "properties": {"token": {"type": "string"}}},
            ]
        },
    }


def openapi_spec(max_upload_bytes: int) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the JSON API (the upload limit as configured)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Plushify reference app API",
            "version": "1",
            "description": (
                "Turn photos into plushies as background jobs; one credit per finished plushie. "
                f"Uploads up to {max_upload_bytes} bytes. See docs/api.md."
            ),
        },
        "paths": _paths(),
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": "plushify_session",
                    "description": "Browser session; writes also need the X-CSRFToken header.",
                },
            },
        },
        "security": [{"bearer": []}, {"session": []}],
    }


@bp.get("/api/openapi.json")
def spec() -> Response:
    """The OpenAPI document."""
    return jsonify(openapi_spec(facade().settings.max_upload_bytes))
