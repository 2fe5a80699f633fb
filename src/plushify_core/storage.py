"""Blob storage over fsspec: :class:`BlobStore`, the reference :class:`~.blobs.Storage`.

It serves ``file://``, ``memory://`` and ``s3://bucket/prefix``. The key layout and the protocol
live in :mod:`plushify_core.blobs` and are re-exported here. Vendor errors become
:class:`~plushify_core.errors.StorageError`:
retryable for transport failures (``storage_unavailable``); not retryable for ``blob_not_found``,
``storage_forbidden`` and configuration faults (``storage_bucket_missing``,
``storage_credentials``, ``storage_misconfigured``), which no retry could fix. ``file://``
writes are atomic (temporary file + rename), so a reader never sees half a blob. With ``sync``
(the default) they are also flushed to disk, the file before the rename and its directory
after, so a blob that was stored survives a power cut; without it a blob survives a crash of the
process but not of the machine, like a commit of Plushify's SQLite. A local copy is a hard link
(every blob is written once and replaced, never changed in place, so two names may share one
file): no bytes copied.

``memory://`` is fsspec's process-wide in-memory filesystem: give each store its own prefix.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from fsspec import AbstractFileSystem  # type: ignore[import-untyped, unused-ignore]
from fsspec.core import url_to_fs  # type: ignore[import-untyped, unused-ignore]
from fsspec.implementations.local import LocalFileSystem  # type: ignore[import-untyped, unused-ignore]

from .blobs import (
    ROOT,
    Storage,
    check_key,
    generated_key,
    guess_content_type,
    original_key,
    scratch_key,
    staging_key,
)
from .errors import InvalidArgument, PlushifyError, StorageError
from .local_files import atomic_link, atomic_write, read_file

__all__ = [
    "ROOT",
    "BlobStore",
    "Storage",
    "check_key",
    "generated_key",
    "guess_content_type",
    "original_key",
    "s3_options_from_env",
    "scratch_key",
    "staging_key",
]

T = TypeVar("T")

MAX_URL_EXPIRY = 7 * 24 * 3600  # the longest a SigV4 presigned URL may live


# --- configuration ---------------------------------------------------------------------------


def s3_options_from_env(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """s3fs options from ``PLUSHIFY_S3_ENDPOINT_URL`` / ``PLUSHIFY_S3_REGION``.

    Credentials come from the standard AWS environment (``AWS_ACCESS_KEY_ID``, profiles, roles),
    which botocore reads itself.
    """
    env = os.environ if environ is None else environ
    options: dict[str, Any] = {}
    client_kwargs: dict[str, Any] = {}
    if endpoint := env.get("PLUSHIFY_S3_ENDPOINT_URL"):
        options["endpoint_url"] = endpoint
    if region := env.get("PLUSHIFY_S3_REGION"):
        client_kwargs["region_name"] = region
    if client_kwargs:
        options["client_kwargs"] = client_kwargs
    return options


# S3 error codes (botocore ``ClientError.response["Error"]["Code"]``) that no retry can fix.
_CREDENTIAL_CODES = frozenset(
    {
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
        "TokenRefreshRequired",
        "CredentialsNotSupported",
    }
)
_CONFIG_CODES = frozenset(
    {
        "AuthorizationHeaderMalformed",  # a wrong region
        "PermanentRedirect",  # the bucket lives in another region / endpoint
        "InvalidBucketName",
        "IllegalLocationConstraintException",
        "InvalidStorageClass",
    }
)
# Exception classes matched by name along the MRO, so core needs neither botocore nor aiohttp.
_CREDENTIAL_ERRORS = frozenset(
    {"NoCredentialsError", "PartialCredentialsError", "ProfileNotFound", "NoAuthTokenError"}
)
_CONFIG_ERRORS = frozenset(
    {
        "NoRegionError",
        "UnknownSignatureVersionError",
        "InvalidConfigError",
        "ParamValidationError",
        "UnknownServiceError",
        "UnknownEndpointError",
        "InvalidS3AddressingStyleError",
        "InvalidRetryConfigurationError",
        "InvalidMaxRetryAttemptsError",
        "InvalidEndpointConfigurationError",
        "InvalidRegionError",
    }
)
# Transport trouble is retryable even when a class also derives from a "config" type.
_TRANSPORT_ERRORS = frozenset(
    {
        "HTTPClientError",
        "EndpointConnectionError",
        "ConnectionClosedError",
        "ReadTimeoutError",
        "ConnectTimeoutError",
        "ResponseStreamingError",
        "IncompleteReadError",
        "ClientConnectionError",
        "ClientPayloadError",
        "ServerDisconnectedError",
    }
)
_CONFIG_TYPES = (TypeError, ValueError, ImportError)


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and its causes (s3fs re-raises botocore's ``ClientError`` as ``OSError``)."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(seen) < 10 and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _s3_code(exc: BaseException) -> str | None:
    response = getattr(exc, "response", None)
    if isinstance(response, Mapping):
        error = response.get("Error")
        if isinstance(error, Mapping) and error.get("Code"):
            return str(error["Code"])
    return None


def _classify(exc: BaseException, what: str) -> StorageError:
    """The :class:`StorageError` for a vendor error: only outages are retryable.

    Configuration errors (bad options, no or wrong credentials, a missing bucket) would fail the
    same way on every attempt, so they fail at once with a code that names the fix.
    """
    chain = _chain(exc)
    codes = {c for c in map(_s3_code, chain) if c}
    names = {cls.__name__ for e in chain for cls in type(e).__mro__}
    name = type(exc).__name__
    if "NoSuchBucket" in codes:
        return StorageError(
            f"The bucket for {what} does not exist; check PLUSHIFY_STORAGE_URL.",
            retryable=False,
            code="storage_bucket_missing",
        )
    if codes & _CREDENTIAL_CODES or names & _CREDENTIAL_ERRORS:
        return StorageError(
            f"The blob store credentials are missing or invalid ({name}: {exc}); check the AWS "
            "credentials configuration.",
            retryable=False,
            code="storage_credentials",
        )
    if isinstance(exc, FileNotFoundError):
        return StorageError(f"No blob at {what}.", retryable=False, code="blob_not_found")
    if isinstance(exc, PermissionError):
        return StorageError(
            f"The blob store refused access to {what}.", retryable=False, code="storage_forbidden"
        )
    transport = bool(names & _TRANSPORT_ERRORS) or (
        isinstance(exc, OSError) and not codes & _CONFIG_CODES
    )
    if not transport and (
        codes & _CONFIG_CODES or names & _CONFIG_ERRORS or isinstance(exc, _CONFIG_TYPES)
    ):
        return StorageError(
            f"The blob store is misconfigured ({name}: {exc}); check PLUSHIFY_STORAGE_URL and "
            "PLUSHIFY_S3_* settings.",
            retryable=False,
            code="storage_misconfigured",
        )
    return StorageError(
        f"The blob store failed on {what} ({name}: {exc}).", code="storage_unavailable"
    )


# --- the store -------------------------------------------------------------------------------


class BlobStore:
    """Bytes by key on any fsspec filesystem, with content types and presigned URLs on S3."""

    def __init__(
        self, url: str, *, storage_options: Mapping[str, Any] | None = None, sync: bool = True
    ) -> None:
        """Open the store at ``url``; ``storage_options`` go to fsspec (env used for ``s3://``).

        ``sync=False`` skips flushing local writes to disk: for a database whose commits are
        not flushed either (see :func:`~plushify_core.database.commits_are_synced`), where the
        flush would cost every write without making a stored blob's record any safer.
        """
        options: dict[str, Any] = {}
        if url.startswith(("s3://", "s3a://")):
            options.update(s3_options_from_env())
            # Listings cached in-process would hide blobs written by other processes.
            options.setdefault("use_listings_cache", False)
            # SigV4 presigned URLs (SigV2 is deprecated and refused by newer regions).
            options.setdefault("config_kwargs", {"signature_version": "s3v4"})
        options.update(storage_options or {})
        try:
            fs, root = url_to_fs(url, **options)
        except ImportError as e:
            raise StorageError(
                f"Storage URL {url!r} needs an extra package ({e}); for s3:// install "
                "plushify[s3].",
                retryable=False,
                code="storage_not_installed",
            ) from e
        except Exception as e:  # an unknown protocol or options the filesystem refuses
            raise _classify(e, url) from e
        self.base_url = url
        self.fs: AbstractFileSystem = fs
        self._root = str(root).rstrip("/")
        self._local = isinstance(fs, LocalFileSystem)
        self.sync = sync
        self._s3 = "s3" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))
        if self._local:
            os.makedirs(self._root, exist_ok=True)

    def __repr__(self) -> str:
        return f"BlobStore({self.base_url!r})"

    def _path(self, key: str) -> str:
        return f"{self._root}/{check_key(key)}" if self._root else check_key(key)

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except PlushifyError:
            raise
        except Exception as e:
            raise _classify(e, what) from e

    def put(self, key: str, data: bytes, content_type: str | None = None) -> None:
        """Store ``data`` at ``key`` (replacing it); ``content_type`` is recorded on S3."""
        path = self._path(key)
        ctype = content_type or guess_content_type(key)
        if self._local:
            self._call(key, lambda: atomic_write(path, data, sync=self.sync))
        elif self._s3:
            self._call(key, lambda: self.fs.pipe_file(path, data, ContentType=ctype))
        else:
            self._call(key, lambda: self.fs.pipe_file(path, data))

    def get(self, key: str) -> bytes:
        """The bytes at ``key``; ``StorageError(code="blob_not_found")`` when missing."""
        path = self._path(key)
        if self._local:
            return self._call(key, lambda: read_file(path))
        data = self._call(key, lambda: self.fs.cat_file(path))
        return bytes(data)

    def delete(self, key: str) -> None:
        """Remove ``key``; a missing key is fine (deletes are retried and must be idempotent)."""
        path = self._path(key)
        remove = (lambda: os.remove(path)) if self._local else (lambda: self.fs.rm_file(path))
        try:
            self._call(key, remove)
        except StorageError as e:
            if e.code != "blob_not_found":
                raise

    def exists(self, key: str) -> bool:
        """Whether a blob is stored at ``key``; transport errors raise instead of saying no."""
        path = self._path(key)
        if self._local:
            return os.path.isfile(path)
        try:
            info = self._call(key, lambda: self.fs.info(path))
        except StorageError as e:
            if e.code == "blob_not_found":
                return False
            raise
        return bool(info.get("type") == "file")

    def copy(self, src: str, dst: str) -> None:
        """Copy ``src`` to ``dst`` (server-side on S3, atomically on local disk)."""
        src_path, dst_path = self._path(src), self._path(dst)
        if self._local:
            self._call(src, lambda: atomic_link(src_path, dst_path, sync=self.sync))
        elif self._s3:
            self._call(src, lambda: self.fs.cp_file(src_path, dst_path))
        else:
            data = self.get(src)
            self._call(dst, lambda: self.fs.pipe_file(dst_path, data))

    def content_type(self, key: str) -> str:
        """The content type stored with ``key`` (S3) or derived from its extension."""
        if self._s3:
            path = self._path(key)
            info = self._call(key, lambda: self.fs.info(path))
            recorded = info.get("ContentType")
            return recorded if isinstance(recorded, str) and recorded else guess_content_type(key)
        if not self.exists(key):
            raise StorageError(f"No blob at {key}.", retryable=False, code="blob_not_found")
        return guess_content_type(key)

    def size(self, key: str) -> int:
        """The size of the blob at ``key`` in bytes."""
        path = self._path(key)
        return int(self._call(key, lambda: self.fs.size(path)))

    def url(self, key: str, expires: int = 3600) -> str | None:
        """A presigned GET URL valid ``expires`` seconds on S3; ``None`` elsewhere."""
        if not self._s3:
            return None
        if not 0 < expires <= MAX_URL_EXPIRY:
            raise InvalidArgument(f"expires must be between 1 and {MAX_URL_EXPIRY} seconds")
        path = self._path(key)
        return str(self._call(key, lambda: self.fs.sign(path, expiration=int(expires))))

    def keys(self, prefix: str = ROOT) -> list[str]:
        """Every key under ``prefix``, sorted (for clean-up jobs and 'nothing stored' checks)."""
        base = self._path(prefix.strip("/"))
        found = self._call(prefix, lambda: self.fs.find(base))
        strip = f"{self._root}/"
        names = [str(p).removeprefix(strip).lstrip("/") for p in found]
        # Temporary files of in-flight atomic writes are not blobs.
        return sorted(n for n in names if not n.rsplit("/", 1)[-1].startswith(".tmp-"))
