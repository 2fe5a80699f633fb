"""A WSGI server child for the web benchmark: the Plushify app or a bare Flask app, on waitress.

``python -m benchmarks.web_server plushify|bare DIRECTORY`` prints one JSON line (port, and for
Plushify a bearer token and a generation id to poll), then serves until terminated.
"""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

from flask import Flask, Response, jsonify, request
from waitress.server import create_server  # type: ignore[import-untyped]

THREADS = 4


def bare_app(directory: Path) -> Flask:
    """Flask with an upload route that only writes the file to disk, and a hello world."""
    app = Flask(__name__)

    @app.post("/upload")
    def upload() -> Response:
        name = uuid.uuid4().hex
        request.files["image"].save(directory / name)
        response = jsonify({"id": name})
        response.status_code = 202
        return response

    @app.get("/hello")
    def hello() -> str:
        return "hello"

    return app


def plushify_app(directory: Path) -> tuple[Flask, dict[str, str]]:
    """The reference app on SQLite and files (runner not started: only the web side is timed)."""
    from plushify_core.facade import Plushify
    from plushify_core.settings import Settings
    from plushify_core.testing.images import photo
    from plushify_flask.app import create_app
    from plushify_flask.config import WebSettings

    settings = Settings(
        data_dir=directory,
        model="fake",
        runner="inprocess",
        max_in_flight=1_000_000,
        max_upload_bytes=12 * 1024 * 1024,
    )
    facade = Plushify.from_settings(settings)
    app = create_app(
        {
            "PLUSHIFY_FACADE": facade,
            "SECRET_KEY": uuid.uuid4().hex,
            "PLUSHIFY_WEB": WebSettings(signup_credits=0),
        }
    )
    store = app.extensions["plushify_users"]
    user = store.create("bench", uuid.uuid4().hex)
    facade.ledger.grant(user.id, 1_000_000, key="bench")
    gen = facade.submit(user.id, photo(64, 48))
    return app, {"token": store.issue_token(user.id), "generation_id": gen.id}


def main() -> None:
    """Build the app named in argv, announce it, serve forever."""
    kind, directory = sys.argv[1], Path(sys.argv[2])
    info: dict[str, str] = {}
    if kind == "bare":
        app = bare_app(directory)
    else:
        app, info = plushify_app(directory)
    server = create_server(app, host="127.0.0.1", port=0, threads=THREADS)
    print(json.dumps({"port": server.effective_port, **info}), flush=True)
    server.run()


if __name__ == "__main__":
    main()
