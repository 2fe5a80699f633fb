"""A real S3 endpoint for tests: moto's server on 127.0.0.1 in a thread, spoken to over HTTP.

Use :func:`moto_s3_server` as a context manager (or session fixture). The server can be stopped
and restarted on the same port (the blobs survive: moto keeps them in-process) to simulate an
outage, and it enforces presigned-URL expiry against a clock tests can move forward, which plain
moto does not do.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

__all__ = ["S3Server", "moto_s3_server"]

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

ACCESS_KEY = "plushify-test"
SECRET_KEY = "plushify-test-secret"  # noqa: S105 - moto accepts any credentials
REGION = "us-east-1"


def _presigned_deadline(query: dict[str, list[str]]) -> datetime | None:
    """When a presigned URL expires: SigV4 ``X-Amz-Date + X-Amz-Expires`` or SigV2 ``Expires``."""
    try:
        if "X-Amz-Expires" in query and "X-Amz-Date" in query:
            signed = datetime.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ")
            return signed.replace(tzinfo=UTC) + timedelta(seconds=int(query["X-Amz-Expires"][0]))
        if "Expires" in query and "Signature" in query:
            return datetime.fromtimestamp(int(query["Expires"][0]), UTC)
    except (ValueError, OverflowError):
        return datetime(1970, 1, 1, tzinfo=UTC)
    return None


class _ExpiryCheck:
    """WSGI middleware answering 403 to presigned requests past their expiry, as S3 does."""

    def __init__(self, app: WSGIApp, now: Callable[[], datetime]) -> None:
        self.app = app
        self.now = now

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        query = parse_qs(environ.get("QUERY_STRING", ""))
        deadline = _presigned_deadline(query)
        if deadline is not None and self.now() > deadline:
            body = (
                b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code>'
                b"<Message>Request has expired</Message></Error>"
            )
            start_response(
                "403 Forbidden",
                [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))],
            )
            return [body]
        return self.app(environ, start_response)


class S3Server:
    """moto's S3 on ``127.0.0.1``: endpoint, credentials, buckets, outages and time travel."""

    def __init__(self) -> None:
        self._server: _Threaded | None = None
        self._port = 0
        self._skew = timedelta(0)
        self._lock = threading.Lock()

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Start serving (on the previous port after a :meth:`stop`)."""
        server = _Threaded(self._now, self._port)
        server.start()
        self._server = server
        self._port = server.port

    def stop(self) -> None:
        """Stop serving; clients now get connection errors until :meth:`start` (an outage)."""
        if self._server is not None:
            self._server.stop()
            self._server = None

    @property
    def running(self) -> bool:
        """Whether the server is accepting connections."""
        return self._server is not None

    # -- addressing -------------------------------------------------------------------------

    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self._port}"

    def storage_options(self) -> dict[str, Any]:
        """fsspec/s3fs options for a :class:`~plushify_core.storage.BlobStore` on this server."""
        return {
            "endpoint_url": self.endpoint_url,
            "key": ACCESS_KEY,
            "secret": SECRET_KEY,
            "client_kwargs": {"region_name": REGION},
        }

    def env(self) -> dict[str, str]:
        """Environment that makes ``BlobStore("s3://...")`` (and ``Settings``) use this server."""
        return {
            "PLUSHIFY_S3_ENDPOINT_URL": self.endpoint_url,
            "PLUSHIFY_S3_REGION": REGION,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": REGION,
        }

    def create_bucket(self, name: str | None = None) -> str:
        """Create a bucket (a fresh unique one by default) and return its ``s3://`` URL."""
        import boto3  # type: ignore[import-untyped, unused-ignore]

        bucket = name or f"plushify-test-{uuid.uuid4().hex[:12]}"
        client = boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
        )
        client.create_bucket(Bucket=bucket)
        return f"s3://{bucket}"

    # -- time -------------------------------------------------------------------------------

    def advance(self, seconds: float) -> None:
        """Move the server's clock forward (presigned URLs expire without sleeping)."""
        with self._lock:
            self._skew += timedelta(seconds=seconds)

    def _now(self) -> datetime:
        with self._lock:
            return datetime.now(UTC) + self._skew


class _Threaded:
    """moto's S3 WSGI app (as in ``moto.server.ThreadedMotoServer``) behind the expiry check.

    ThreadedMotoServer offers no hook to wrap its app, so its few lines are repeated here.
    """

    def __init__(self, now: Callable[[], datetime], port: int) -> None:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        class QuietHandler(MotoRequestHandler):
            def log_request(self, *args: Any, **kwargs: Any) -> None:
                """Tests need no access log."""

        app = _ExpiryCheck(DomainDispatcherApplication(create_backend_app), now)
        self._server = make_server(
            "127.0.0.1", port, app, threaded=True, request_handler=QuietHandler
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="moto-s3", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join()
        # Free the listening socket at once so a restart can bind the same port.
        self._server.server_close()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])


@contextmanager
def moto_s3_server() -> Iterator[S3Server]:
    """Run an :class:`S3Server` for the duration of the ``with`` block."""
    server = S3Server()
    server.start()
    try:
        yield server
    finally:
        server.stop()
