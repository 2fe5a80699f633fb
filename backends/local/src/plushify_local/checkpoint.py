"""Read a legacy (pre-zip) PyTorch checkpoint into numpy arrays, without torch.

A ``.pth`` of that format is a row of pickles followed by raw storages. The unpickler here
accepts only the handful of globals a plain state dict needs, so a checkpoint cannot run code.
"""

from __future__ import annotations

import collections
import pickle
import struct
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["CheckpointError", "read_state_dict"]

_DTYPES: dict[str, type[np.generic]] = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
}


class CheckpointError(ValueError):
    """The file is not a legacy PyTorch state dict this reader understands."""


class _Storage:
    def __init__(self, dtype: type[np.generic], size: int) -> None:
        self.dtype = np.dtype(dtype)
        self.size = size
        self.data: NDArray[Any] | None = None


class _Tensor:
    def __init__(
        self, storage: _Storage, offset: int, size: tuple[int, ...], stride: tuple[int, ...]
    ) -> None:
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def array(self) -> NDArray[Any]:
        data = self.storage.data
        if data is None:
            raise CheckpointError("tensor storage missing from the checkpoint")
        item = data.itemsize
        view = np.lib.stride_tricks.as_strided(
            data[self.offset :], self.size, tuple(s * item for s in self.stride)
        )
        return np.array(view)


def _rebuild(storage: _Storage, offset: int, size: Any, stride: Any, *_: Any) -> _Tensor:
    return _Tensor(storage, int(offset), tuple(size), tuple(stride))


class _Unpickler(pickle.Unpickler):
    """Resolves only OrderedDict, tensor rebuilding and storage type names."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor", "_rebuild_tensor_v2"):
            return _rebuild
        if module == "torch" and name in _DTYPES:
            return name
        raise CheckpointError(f"checkpoint refers to {module}.{name}, which is not allowed")


def _load_main(stream: IO[bytes], storages: dict[str, _Storage]) -> Any:
    unpickler = _Unpickler(stream)

    def persistent_load(pid: Any) -> _Storage:
        kind, type_name, key, _location, size, view = pid
        if kind != "storage" or view is not None or type_name not in _DTYPES:
            raise CheckpointError("unsupported storage in checkpoint")
        if key not in storages:
            storages[key] = _Storage(_DTYPES[type_name], int(size))
        return storages[key]

    loader: Callable[[Any], _Storage] = persistent_load
    unpickler.persistent_load = loader  # type: ignore[method-assign]
    return unpickler.load()


def read_state_dict(path: Path) -> dict[str, NDArray[Any]]:
    """Every tensor of the state dict in ``path``, by parameter name."""
    storages: dict[str, _Storage] = {}
    try:
        with path.open("rb") as stream:
            for _ in range(3):  # magic number, protocol version, system info
                _Unpickler(stream).load()
            state = _load_main(stream, storages)
            keys = _Unpickler(stream).load()
            for key in keys:
                (count,) = struct.unpack("<q", stream.read(8))
                storage = storages[key]
                raw = stream.read(count * storage.dtype.itemsize)
                if count != storage.size or len(raw) != count * storage.dtype.itemsize:
                    raise CheckpointError("truncated checkpoint")
                storage.data = np.frombuffer(raw, storage.dtype)
    except (pickle.UnpicklingError, EOFError, struct.error, KeyError, TypeError) as exc:
        raise CheckpointError(f"not a legacy PyTorch checkpoint: {path.name}") from exc
    if not isinstance(state, dict):
        raise CheckpointError("checkpoint holds no state dict")
    return {str(name): tensor.array() for name, tensor in state.items()}
