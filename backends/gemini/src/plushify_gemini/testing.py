"""``FakeGeminiServer``: a local HTTP server speaking Gemini's ``generateContent`` REST shape.

Point the real SDK at it (``PLUSHIFY_GEMINI_BASE_URL`` / ``GeminiSettings(base_url=...)``) to
test without network. Unscripted, it answers like a healthy Gemini: a request with a response
schema gets an analysis, a request for ``IMAGE`` output gets a pink-tinted copy of the photo it
was sent. ``script(...)`` queues replies (errors, safety blocks, broken JSON, stalls, ...) and
``requests`` records what arrived, so tests can assert the requests as well as the parsing.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
import threading
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from PIL import Image

__all__ = ["FakeGeminiServer", "Received", "Reply", "decode_base64", "tint"]

_PATH = re.compile(r"^/(?:[^/]+/)?models/(?P<model>[^/:]+):generateContent$")
_TINT = (255, 150, 200)
_STALL_LIMIT = 30.0  # a stalled reply gives up at the latest when the server stops


def decode_base64(text: str) -> bytes:
    """Decode base64 in either alphabet (the SDK sends URL-safe), padding optional."""
    normalized = text.strip().replace("-", "+").replace("_", "/")
    return base64.b64decode(normalized + "=" * (-len(normalized) % 4), validate=True)


def tint(image: bytes, *, fmt: str = "PNG") -> bytes:
    """A pink-tinted copy of ``image``, encoded as ``fmt``: the fake's "plushie"."""
    with Image.open(io.BytesIO(image)) as img:
        rgb = img.convert("RGB")
    tinted = Image.blend(rgb, Image.new("RGB", rgb.size, _TINT), 0.4)
    out = io.BytesIO()
    tinted.save(out, format=fmt)
    return out.getvalue()


@dataclass(frozen=True)
class Reply:
    """One scripted answer. Build it with the class methods; ``body=None`` means "what a healthy
    Gemini would answer", ``stall`` holds the answer until the server stops."""

    status: int = 200
    body: bytes | dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    stall: bool = False
    disconnect: bool = False
    image_format: str = "PNG"

    @classmethod
    def ok(cls, *, image_format: str = "PNG") -> Reply:
        """The healthy answer (analysis or tinted image), images encoded as ``image_format``."""
        return cls(image_format=image_format)

    @classmethod
    def analysis(cls, value: dict[str, Any] | str, *, finish_reason: str = "STOP") -> Reply:
        """A text part carrying ``value`` (JSON-encoded unless already a string)."""
        text = value if isinstance(value, str) else json.dumps(value)
        return cls(body=_candidate([{"text": text}], finish_reason))

    @classmethod
    def error(
        cls,
        status: int,
        message: str = "fake error",
        *,
        status_name: str = "UNKNOWN",
        retry_delay: str | None = None,
        retry_after: str | None = None,
        reason: str | None = None,
    ) -> Reply:
        """A Google API error body, optionally with ``RetryInfo``, ``ErrorInfo`` and Retry-After."""
        details: list[dict[str, Any]] = []
        if retry_delay is not None:
            details.append(
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay}
            )
        if reason is not None:
            details.append({"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason})
        error: dict[str, Any] = {"code": status, "message": message, "status": status_name}
        if details:
            error["details"] = details
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        return cls(status=status, body={"error": error}, headers=headers)

    @classmethod
    def finish(cls, reason: str, parts: list[dict[str, Any]] | None = None) -> Reply:
        """A candidate that stopped for ``reason`` (``SAFETY``, ``IMAGE_SAFETY``, ...)."""
        return cls(body=_candidate(parts or [], reason))

    @classmethod
    def prompt_blocked(cls, reason: str = "SAFETY") -> Reply:
        """No candidates; ``promptFeedback.blockReason`` says why."""
        return cls(body={"promptFeedback": {"blockReason": reason}})

    @classmethod
    def text_only(cls, text: str = "Here is your plushie!") -> Reply:
        """An image request answered with text and no image part."""
        return cls(body=_candidate([{"text": text}], "STOP"))

    @classmethod
    def image_bytes(cls, data: bytes, mime_type: str = "image/png") -> Reply:
        """An image part carrying exactly ``data`` (e.g. garbage that is not an image)."""
        part = {"inlineData": {"mimeType": mime_type, "data": base64.b64encode(data).decode()}}
        return cls(body=_candidate([part], "STOP"))

    @classmethod
    def raw(cls, body: bytes, status: int = 200) -> Reply:
        """Exactly these bytes as the body (broken JSON, HTML from a proxy, ...)."""
        return cls(status=status, body=body)

    @classmethod
    def stalled(cls) -> Reply:
        """Never answer while the client waits: provokes the client's timeout."""
        return cls(stall=True)

    @classmethod
    def dropped(cls) -> Reply:
        """Close the connection without answering (a connection reset)."""
        return cls(disconnect=True)


@dataclass(frozen=True)
class Received:
    """One request the fake received, decoded for assertions."""

    model: str
    path: str
    api_key: str | None
    body: dict[str, Any]
    images: list[tuple[str, bytes]]
    texts: list[str]

    @property
    def generation_config(self) -> dict[str, Any]:
        """``generationConfig`` as sent (camelCase keys)."""
        config = self.body.get("generationConfig") or {}
        return config if isinstance(config, dict) else {}


def _candidate(parts: list[dict[str, Any]], finish_reason: str = "STOP") -> dict[str, Any]:
    content = {"role": "model", "parts": parts}
    return {"candidates": [{"content": content, "finishReason": finish_reason, "index": 0}]}


class FakeGeminiServer:
    """A scriptable fake of the Gemini REST API on 127.0.0.1, on a free port."""

    default_analysis: dict[str, Any] = {
        "subject_type": "pet",
        "description": "A ginger cat sitting on a windowsill.",
        "key_features": ["ginger fur", "green eyes"],
    }

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self._script: list[tuple[str | None, Reply]] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        # A short poll interval keeps stop() (and so every test's teardown) fast.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def base_url(self) -> str:
        """The URL to give the SDK as ``HttpOptions(base_url=...)``."""
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> FakeGeminiServer:
        """Serve in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Release stalled replies, stop serving and close the socket."""
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeGeminiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def script(self, *replies: Reply, model: str | None = None) -> None:
        """Queue replies, used in order; ``model`` restricts them to requests for that model."""
        with self._lock:
            self._script.extend((model, reply) for reply in replies)

    def pending(self) -> int:
        """How many scripted replies have not been used yet."""
        with self._lock:
            return len(self._script)

    def _next_reply(self, model: str) -> Reply:
        with self._lock:
            for i, (wanted, reply) in enumerate(self._script):
                if wanted is None or wanted == model:
                    del self._script[i]
                    return reply
        return Reply.ok()

    def _answer(self, path: str, headers: dict[str, str], raw: bytes) -> tuple[Reply, bytes]:
        """Record the request and compute the reply (status, headers, body bytes)."""
        match = _PATH.match(path)
        body = json.loads(raw) if raw else {}
        received = _decode(match["model"] if match else "", path, headers, body)
        with self._lock:
            self.requests.append(received)
        if match is None:
            reply = Reply.error(404, f"unknown path {path}", status_name="NOT_FOUND")
            return reply, json.dumps(reply.body).encode()
        reply = self._next_reply(received.model)
        if reply.body is None:
            reply = self._healthy(received, reply)
        data = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
        return reply, data

    def _healthy(self, received: Received, reply: Reply) -> Reply:
        """What a healthy Gemini answers: 400 for a photo it cannot read, a tinted copy for an
        image request, an analysis otherwise."""
        try:
            image = tint(received.images[0][1], fmt=reply.image_format)
        except (IndexError, OSError, ValueError, SyntaxError):
            return Reply.error(
                400, "Unable to process input image.", status_name="INVALID_ARGUMENT"
            )
        if "IMAGE" not in (received.generation_config.get("responseModalities") or []):
            return replace(reply, body=_candidate([{"text": json.dumps(self.default_analysis)}]))
        part = {
            "inlineData": {
                "mimeType": f"image/{reply.image_format.lower()}",
                "data": base64.b64encode(image).decode(),
            }
        }
        return replace(reply, body=_candidate([part]))


def _decode(model: str, path: str, headers: dict[str, str], body: Any) -> Received:
    images: list[tuple[str, bytes]] = []
    texts: list[str] = []
    contents = body.get("contents", []) if isinstance(body, dict) else []
    for content in contents:
        for part in content.get("parts", []):
            inline = part.get("inlineData") or part.get("inline_data")
            if inline:
                mime = inline.get("mimeType") or inline.get("mime_type") or ""
                try:
                    images.append((mime, decode_base64(inline.get("data", ""))))
                except (binascii.Error, ValueError):
                    images.append((mime, b""))
            if "text" in part:
                texts.append(part["text"])
    key = next((v for k, v in headers.items() if k.lower() == "x-goog-api-key"), None)
    return Received(model, path, key, body if isinstance(body, dict) else {}, images, texts)


def _handler_for(server: FakeGeminiServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            reply, data = server._answer(self.path, dict(self.headers.items()), raw)
            if reply.disconnect:
                self.close_connection = True
                return  # nothing written: the client sees the connection closed
            if reply.stall:
                server._stopping.wait(_STALL_LIMIT)
            try:
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout): nothing left to do

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output clean

    return Handler
